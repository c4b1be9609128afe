#!/bin/sh
# Install the benchmark's tools from Debian packages when missing: wrk (required) and nginx
# (the reference proxy; the benchmark skips it and says so when it cannot be installed).
# Needs root (or sudo) for apt-get. Safe to run again: installed tools are left alone.
set -u

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

missing=""
have wrk || missing="$missing wrk"
have nginx || missing="$missing nginx"
if [ -z "$missing" ]; then
    echo "bench/setup.sh: wrk and nginx are installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "bench/setup.sh: not root and no sudo; cannot install:$missing" >&2
    fi
fi

echo "bench/setup.sh: installing:$missing"
$SUDO apt-get update -qq || echo "bench/setup.sh: apt-get update failed" >&2
for package in $missing; do
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$package" >/dev/null \
        || echo "bench/setup.sh: could not install $package" >&2
done

if ! have wrk; then
    echo "bench/setup.sh: wrk is required and is not installed" >&2
    exit 1
fi
if ! have nginx; then
    echo "bench/setup.sh: nginx is not installed: the nginx comparison will be skipped" >&2
fi
exit 0
