"""
harness: start the real `publisher` binary and talk to it like a client would.

    srv = await Server(feed="stdin").start()       # fresh db, free loopback port
    await srv.send_ticks([tick("AAPL", bid="189.33", ask="189.35")])
    c = await Client.connect(srv)                  # reads the hello
    await c.request({"op": "subscribe", "symbols": ["AAPL"]})
    snap = await c.expect("snapshot")

Every server and client made during a test is registered, and the runner
(run.py) calls cleanup() after each test: clients are dropped, servers still
running are killed, and their stderr tails are handed back for the report.

A test imports what it needs from here (`from harness import ...`); each
name lives in one module of this package:

    checks     check, assert_fields, summary, Decimal
    ticks      tick, tick_line, tick_fields, exact, now_us, BASE, the field
               names; gen_ticks, hist_ticks, price and model_states: a
               deterministic stream and the state it makes; DAY_US,
               new_session and mid_price: what a trading session does
    server     Server, start_server, run_cli, binary, free_port, REPO,
               WEB_DIR; Helper, the base of other programs a test starts
    client     Client, Closed; raw sockets: raw_ws_connect, raw_ws_handshake,
               read_ws_frame, ws_frame
    http_api   http_request, http_get, qs, metric
    http_stream_client
               SseClient, PollClient (the HTTP stream transports with the
               Client interface), stream_request, Refused, CURSOR_RE
    transports connect_transport, over_transports, WsClient, get_ticket,
               TRANSPORTS, HTTP_TRANSPORTS: a case written once, run over
               WebSocket, SSE and long-poll
    store      history, wait_stored, ingest, make_db, snapshots,
               symbol_seqs, snap_fields, check_ticks, check_same_snapshot;
               export files: CSV_HEADER, parse_csv, parse_jsonl, rows_of,
               check_rows
    scaleout   Redis, Node, cluster, counts, wait_all, view, snapshot_view,
               converged, wait_published, redis_command, REDIS_SERVER, SKIP
    tokens     auth_server, secret_for, mint_token: servers that
               require tokens, and tokens for them
    registry   what the runner uses between tests: reset, cleanup,
               server_problems, kill_all_now

A helper that a second test file needs belongs here, in the module of its
subject, and is added to the imports below; one that only one file uses
stays in that file.
"""

from .checks import Decimal, assert_fields, check, summary
from .client import Client, Closed, raw_ws_connect, raw_ws_handshake, read_ws_frame, ws_frame
from .http_api import http_get, http_request, metric, qs
from .http_stream_client import CURSOR_RE, PollClient, Refused, SseClient, stream_request
from .registry import cleanup, kill_all_now, reset, server_problems
from .scaleout import (REDIS_SERVER, SKIP, Node, Redis, cluster, converged, counts,
		       redis_command, snapshot_view, view, wait_all, wait_published)
from .server import REPO, WEB_DIR, Helper, Server, binary, free_port, run_cli, start_server
from .store import (CSV_HEADER, check_rows, check_same_snapshot, check_ticks, history, ingest,
		    make_db, parse_csv, parse_jsonl, rows_of, snap_fields, snapshots, symbol_seqs,
		    wait_stored)
from .tokens import auth_server, mint_token, secret_for
from .ticks import (BASE, DAY_US, DERIVED_FIELDS, INPUT_FIELDS, STATE_FIELDS, UPDATE_ENVELOPE,
		    exact, gen_ticks, hist_ticks, mid_price, model_states, new_session, next_ts, now_us,
		    price, tick, tick_fields, tick_line)
from .transports import (HTTP_TRANSPORTS, TRANSPORTS, WsClient, connect_transport, get_ticket,
			 over_transports)

__all__ = ["assert_fields", "BASE", "binary", "DAY_US", "mid_price", "new_session", "check", "check_rows", "check_same_snapshot",
	   "check_ticks", "cleanup", "Client", "Closed", "cluster", "connect_transport", "converged",
	   "counts", "CSV_HEADER", "CURSOR_RE", "Decimal", "DERIVED_FIELDS", "exact", "free_port",
	   "gen_ticks", "get_ticket", "Helper", "hist_ticks", "history", "http_get", "http_request",
	   "HTTP_TRANSPORTS", "ingest", "INPUT_FIELDS", "kill_all_now", "make_db", "metric",
	   "model_states", "next_ts", "Node", "now_us", "over_transports", "parse_csv", "parse_jsonl",
	   "PollClient", "price", "qs", "raw_ws_connect", "raw_ws_handshake", "read_ws_frame",
	   "Redis", "redis_command", "REDIS_SERVER", "Refused", "REPO", "reset", "rows_of", "run_cli",
	   "Server", "server_problems", "SKIP", "snap_fields", "snapshot_view", "snapshots",
	   "SseClient", "start_server", "STATE_FIELDS", "stream_request", "summary", "symbol_seqs",
	   "tick", "tick_fields", "tick_line", "TRANSPORTS", "UPDATE_ENVELOPE", "view", "wait_all",
	   "wait_published", "wait_stored", "WEB_DIR", "ws_frame", "WsClient"]
