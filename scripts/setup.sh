#!/usr/bin/env bash
# Installs what laguna.c needs to build and test on a fresh Debian machine.
set -euo pipefail
pkgs="build-essential pkg-config libcjson-dev libpcre2-dev libutf8proc-dev libmicrohttpd-dev libedit-dev curl"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
