#!/usr/bin/env bash
# Sets up and runs the whole test suite, as CI does, on both LibTorch legs:
#
# 1. This machine's LibTorch (Debian 12: 1.13). Installs what is missing
#    (Debian, as root), builds everything with clang, AddressSanitizer,
#    UndefinedBehaviorSanitizer and -Werror into build-asan/, runs every C++
#    and Python test against that build (the Python tests run the sanitized
#    stitch binary), then runs each libFuzzer target for STITCH_FUZZ_SECONDS
#    (default 6) from its committed corpus. See scripts/sanitize.sh. The
#    tests of models saved by PyTorch 2.6 export them with Debian 13's
#    PyTorch, in the root that scripts/debian13.sh makes first.
# 2. Debian 13's LibTorch 2.6, in that root: a plain -Werror build into
#    build-debian13/ and the same C++ and Python tests (scripts/debian13.sh
#    test). STITCH_LEGS=1 or STITCH_LEGS=2 runs one leg only.
#
# The plain build (scripts/setup.sh, build/) runs the same suite with
# `cd build && ctest -j"$(nproc)"`.
set -euo pipefail
cd "$(dirname "$0")/.."
export STITCH_FUZZ_SECONDS=${STITCH_FUZZ_SECONDS:-6}
legs=${STITCH_LEGS:-12}
start=$SECONDS
bash scripts/debian13.sh root
if [[ $legs == *1* ]]; then
  echo "test: leg 1, LibTorch of this machine, sanitized"
  bash scripts/sanitize.sh build test fuzz
  echo "test: leg 1 done after $((SECONDS - start)) s"
fi
if [[ $legs == *2* ]]; then
  echo "test: leg 2, Debian 13's LibTorch 2.6"
  bash scripts/debian13.sh test
  echo "test: leg 2 done after $((SECONDS - start)) s"
fi
