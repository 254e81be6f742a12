#!/usr/bin/env bash
# Installs what stitch needs from Debian's archive (as root), then configures
# and builds it into build/. Safe to run again: it installs only what is
# missing and rebuilds only what changed (ccache + precompiled headers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_packages.sh

export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_MAXSIZE=5G
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${STITCH_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"
