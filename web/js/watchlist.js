// The watchlist grid. It never writes to the DOM when a message arrives:
// frame() runs once per animation frame and renders only the rows whose
// quotes changed and only the cells whose text changed. Rows scrolled out of
// view are brought up to date at most once a second (and at once when they
// scroll back in), so a long list costs little more than the visible part.

import { sub, sign, signed, percent, group } from '../client/publisher.js';
import { changeBasis, changeValue } from './view-model.js';
import { padDecimals } from './precision.js';

const COLS = ['bid', 'ask', 'last', 'chg', 'pct', 'volume'];
const DASH = '\u2014';
const RESORT_MS = 1000; // a live sort reorders at most once a second
const OFFSCREEN_MS = 1000; // rows out of view are refreshed this often
/* A changed cell keeps its colour this long after its last change, then
 * fades (style.css). A colour that stays put costs nothing per frame; an
 * animated one repaints its cell on every frame, and at 5,000 ticks/s that
 * was most of the page's time. */
const FLASH_MS = 600;
const UNFLASH_MS = 100; // how often colours that are due are taken off
const ROW_PX = 24; // .wl-row height in style.css

function sortValue(q, key) {
	if (key === 'symbol') return q.symbol;
	const f = q.f;
	if (key === 'chg' || key === 'pct') {
		const basis = changeBasis(f), now = changeValue(f);
		const last = Number(now), base = Number(basis);
		if (now === undefined || basis === undefined || !isFinite(last) || !isFinite(base)) return NaN;
		return key === 'chg' ? last - base : base ? (last - base) / base : NaN;
	}
	return f[key] === undefined ? NaN : Number(f[key]);
}

export class Watchlist {
	/**
	 * opts: grid, scroll, empty, count (elements), model, and callbacks
	 * onSelect(symbol), onRemove(symbol), onSort({key, dir}).
	 */
	constructor(opts) {
		Object.assign(this, opts);
		this.head = this.grid.querySelector('.wl-head');
		this.body = this.grid.querySelector('.wl-body');
		this.rows = new Map(); // symbol -> row
		this.byEl = new WeakMap();
		this.order = []; // the user's order
		this.shown = []; // the order on screen
		this.selected = null;
		this.sort = { key: null, dir: 1 };
		this.lastSort = 0;
		this.sortStale = false;
		this.offscreen = new Set(); // rows out of view with changes not drawn
		this.flashing = new Set(); // rows with a cell still coloured by a change
		this.lastUnflash = 0;
		this.now = 0; // the frame's time, for the flashes it starts
		this.lastOffscreen = 0;
		this.nextId = 1;
		this.io = new IntersectionObserver((entries) => this.visibility(entries), {
			root: this.scroll,
			rootMargin: '120px 0px',
		});
		this.bind();
	}

	bind() {
		this.head.addEventListener('click', (e) => {
			const col = e.target.closest('[data-key]');
			if (col) this.cycleSort(col.dataset.key);
		});
		this.body.addEventListener('click', (e) => {
			const el = e.target.closest('.wl-row');
			const r = el && this.byEl.get(el);
			if (!r) return;
			if (e.target.closest('button.x')) {
				this.onRemove(r.symbol);
				return;
			}
			this.select(r.symbol);
			this.grid.focus({ preventScroll: true });
		});
		this.grid.addEventListener('keydown', (e) => this.key(e));
	}

	key(e) {
		if (e.target !== this.grid || e.altKey || e.ctrlKey || e.metaKey) return;
		const i = this.selected === null ? -1 : this.shown.indexOf(this.selected);
		const page = Math.max(1, Math.floor(this.scroll.clientHeight / ROW_PX) - 2);
		switch (e.key) {
		case 'ArrowDown': this.moveTo(i < 0 ? 0 : i + 1); break;
		case 'ArrowUp': this.moveTo(i < 0 ? 0 : i - 1); break;
		case 'PageDown': this.moveTo(i + page); break;
		case 'PageUp': this.moveTo(i - page); break;
		case 'Home': this.moveTo(0); break;
		case 'End': this.moveTo(this.shown.length - 1); break;
		case 'Delete':
		case 'Backspace':
			if (this.selected !== null) this.onRemove(this.selected);
			break;
		default:
			return;
		}
		e.preventDefault();
	}

