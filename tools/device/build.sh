#!/usr/bin/env bash
# Dev-only: builds laguna on the GPU machine, which has the CUDA toolkit but
# neither network nor the Debian -dev packages the build needs. The packages
# are fetched here beforehand (`apt-get download` into .debs/, untracked, never
# committed) and unpacked under /tmp/deps there. Usage: tools/device/build.sh [make targets]
set -euo pipefail
D=/tmp/deps
L=$D/usr/lib/x86_64-linux-gnu
if ! pkg-config --exists libcjson libpcre2-8 libutf8proc libmicrohttpd 2>/dev/null; then
    [ -d .debs ] || { echo "tools/device/build.sh: no .debs/ folder (apt-get download the -dev packages first)" >&2; exit 1; }
    mkdir -p $D
    for f in .debs/*.deb; do dpkg -x "$f" $D; done
    set -- "DEPS_CFLAGS=-I$D/usr/include -I$D/usr/include/cjson" \
        "DEPS_LIBS=-L$L -Wl,-rpath,$L -lcjson -lpcre2-8 -lutf8proc -lmicrohttpd" \
        "CLI_LIBS=-L$L -Wl,-rpath,$L -ledit" "$@"
fi
make -j"$(nproc)" "$@"
