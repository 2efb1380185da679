"""
Integration test runner: the real binary, real sockets, no mocks.

    PUBLISHER_BIN=/abs/path/build/publisher /usr/bin/python3 tests/integration/run.py [filter]

Discovers tests/integration/test_*.py and runs every `async def test_*` in
file and definition order, each in its own event loop with its own fresh
server(s) and a time limit (30 s, or the function's `timeout` attribute).
`filter` keeps the tests whose "module.test_name" contains it. A new test
file needs nothing else; what tests share comes from the harness package
(tests/integration/harness/, whose docstring lists it).

Prints one line per test (PASS, or FAIL with the assertion message and the
tail of each server's stderr), then exactly "N passed, N failed".
Exit code 1 when any test failed, 2 when the binary is missing.
"""

import asyncio
import importlib
import inspect
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

sys.dont_write_bytecode = True
import harness  # noqa: E402

DEFAULT_TIMEOUT = 30.0


def discover(filter_text):
	tests = []
	for fname in sorted(os.listdir(HERE)):
		if not (fname.startswith("test_") and fname.endswith(".py")):
			continue
		mod = importlib.import_module(fname[:-3])
		for name, fn in vars(mod).items():
			if name.startswith("test_") and inspect.iscoroutinefunction(fn) \
					and fn.__module__ == mod.__name__:
				full = "%s.%s" % (mod.__name__, name)
				if not filter_text or filter_text in full:
					tests.append((full, fn))
	return tests


async def run_one(fn):
	"""Returns (ok, message, [(server, stderr tail)])."""
	harness.reset()
	timeout = getattr(fn, "timeout", DEFAULT_TIMEOUT)
	ok, msg = False, ""
	try:
		note = await asyncio.wait_for(fn(), timeout)
		ok, msg = True, note or ""
	except asyncio.TimeoutError:
		msg = "timed out after %.0f s" % timeout
	except AssertionError as e:
		msg = str(e) or "assertion failed: " + _where(e)
	except Exception as e:  # a crash in the test itself: show where
		msg = "%s: %s\n%s" % (type(e).__name__, e, "".join(
			traceback.format_exception(type(e), e, e.__traceback__)[-3:]))
	# A crash or sanitizer report after the test's last assertion still
	# fails it.
	await asyncio.sleep(0.05)
	problems = harness.server_problems()
	if problems and ok:
		ok, msg = False, "; ".join(problems)
	elif problems:
		msg += " [also: %s]" % "; ".join(problems)
	tails = await harness.cleanup()
	return ok, msg, tails


def _where(e):
	tb = traceback.extract_tb(e.__traceback__)
	return "%s:%d %s" % (os.path.basename(tb[-1].filename), tb[-1].lineno, tb[-1].line) if tb else "?"


def main():
	filter_text = sys.argv[1] if len(sys.argv) > 1 else ""
	bin_path = harness.binary()
	if not bin_path or not os.path.isfile(bin_path) or not os.access(bin_path, os.X_OK):
		print("run.py: PUBLISHER_BIN must name the publisher binary (got %r)" % bin_path,
		      file=sys.stderr)
		return 2
	tests = discover(filter_text)
	passed = failed = 0
	t0 = time.monotonic()
	for full, fn in tests:
		start = time.monotonic()
		try:
			ok, msg, tails = asyncio.run(run_one(fn))
		except KeyboardInterrupt:
			harness.kill_all_now()
			print("interrupted during %s" % full)
			return 130
		dt = time.monotonic() - start
		if ok:
			passed += 1
			print("PASS %s (%.1f s)%s" % (full, dt, "  [" + msg + "]" if msg else ""), flush=True)
		else:
			failed += 1
			print("FAIL %s (%.1f s): %s" % (full, dt, msg), flush=True)
			for name, tail in tails:
				if tail.strip():
					print("    --- %s stderr (tail) ---" % name)
					for line in tail.splitlines():
						print("    " + line)
			sys.stdout.flush()
	print("(%d tests in %.1f s)" % (len(tests), time.monotonic() - t0))
	print("%d passed, %d failed" % (passed, failed))
	return 1 if failed else 0


if __name__ == "__main__":
	sys.exit(main())