	moveTo(i) {
		if (!this.shown.length) return;
		i = Math.max(0, Math.min(this.shown.length - 1, i));
		this.select(this.shown[i]);
	}

	/** Replace every row with `symbols` (in that order). */
	setSymbols(symbols) {
		for (const s of [...this.rows.keys()]) this.dropRow(s);
		this.order = [];
		this.shown = [];
		const frag = document.createDocumentFragment();
		for (const s of symbols) frag.appendChild(this.makeRow(s).el);
		this.body.appendChild(frag);
		this.resort(true);
		this.updateCount();
	}

	addRow(symbol) {
		if (this.rows.has(symbol)) return;
		this.body.appendChild(this.makeRow(symbol).el);
		this.resort(true);
		this.updateCount();
	}

	/** Remove a row; returns the symbol that should be selected next (or null). */
	removeRow(symbol) {
		const i = this.shown.indexOf(symbol);
		const next = this.shown[i + 1] ?? this.shown[i - 1] ?? null;
		this.dropRow(symbol);
		if (this.selected === symbol) this.selected = null;
		this.updateCount();
		return next;
	}

	dropRow(symbol) {
		const r = this.rows.get(symbol);
		if (!r) return;
		this.io.unobserve(r.el);
		this.offscreen.delete(r);
		this.flashing.delete(r);
		r.el.remove();
		this.rows.delete(symbol);
		this.order = this.order.filter((s) => s !== symbol);
		this.shown = this.shown.filter((s) => s !== symbol);
	}

	makeRow(symbol) {
		const el = document.createElement('div');
		el.className = 'wl-row';
		el.setAttribute('role', 'row');
		el.id = 'wl-row-' + this.nextId++;
		el.setAttribute('aria-selected', 'false');
		el.dataset.symbol = symbol;
		const sym = document.createElement('div');
		sym.setAttribute('role', 'rowheader');
		sym.className = 'c-sym';
		sym.textContent = symbol;
		sym.title = symbol;
		el.appendChild(sym);
		const cells = [];
		for (let i = 0; i < COLS.length; i++) {
			const td = document.createElement('div');
			td.setAttribute('role', 'gridcell');
			td.className = 'num';
			td.textContent = DASH;
			cells.push(td);
			el.appendChild(td);
		}
		const xtd = document.createElement('div');
		xtd.setAttribute('role', 'gridcell');
		xtd.className = 'c-x';
		const x = document.createElement('button');
		x.type = 'button';
		x.className = 'x';
		x.tabIndex = -1;
		x.setAttribute('aria-label', 'Remove ' + symbol);
		x.title = 'Remove ' + symbol + ' (Delete)';
		x.textContent = '\u00d7';
		xtd.appendChild(x);
		el.appendChild(xtd);

		const r = {
			symbol, el, cells, x,
			text: COLS.map(() => DASH),
			cls: COLS.map(() => 'num'),
			flash: COLS.map(() => ''),
			until: COLS.map(() => 0), // when the flash is taken off
			tone: COLS.map(() => ''),
			visible: true,
		};
		this.rows.set(symbol, r);
		this.byEl.set(el, r);
		this.order.push(symbol);
		this.io.observe(el);
		const q = this.model.quotes.get(symbol);
		if (q) this.render(r, q, false);
		return r;
	}

	visibility(entries) {
		for (const e of entries) {
			const r = this.byEl.get(e.target);
			if (!r) continue;
			r.visible = e.isIntersecting;
			if (r.visible && this.offscreen.delete(r)) {
				const q = this.model.quotes.get(r.symbol);
				if (q) this.render(r, q, false);
			}
		}
	}

