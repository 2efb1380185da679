// localStorage with a namespace, JSON values, and no exceptions: a browser
// with storage disabled (or full) still gets a working page.

const PREFIX = 'publisher.';

export function load(key, fallback) {
	try {
		const text = localStorage.getItem(PREFIX + key);
		return text === null ? fallback : JSON.parse(text);
	} catch (e) {
		return fallback;
	}
}

export function save(key, value) {
	try {
		localStorage.setItem(PREFIX + key, JSON.stringify(value));
	} catch (e) {
		/* nothing to do: the setting lasts for this page only */
	}
}

export function remove(key) {
	try {
		localStorage.removeItem(PREFIX + key);
	} catch (e) {
		/* see save() */
	}
}
