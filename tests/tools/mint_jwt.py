#!/usr/bin/env python3
"""
mint_jwt: make an HS256 token for `publisher serve --auth-secret FILE`.

    tests/tools/mint_jwt.py --secret-file secret.key --sub alice \\
        --exp-in 3600 --symbols 'AAPL,MSFT,FX:*'

prints the token on stdout. Give it to the server as `Authorization: Bearer
TOKEN`, as `?token=TOKEN` on the /ws URL, or as a cookie `token=TOKEN`.

The secret is the file's bytes less one trailing newline, as the server reads
it. Make one with `openssl rand -base64 48 > secret.key; chmod 600 secret.key`.

For tests it also forges tokens the server must refuse: --alg none (no
signature), --alg HS512 (signed with SHA-512), --alg RS256 (an HS256
signature under a header that says RS256), --exp-in -60 (expired), --no-exp,
--nbf-in 600 (not yet valid), --claim KEY=JSON for any other claim.
Integration tests can import it and call mint() directly.

Python standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time

HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data):
    """Unpadded base64url, as RFC 7515 wants."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def read_secret(path):
    """The file's bytes less one trailing newline ("\\n" or "\\r\\n")."""
    with open(path, "rb") as f:
        data = f.read()
    if data.endswith(b"\n"):
        data = data[:-1]
        if data.endswith(b"\r"):
            data = data[:-1]
    return data


def mint(secret, claims, alg="HS256", header_extra=None):
    """Return a compact JWS of claims (a dict) under secret (bytes).

    alg "none" gives an empty signature; HS256/HS384/HS512 sign with that
    hash; any other name is written in the header but signed with HS256, which
    is how an attacker would try to confuse a verifier."""
    header = {"alg": alg, "typ": "JWT"}
    if header_extra:
        header.update(header_extra)
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    if alg == "none":
        return signing_input + "."
    digest = HASHES.get(alg, hashlib.sha256)
    sig = hmac.new(secret, signing_input.encode("ascii"), digest).digest()
    return signing_input + "." + b64url(sig)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mint an HS256 JWT for publisher.")
    ap.add_argument("--secret-file", required=True, help="file holding the HMAC secret")
    ap.add_argument("--sub", help="subject (user name), for the server log")
    ap.add_argument("--exp-in", type=float, default=3600,
                    help="seconds from now until the token expires (negative: already expired)")
    ap.add_argument("--no-exp", action="store_true", help="leave exp out (the server refuses it)")
    ap.add_argument("--nbf-in", type=float, help="seconds from now before the token is valid")
    ap.add_argument("--symbols", required=True,
                    help="comma-separated entitlements: AAPL,FX:*,* ('' for none)")
    ap.add_argument("--alg", default="HS256", help="header alg (default HS256; others forge)")
    ap.add_argument("--now", type=float, help="the current time in seconds (default: the clock)")
    ap.add_argument("--claim", action="append", default=[], metavar="KEY=JSON",
                    help="add or replace a claim, e.g. --claim 'symbols=\"AAPL\"'")
    args = ap.parse_args(argv)

    now = time.time() if args.now is None else args.now
    claims = {}
    if args.sub is not None:
        claims["sub"] = args.sub
    if not args.no_exp:
        claims["exp"] = int(now + args.exp_in)
    if args.nbf_in is not None:
        claims["nbf"] = int(now + args.nbf_in)
    claims["symbols"] = [s for s in args.symbols.split(",") if s] if args.symbols else []
    for kv in args.claim:
        key, sep, value = kv.partition("=")
        if not sep:
            ap.error("--claim wants KEY=JSON, got %r" % kv)
        try:
            claims[key] = json.loads(value)
        except ValueError as e:
            ap.error("--claim %s: value is not JSON: %s" % (key, e))

    try:
        secret = read_secret(args.secret_file)
    except OSError as e:
        print("mint_jwt: cannot read %s: %s" % (args.secret_file, e.strerror), file=sys.stderr)
        return 1
    print(mint(secret, claims, args.alg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
