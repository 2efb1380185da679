"""`make install` as a server is installed: into a temporary PREFIX, then
started from its installed config; and staged with DESTDIR for a package."""

import asyncio
import os
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.request

from harness import binary, check

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _make(*args):
	"""Run make in the repo with the build of the binary under test (so an
	ASan run installs the ASan binary and nothing is rebuilt). A binary
	built outside the repo has no build folder here: make uses its own
	rather than rebuild into the binary's folder from this tree."""
	build = os.path.relpath(os.path.dirname(binary()), REPO)
	cmd = ["make", "--no-print-directory", "-C", REPO]
	if not build.startswith(".."):
		cmd.append("BUILD=" + build)
	cmd += list(args)
	p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
	check(p.returncode == 0, "%s: exit %s\n%s" % (" ".join(cmd), p.returncode, p.stdout[-2000:]))
	return p.stdout


def _read(path):
	with open(path, encoding="utf-8") as f:
		return f.read()


def _setting(conf_text, name):
	m = re.search(r"^%s\s+(.*)$" % re.escape(name), conf_text, re.M)
	return m.group(1).strip() if m else None


def _get(port, path):
	with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
		return r.status, r.read()


async def _wait_file(path, proc, timeout=10.0):
	for _ in range(int(timeout / 0.05)):
		if os.path.exists(path):
			return _read(path).strip()
		if proc.poll() is not None:
			break
		await asyncio.sleep(0.05)
	check(False, "no %s within %.0f s (exit %s): %s" % (path, timeout, proc.poll(),
							     proc.stderr.read().decode()[-1500:] if proc.poll() is not None else ""))


async def _metric(port, name):
	_, body = _get(port, "/metrics")
	m = re.search(r"^%s (\d+)" % re.escape(name), body.decode(), re.M)
	return int(m.group(1)) if m else None


async def test_install_with_prefix_starts_from_its_installed_config():
	tmp = tempfile.mkdtemp(prefix="publisher-install-")
	prefix, state = os.path.join(tmp, "usr"), os.path.join(tmp, "var")
	try:
		_make("install", "PREFIX=" + prefix, "STATEDIR=" + state)
		bin_path = os.path.join(prefix, "bin", "publisher")
		conf_path = os.path.join(prefix, "etc", "publisher", "publisher.conf")
		unit_path = os.path.join(prefix, "lib", "systemd", "system", "publisher.service")
		web_dir = os.path.join(prefix, "share", "publisher", "web")
		check(os.access(bin_path, os.X_OK), "no executable %s" % bin_path)
		for name in ("index.html", "app.js", "style.css"):
			check(_read(os.path.join(web_dir, name)) == _read(os.path.join(REPO, "web", name)),
			      "installed web/%s differs from the repo's" % name)
		conf = _read(conf_path)
		check(_setting(conf, "web") == web_dir, "config's web is %r, want %r" % (_setting(conf, "web"), web_dir))
		db = os.path.join(state, "publisher", "ticks.db")
		check(_setting(conf, "db") == db, "config's db is %r, want %r" % (_setting(conf, "db"), db))
		unit = _read(unit_path)
		want = "ExecStart=%s serve --config %s" % (bin_path, conf_path)
		check(want in unit, "unit lacks %r:\n%s" % (want, unit))

		# Started as the unit starts it, from another directory; only the
		# address is overridden, by a flag (flags win over the file).
		os.makedirs(os.path.dirname(db))
		port_file = os.path.join(tmp, "port")
		proc = subprocess.Popen([bin_path, "serve", "--config", conf_path, "--listen", "127.0.0.1:0",
					 "--port-file", port_file], cwd=tmp, stdout=subprocess.DEVNULL,
					stderr=subprocess.PIPE)
		try:
			port = int(await _wait_file(port_file, proc))
			status, body = _get(port, "/")
			check(status == 200 and body.decode() == _read(os.path.join(web_dir, "index.html")),
			      "GET / did not serve the installed index.html (status %s)" % status)
			first = await _metric(port, "publisher_ticks_applied_total")
			await asyncio.sleep(0.6)
			later = await _metric(port, "publisher_ticks_applied_total")
			check(first is not None and later > first,
			      "the config's synthetic feed does not run: ticks %s then %s" % (first, later))
			check(os.path.exists(db), "no database at the config's db %s" % db)
			proc.send_signal(signal.SIGTERM)
			rc = proc.wait(timeout=10)
			err = proc.stderr.read().decode()
			check(rc == 0, "exit %s after SIGTERM: %s" % (rc, err[-1000:]))
			check("settings from '%s'" % conf_path in err, "the log does not name the config: %s" % err[-1000:])
		finally:
			if proc.poll() is None:
				proc.kill()
				proc.wait()

		# A second install keeps the user's config and puts the new one
		# beside it.
		with open(conf_path, "a", encoding="utf-8") as f:
			f.write("max-connections-per-ip 500\n")
		out = _make("install", "PREFIX=" + prefix, "STATEDIR=" + state)
		check("max-connections-per-ip 500" in _read(conf_path), "a second install overwrote the config")
		check(os.path.exists(conf_path + ".example"), "no publisher.conf.example beside the kept config:\n" + out)

		# Uninstall takes the program and leaves the settings and data.
		_make("uninstall", "PREFIX=" + prefix)
		check(not os.path.exists(bin_path) and not os.path.exists(web_dir) and not os.path.exists(unit_path),
		      "uninstall left the binary, the web files or the unit")
		check(os.path.exists(conf_path) and os.path.exists(db), "uninstall removed the config or the data")
		return "installed, served from %s, reinstalled, uninstalled" % conf_path
	finally:
		shutil.rmtree(tmp, ignore_errors=True)


async def test_install_with_destdir_stages_a_package():
	tmp = tempfile.mkdtemp(prefix="publisher-stage-")
	try:
		_make("install", "PREFIX=/usr", "DESTDIR=" + tmp)
		check(os.access(os.path.join(tmp, "usr", "bin", "publisher"), os.X_OK), "no staged usr/bin/publisher")
		check(os.path.exists(os.path.join(tmp, "usr", "share", "publisher", "web", "index.html")),
		      "no staged usr/share/publisher/web/index.html")
		# PREFIX=/usr puts the settings in /etc, and the paths inside the
		# files are the installed ones, without DESTDIR.
		conf = _read(os.path.join(tmp, "etc", "publisher", "publisher.conf"))
		check(_setting(conf, "web") == "/usr/share/publisher/web", "staged config's web: %r" % _setting(conf, "web"))
		check(_setting(conf, "db") == "/var/lib/publisher/ticks.db", "staged config's db: %r" % _setting(conf, "db"))
		unit = _read(os.path.join(tmp, "usr", "lib", "systemd", "system", "publisher.service"))
		check("ExecStart=/usr/bin/publisher serve --config /etc/publisher/publisher.conf" in unit,
		      "staged unit's ExecStart:\n" + unit)
		check("StateDirectory=publisher" in unit, "the unit does not ask systemd for /var/lib/publisher")
		return "staged under DESTDIR with /usr paths inside"
	finally:
		shutil.rmtree(tmp, ignore_errors=True)
