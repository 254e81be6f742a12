#!/usr/bin/env bash
# Installs the built stitch into a temporary prefix and builds and runs a
# consumer project against it with find_package(stitch).
set -euo pipefail
build=$1 source=$(dirname "$0")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$source" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build "$tmp/build" >/dev/null
"$tmp/build/app"