	updateCount() {
		const n = this.rows.size;
		this.count.textContent = n === 1 ? '1 symbol' : n + ' symbols';
		this.empty.hidden = n > 0;
	}

	/** Draw what changed since the last frame. */
	frame(now) {
		this.now = now;
		const dirty = this.model.dirty;
		if (dirty.size) {
			for (const q of dirty) {
				const r = this.rows.get(q.symbol);
				if (r) {
					if (r.visible) this.render(r, q, true);
					else this.offscreen.add(r);
				}
				q.flash = null;
			}
			dirty.clear();
			this.sortStale = true;
		}
		if (this.offscreen.size && now - this.lastOffscreen >= OFFSCREEN_MS) {
			for (const r of this.offscreen) {
				const q = this.model.quotes.get(r.symbol);
				if (q) this.render(r, q, false);
			}
			this.offscreen.clear();
			this.lastOffscreen = now;
		}
		if (this.sortStale && this.sort.key && this.sort.key !== 'symbol' && now - this.lastSort >= RESORT_MS)
			this.resort(false);
		if (this.flashing.size && now - this.lastUnflash >= UNFLASH_MS) this.unflash(now);
	}

	/* Take the colour off the cells whose last change is FLASH_MS old. */
	unflash(now) {
		this.lastUnflash = now;
		for (const r of this.flashing) {
			let left = false;
			for (let i = 0; i < COLS.length; i++) {
				if (!r.flash[i]) continue;
				if (r.until[i] > now) {
					left = true;
					continue;
				}
				r.flash[i] = '';
				this.cell(r, i, r.text[i], 0, r.tone[i]);
			}
			if (!left) this.flashing.delete(r);
		}
	}

	render(r, q, animate) {
		const f = q.f;
		const fl = animate ? q.flash : null;
		// Every price of a symbol with the most decimals it has shown.
		const price = (s) => (s === undefined ? DASH : padDecimals(s, q.scale));
		this.cell(r, 0, price(f.bid), fl && fl.bid, '');
		this.cell(r, 1, price(f.ask), fl && fl.ask, '');
		this.cell(r, 2, price(f.last), fl && fl.last, q.tick > 0 ? 'up' : q.tick < 0 ? 'down' : '');
		const basis = changeBasis(f);
		const chg = sub(changeValue(f), basis);
		const tone = sign(chg) > 0 ? 'pos' : sign(chg) < 0 ? 'neg' : '';
		this.cell(r, 3, chg === null ? DASH : padDecimals(signed(chg), q.scale), undefined, tone);
		this.cell(r, 4, percent(chg, basis) ?? DASH, undefined, tone);
		this.cell(r, 5, f.volume === undefined ? DASH : group(f.volume), fl && fl.volume !== undefined ? 2 : undefined, '');
	}

	/* dir: -1 / 1 flash red / green, 2 a neutral flash, 0 or undefined none. */
	cell(r, i, text, dir, tone) {
		const td = r.cells[i];
		if (r.text[i] !== text) {
			td.textContent = text;
			r.text[i] = text;
		}
		r.tone[i] = tone;
		if (dir) {
			r.flash[i] = dir === 2 ? 'fv' : dir > 0 ? 'fu' : 'fd';
			r.until[i] = this.now + FLASH_MS;
			this.flashing.add(r);
		}
		const cls = 'num' + (tone ? ' ' + tone : '') + (r.flash[i] ? ' ' + r.flash[i] : '');
		if (r.cls[i] !== cls) {
			td.className = cls;
			r.cls[i] = cls;
		}
	}

	/** True while a later frame has work to do even with no new data. */
	get pending() {
		return this.offscreen.size > 0 || this.flashing.size > 0 || (this.sortStale && this.sort.key !== null && this.sort.key !== 'symbol');
	}

