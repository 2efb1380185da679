"""One protocol over three transports: a case written once runs over each.

    @over_transports("ws", "sse", "poll")
    async def subscribe_gets_snapshots(transport):
        srv = await start_server()
        c = await connect_transport(srv, transport)
        ...

defines test_subscribe_gets_snapshots__ws, __sse and __poll in the case's
module, where the runner finds them. connect_transport() makes a client of
the transport named (WsClient, SseClient, PollClient), hello read, with a
token in the query, a header, a cookie or (HTTP) a ticket; all three have
drop() and reconnect() besides the Client interface."""

import json
import sys
import urllib.parse

from .checks import check
from .client import Client
from .http_stream_client import PollClient, SseClient, TrackedClient, stream_request

TRANSPORTS = ("ws", "sse", "poll")
HTTP_TRANSPORTS = ("sse", "poll")


class WsClient(TrackedClient):
	"""The WebSocket client with what the stream clients have: drop(), and
	reconnect() as a dashboard does it (a new connection, then subscribe
	with resume)."""

	transport = "ws"

	@classmethod
	async def connect(cls, server, path="/ws", name="ws", **kw):
		c = await super(WsClient, cls).connect(server, path=path, name=name, **kw)
		c._again = (server, path, kw)
		return c

	def drop(self):
		if self.ws is not None:
			self.ws.transport.abort()

	async def reconnect(self, timeout=5.0):
		"""A new connection, its hello, and a resubscribe with resume.
		Returns None: a WebSocket has no stream frame."""
		self.drop()
		server, path, kw = self._again
		fresh = await Client.connect(server, path=path, name=self.name, **kw)
		self.ws, fresh.ws = fresh.ws, None
		self.queue.extend(fresh.queue)
		self.log.append(fresh.hello)
		self.new_session(fresh.hello)
		await self.resubscribe(timeout)
		return None


async def get_ticket(server, token=None, headers=None):
	"""POST /stream/ticket with token as a bearer header; the ticket."""
	h = dict(headers or {})
	if token is not None:
		h["Authorization"] = "Bearer " + token
	status, _, body = await stream_request(server.port, "POST", "/stream/ticket", body=b"", headers=h)
	check(status == 200, "POST /stream/ticket answered %s %r" % (status, body[:200]))
	answer = json.loads(body)
	check(isinstance(answer.get("ticket"), str) and answer["ticket"],
	      "POST /stream/ticket gave no ticket: %r" % body[:200])
	return answer["ticket"]


async def connect_transport(server, transport, name=None, token=None, token_in="query",
			    headers=None, slow=False, **kw):
	"""A client of transport ("ws", "sse" or "poll") on server, its hello
	read. token goes in the query (?token=), a header (Authorization), a
	cookie or (HTTP transports) a ticket fetched with it. slow: a small
	receive window, so that not reading pushes back on the server (a
	long-poll client pushes back by not polling)."""
	name = name or transport
	headers = dict(headers or {})
	query = {}
	if token is not None:
		if token_in == "query":
			query["token"] = token
		elif token_in == "header":
			headers["Authorization"] = "Bearer " + token
		elif token_in == "cookie":
			headers["Cookie"] = "theme=dark; token=%s" % token
		elif token_in == "ticket" and transport != "ws":
			query["ticket"] = await get_ticket(server, token)
		else:
			raise ValueError("no way %r to carry a token over %s" % (token_in, transport))
	if transport == "ws":
		path = "/ws" + ("?" + urllib.parse.urlencode(query) if query else "")
		if slow:
			kw.update(rcvbuf=4096, max_queue=1, read_limit=1024)
		return await WsClient.connect(server, path=path, name=name, extra_headers=headers, **kw)
	if transport == "sse":
		return await SseClient.connect(server, name=name, query=query, headers=headers,
					       rcvbuf=4096 if slow else None, **kw)
	if transport == "poll":
		return await PollClient.connect(server, name=name, query=query, headers=headers, **kw)
	raise ValueError("unknown transport %r" % transport)


def over_transports(*transports, timeout=None):
	"""Decorates `async def case(transport)`: one test function per
	transport, test_<case>__<transport>, is added to the case's module
	(in order, after what is defined above it). timeout as for any test."""
	def make(case):
		module = sys.modules[case.__module__]
		for transport in transports or TRANSPORTS:
			name = "test_%s__%s" % (case.__name__, transport)

			def bind(transport):
				async def run():
					return await case(transport)
				return run
			run = bind(transport)
			run.__name__ = run.__qualname__ = name
			run.__module__ = case.__module__
			run.__doc__ = case.__doc__
			if timeout is not None:
				run.timeout = timeout
			setattr(module, name, run)
		return case
	return make
