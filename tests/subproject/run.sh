#!/usr/bin/env bash
# Configures tests/subproject, which pulls stitch in with add_subdirectory.
# Only configures and generates: building would compile the library a second
# time, which the install test (consumer/run.sh) already links against.
set -euo pipefail
source=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake -S "$source" -B "$tmp/build" -DSTITCH_SOURCE="$source/../.." >/dev/null
link=$tmp/build/CMakeFiles/app.dir/link.txt
for lib in stitch/src/libstitch.a stitch/src/libstitch_compat.so libtorch; do
  grep -q "$lib" "$link" || { echo "app does not link $lib: $(cat "$link")"; exit 1; }
done
echo "add_subdirectory(stitch): configured"
