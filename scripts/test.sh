#!/usr/bin/env bash
# Sets up, builds, and runs the whole test suite (C++ GoogleTest + Python
# tests that compare stitch's artifacts with PyTorch written by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
STITCH_CMAKE_ARGS="${STITCH_CMAKE_ARGS:--DSTITCH_WERROR=ON}" bash scripts/setup.sh
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 1500
