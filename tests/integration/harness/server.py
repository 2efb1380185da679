"""The real binary as a test starts it (Server, start_server, run_cli), and
Helper, the base of other programs a test needs (redis-server, nginx), all
registered so the runner kills them after the test."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from . import registry
from .ticks import tick_line

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
WEB_DIR = os.path.join(REPO, "web")


def binary():
	path = os.environ.get("PUBLISHER_BIN", "")
	return path


def free_port():
	"""A loopback port nothing listens on now (the kernel's pick for port 0)."""
	s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	s.bind(("127.0.0.1", 0))
	port = s.getsockname()[1]
	s.close()
	return port


class Server:
	"""The real binary on 127.0.0.1:0 with its own temporary db."""

	def __init__(self, feed="stdin", args=(), name="server", db=None, web=WEB_DIR):
		self.feed = feed
		self.args = list(args)
		self.name = name
		self.tmp = tempfile.mkdtemp(prefix="publisher-it-")
		self.db = db or os.path.join(self.tmp, "ticks.db")
		self.port_file = os.path.join(self.tmp, "port")
		self.stderr_path = os.path.join(self.tmp, "stderr")
		self.stdout_path = os.path.join(self.tmp, "stdout")
		self.web = web
		self.proc = None
		self.port = None
		self.returncode = None
		self.exit_expected = False  # set when the test stops or awaits the exit
		registry.servers.append(self)

	@property
	def pid(self):
		return self.proc.pid

	def argv(self):
		argv = [binary(), "serve", "--listen", "127.0.0.1:0",
			"--port-file", self.port_file, "--feed", self.feed,
			"--db", self.db]
		if self.web:
			argv += ["--web", self.web]
		# debug by default: the stderr tail printed for a failed test then
		# shows the connection's story (PUBLISHER_LOG_LEVEL overrides).
		argv += ["--log-level", os.environ.get("PUBLISHER_LOG_LEVEL", "debug")]
		return argv + self.args

	async def start(self, timeout=10.0):
		self._err = open(self.stderr_path, "wb")
		self._out = open(self.stdout_path, "wb")
		self.proc = await asyncio.create_subprocess_exec(
			*self.argv(), stdin=subprocess.PIPE, stdout=self._out,
			stderr=self._err)
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			if self.proc.returncode is not None:
				raise AssertionError(
					"%s exited with code %s before writing its port file "
					"(argv: %s)" % (self.name, self.proc.returncode,
							 " ".join(self.argv())))
			try:
				with open(self.port_file) as f:
					text = f.read().strip()
				if text:
					self.port = int(text)
					return self
			except (FileNotFoundError, ValueError):
				pass
			await asyncio.sleep(0.02)
		raise AssertionError("%s wrote no port file within %.0f s" % (self.name, timeout))

	def alive(self):
		return self.proc is not None and self.proc.returncode is None

	async def send_ticks(self, ticks):
		"""Write ticks (dicts or raw lines) to the server's stdin feed."""
		data = "".join(tick_line(t) + "\n" for t in ticks).encode()
		try:
			self.proc.stdin.write(data)
			await self.proc.stdin.drain()
		except (BrokenPipeError, ConnectionResetError) as e:
			raise AssertionError("%s: cannot write ticks to stdin (%s); alive=%s"
					     % (self.name, e, self.alive()))

	async def wait_exit(self, timeout):
		"""The exit code, or None if still running after timeout seconds."""
		self.exit_expected = True
		try:
			self.returncode = await asyncio.wait_for(self.proc.wait(), timeout)
		except asyncio.TimeoutError:
			return None
		return self.returncode

	async def stop(self, sig=signal.SIGTERM, timeout=5.0):
		"""Send sig and wait; returns the exit code (None if it hung, then
		the process is killed)."""
		self.exit_expected = True
		if self.proc.returncode is not None:
			return self.proc.returncode
		self.proc.send_signal(sig)
		rc = await self.wait_exit(timeout)
		if rc is None:
			await self.kill()
		return rc

	async def kill(self):
		if self.proc is None:
			return
		if self.proc.returncode is None:
			try:
				self.proc.kill()
			except ProcessLookupError:
				pass
			try:
				await asyncio.wait_for(self.proc.wait(), 5)
			except asyncio.TimeoutError:
				pass
		try:
			self.proc.stdin.close()
		except Exception:
			pass
		for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
			if f:
				f.close()

	def stderr_text(self):
		try:
			with open(self.stderr_path, "rb") as f:
				return f.read().decode("utf-8", "replace")
		except FileNotFoundError:
			return ""

	def stderr_tail(self, lines=15):
		return "\n".join(self.stderr_text().splitlines()[-lines:])

	def rss_kb(self):
		"""VmRSS of the server process in kB (None when gone)."""
		try:
			with open("/proc/%d/status" % self.pid) as f:
				for line in f:
					if line.startswith("VmRSS:"):
						return int(line.split()[1])
		except (FileNotFoundError, ProcessLookupError):
			return None
		return None

	def remove_tmp(self):
		if not os.environ.get("KEEP_TMP"):
			shutil.rmtree(self.tmp, ignore_errors=True)


async def start_server(feed="stdin", args=(), name="server"):
	return await Server(feed=feed, args=args, name=name).start()


async def run_cli(args, timeout=10.0):
	"""Run the binary with args; returns (exit code, stdout, stderr)."""
	proc = await asyncio.create_subprocess_exec(
		binary(), *args, stdin=subprocess.DEVNULL,
		stdout=subprocess.PIPE, stderr=subprocess.PIPE)
	try:
		out, err = await asyncio.wait_for(proc.communicate(), timeout)
	except asyncio.TimeoutError:
		proc.kill()
		await proc.wait()
		raise AssertionError("`publisher %s` still running after %.0f s"
				     % (" ".join(args), timeout))
	return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")



class Helper(Server):
	"""Another program a test needs (redis-server, nginx), in a temporary
	directory of its own. A subclass gives argv() and ready(), a blocking
	probe; start() runs the program and waits until ready() says yes."""

	# What ready() waits for, for the failure message ("answer PING").
	ready_what = "get ready"

	def __init__(self, name):
		Server.__init__(self, name=name, web=None)

	def ready(self):
		raise NotImplementedError

	async def start(self, timeout=10.0):
		self._err = open(self.stderr_path, "wb")
		self._out = open(self.stdout_path, "wb")
		self.proc = await asyncio.create_subprocess_exec(
			*self.argv(), stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err)
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			if self.proc.returncode is not None:
				raise AssertionError("%s exited with code %s: %s" % (
					self.name, self.proc.returncode, self.stderr_tail()))
			if await asyncio.to_thread(self.ready):
				return self
			await asyncio.sleep(0.05)
		raise AssertionError("%s did not %s within %.0f s" % (self.name, self.ready_what, timeout))
