"""Servers that require tokens, and tokens for them (README, Security):
a fresh HS256 secret in the server's temporary directory, and JWTs minted
with tests/tools/mint_jwt.py.

    srv, secret = await auth_server(args=[...])
    tok = mint_token(secret, ["AAPL", "FX:*"], sub="alice", admin=True)
"""

import os
import sys
import time

from .server import REPO, Server

sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import mint_jwt  # noqa: E402


def secret_for(srv):
	"""Write a fresh secret into the server's temporary directory, add
	--auth-secret to its arguments and return the secret (bytes)."""
	secret = os.urandom(24).hex().encode()  # 48 bytes, over the 32 minimum
	path = os.path.join(srv.tmp, "secret.key")
	with open(path, "wb") as f:
		f.write(secret + b"\n")
	os.chmod(path, 0o600)
	srv.args += ["--auth-secret", path]
	return secret


async def auth_server(args=(), feed="stdin", name="server"):
	"""A started server that requires tokens: (server, secret)."""
	srv = Server(feed=feed, args=list(args), name=name)
	secret = secret_for(srv)
	await srv.start()
	return srv, secret


def mint_token(secret, symbols=("*",), exp_in=3600, sub="alice", alg="HS256", exp=None,
	       **claims):
	"""A token for symbols (patterns), expiring exp_in seconds from now
	(or at exp), with any other claims given."""
	c = {"sub": sub, "exp": exp if exp is not None else int(time.time() + exp_in),
	     "symbols": list(symbols)}
	c.update(claims)
	return mint_jwt.mint(secret, c, alg)
