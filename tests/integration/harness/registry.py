"""What the current test has started: every server (and helper process) and
every client registers here, so the runner can clean up after the test and
report what went wrong that the test itself did not look at."""

import os
import signal

servers = []
clients = []

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
		   "ThreadSanitizer", "Segmentation fault")


def reset():
	del servers[:]
	del clients[:]


def server_problems():
	"""What went wrong with the current test's servers that the test itself
	did not look at: an exit nobody asked for, a sanitizer report."""
	out = []
	for s in servers:
		if s.proc is None:
			continue
		if s.proc.returncode is not None and not s.exit_expected:
			out.append("%s exited unexpectedly with code %s" % (s.name, s.proc.returncode))
		text = s.stderr_text()
		for mark in SANITIZER_MARKS:
			if mark in text:
				out.append("%s stderr reports %r" % (s.name, mark))
	return out


def kill_all_now():
	"""Synchronous last resort (e.g. on Ctrl-C): SIGKILL every server of
	the current test that may still run."""
	for s in servers:
		if s.proc is not None and s.proc.returncode is None:
			try:
				os.kill(s.proc.pid, signal.SIGKILL)
			except ProcessLookupError:
				pass


async def cleanup():
	"""Drop every client and kill every server of the current test.
	Returns [(server name, stderr tail)] for the report."""
	for c in list(clients):
		abort = getattr(c, "abort", None)
		if abort is not None:
			abort()  # a client of its own kind (the HTTP stream clients)
			continue
		if c.ws is not None:
			try:
				c.ws.transport.abort()
			except Exception:
				pass
		if getattr(c, "sock", None) is not None:
			try:
				c.sock.close()
			except Exception:
				pass
	tails = []
	for s in list(servers):
		try:
			await s.kill()
		except Exception:
			pass
		tails.append((s.name, s.stderr_tail()))
		s.remove_tmp()
	reset()
	return tails
