#!/usr/bin/env bash
# Sets up and runs the whole test suite, as CI does: installs what is missing
# (Debian, as root), builds everything with clang, AddressSanitizer,
# UndefinedBehaviorSanitizer and -Werror into build-asan/, runs every C++
# and Python test against that build (the Python tests run the sanitized
# stitch binary), then runs each libFuzzer target for STITCH_FUZZ_SECONDS
# (default 6) from its committed corpus. See scripts/sanitize.sh.
#
# The plain build (scripts/setup.sh, build/) runs the same suite with
# `cd build && ctest -j"$(nproc)"`.
set -euo pipefail
cd "$(dirname "$0")/.."
export STITCH_FUZZ_SECONDS=${STITCH_FUZZ_SECONDS:-6}
bash scripts/sanitize.sh build test fuzz
