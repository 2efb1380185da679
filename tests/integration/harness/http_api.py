"""HTTP as a client speaks it to the server: any request (http_request),
/metrics values (metric) and the query strings of /api/export and /api/bars
(qs)."""

import asyncio
import http.client
import urllib.parse

from .checks import check


async def metric(srv, name):
	"""The value of a /metrics line (the first with labels, if it has
	some), or None when there is no such metric."""
	status, _, body = await http_request(srv.port, "/metrics")
	check(status == 200, "%s /metrics: %s" % (srv.name, status))
	for line in body.decode().splitlines():
		if line.startswith(name + " ") or line.startswith(name + "{"):
			return float(line.rsplit(" ", 1)[1])
	return None


def _http_sync(port, method, path, headers, timeout):
	conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
	try:
		conn.request(method, path, headers=headers or {})
		r = conn.getresponse()
		body = r.read()
		return r.status, {k.lower(): v for k, v in r.getheaders()}, body
	finally:
		conn.close()


async def http_request(port, path="/", method="GET", headers=None, timeout=5.0):
	"""(status, {lower-case header: value}, body bytes)."""
	return await asyncio.to_thread(_http_sync, port, method, path, headers, timeout)


async def http_get(srv, path, timeout=10.0):
	"""GET path from srv with a timeout long enough for a big export."""
	return await http_request(srv.port, path, timeout=timeout)


def qs(**params):
	"""A query string; list values repeat the key; '+' in ISO offsets is escaped."""
	return urllib.parse.urlencode(params, doseq=True, quote_via=urllib.parse.quote)