	/** Every row redrawn from the model (after the model was cleared). */
	renderAll() {
		this.offscreen.clear();
		for (const r of this.rows.values()) {
			const q = this.model.quotes.get(r.symbol);
			if (q) this.render(r, q, false);
		}
	}

	cycleSort(key) {
		let { key: k, dir } = this.sort;
		if (k !== key) { k = key; dir = 1; }
		else if (dir === 1) dir = -1;
		else { k = null; dir = 1; }
		this.setSort({ key: k, dir });
		this.onSort(this.sort);
	}

	setSort(sort) {
		const valid = sort && (sort.key === null || sort.key === 'symbol' || COLS.includes(sort.key));
		this.sort = valid ? { key: sort.key, dir: sort.dir === -1 ? -1 : 1 } : { key: null, dir: 1 };
		for (const col of this.head.querySelectorAll('[data-key]')) {
			const on = col.dataset.key === this.sort.key;
			col.setAttribute('aria-sort', on ? (this.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
		}
		this.resort(true);
	}

	/** Put the rows in sort order, moving only the rows that are out of place. */
	resort(force) {
		const { key, dir } = this.sort;
		let want;
		if (!key) {
			want = this.order.slice();
		} else {
			const index = new Map(this.order.map((s, i) => [s, i]));
			const vals = new Map();
			for (const s of this.order) {
				const q = this.model.quotes.get(s);
				vals.set(s, q ? sortValue(q, key) : NaN);
			}
			want = this.order.slice().sort((a, b) => {
				const va = vals.get(a), vb = vals.get(b);
				if (key === 'symbol') return dir * (va < vb ? -1 : va > vb ? 1 : 0);
				const ma = Number.isNaN(va), mb = Number.isNaN(vb);
				if (ma || mb) return ma === mb ? index.get(a) - index.get(b) : ma ? 1 : -1;
				return dir * (va - vb) || index.get(a) - index.get(b);
			});
		}
		this.lastSort = performance.now();
		this.sortStale = false;
		if (!force && want.length === this.shown.length && want.every((s, i) => s === this.shown[i])) return;
		const kids = this.body.children;
		const hadFocus = this.body.contains(document.activeElement) ? document.activeElement : null;
		for (let i = 0; i < want.length; i++) {
			const el = this.rows.get(want[i]).el;
			if (kids[i] !== el) this.body.insertBefore(el, kids[i] || null);
		}
		this.shown = want;
		if (hadFocus && document.activeElement !== hadFocus) hadFocus.focus({ preventScroll: true });
	}

	select(symbol, opts = {}) {
		const r = this.rows.get(symbol);
		if (!r) return;
		if (this.selected !== symbol) {
			const old = this.rows.get(this.selected);
			if (old) {
				old.el.classList.remove('sel');
				old.el.setAttribute('aria-selected', 'false');
				old.x.tabIndex = -1;
			}
			r.el.classList.add('sel');
			r.el.setAttribute('aria-selected', 'true');
			r.x.tabIndex = 0;
			this.grid.setAttribute('aria-activedescendant', r.el.id);
			this.selected = symbol;
			if (!opts.silent) this.onSelect(symbol);
		}
		if (opts.scroll !== false) this.scrollIntoView(r.el);
	}

	/* Keep the row below the sticky header, without smooth scrolling (which
	 * lags behind held-down arrow keys). */
	scrollIntoView(el) {
		const head = this.head.offsetHeight;
		const top = el.offsetTop, bottom = top + el.offsetHeight;
		const view = this.scroll;
		if (top - head < view.scrollTop) view.scrollTop = top - head;
		else if (bottom > view.scrollTop + view.clientHeight) view.scrollTop = bottom - view.clientHeight;
	}

	/** Dim the values while the connection is down: they are no longer live. */
	setLive(live) {
		this.grid.classList.toggle('stale', !live);
	}
}
