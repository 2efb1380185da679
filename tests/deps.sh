#!/bin/sh
# Install what the build and the tests need on Debian 12, only when missing.
# Uses apt-get, through sudo when not root. Prints nothing when all is there.
set -e

missing=""
need_pkg() { # need_pkg CHECK-COMMAND DEBIAN-PACKAGE
	if ! sh -c "$1" >/dev/null 2>&1; then
		missing="$missing $2"
	fi
}

need_pkg "command -v cc" gcc
need_pkg "command -v make" make
need_pkg "command -v pkg-config" pkg-config
need_pkg "pkg-config --exists libwebsockets" libwebsockets-dev
need_pkg "pkg-config --exists jansson" libjansson-dev
need_pkg "pkg-config --exists sqlite3" libsqlite3-dev
need_pkg "pkg-config --exists cmocka" libcmocka-dev
need_pkg "pkg-config --exists openssl" libssl-dev
need_pkg "pkg-config --exists libcrypto" libssl-dev
need_pkg "pkg-config --exists libuv" libuv1-dev
# WebSocket compression (publisher/ws_deflate.c).
need_pkg "pkg-config --exists zlib" zlib1g-dev
# libwebsockets runs on our libuv loop through its libuv event library,
# a plugin the runtime package does not pull in.
need_pkg "test -e /usr/lib/$(gcc -dumpmachine)/libwebsockets-evlib_uv.so" libwebsockets-evlib-uv
need_pkg "command -v sqlite3" sqlite3
# Scale-out through Redis: hiredis to build, a real server to test.
need_pkg "pkg-config --exists hiredis" libhiredis-dev
need_pkg "command -v redis-server" redis-server
# ... and nginx as the load balancer in front of the edges (its proxy and
# upstream modules are all the test needs; nginx-light has them).
need_pkg "command -v nginx || test -x /usr/sbin/nginx" nginx-light
need_pkg "test -x /usr/bin/python3" python3
need_pkg "/usr/bin/python3 -c 'import websockets'" python3-websockets
# The security tests: a certificate made at test time, a run under valgrind.
need_pkg "command -v openssl" openssl
need_pkg "command -v valgrind" valgrind
# The fuzzers (make fuzz): clang with its libFuzzer runtime.
need_pkg "command -v clang" clang
need_pkg "test -n \"\$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)\"" libclang-rt-dev
# The dashboard tests: real headless Chromium driven by npm playwright-core.
need_pkg "command -v node" nodejs
need_pkg "command -v npm" npm
need_pkg "test -x /usr/bin/chromium" chromium

[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "deps: need root or sudo to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
