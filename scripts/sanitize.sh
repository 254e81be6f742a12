#!/usr/bin/env bash
# Builds stitch with AddressSanitizer + UndefinedBehaviorSanitizer (clang)
# into build-asan/, runs the whole test suite there (the Python tests then run
# the sanitized stitch binary), then runs every libFuzzer target for a bounded
# time from a scratch copy of its committed corpus (fuzz/corpus/<target>/,
# which CI never grows). Exits non-zero on any failure or sanitizer report.
#
#   scripts/sanitize.sh [build] [test] [fuzz]   (default: all three, in order)
#
# Environment: STITCH_FUZZ_SECONDS (per target, default 60),
# STITCH_ASAN_BUILD (build folder, default build-asan), STITCH_FUZZ_ARTIFACTS
# (where crashing inputs are kept, default $STITCH_ASAN_BUILD/fuzz-artifacts).
# docs/reliability.md says how to reproduce a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=$PWD
build=${STITCH_ASAN_BUILD:-build-asan}
seconds=${STITCH_FUZZ_SECONDS:-60}
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(build test fuzz)

# Sanitizer settings for every sanitized process, the Python tests' stitch
# runs included. A report exits 86, never 1: 1 is stitch's clean `error:`.
# LibTorch is not instrumented, yet it needs no relaxation of ASan or UBSan
# (no ODR, alloc/dealloc-mismatch or container-overflow reports; UBSan reports
# nothing from LibTorch's inline headers). One leak needs a suppression: see
# fuzz/lsan.supp.
export ASAN_OPTIONS="exitcode=86"
export UBSAN_OPTIONS="exitcode=86:print_stacktrace=1"
export LSAN_OPTIONS="exitcode=86:suppressions=$source_dir/fuzz/lsan.supp"
# The Python tests run the sanitized stitch a few thousand times, and ASan's
# start-up in LibTorch's static initialisers costs ~3 s of CPU each: its
# 256 MB quarantine, allocation stacks and the leak scan at exit are most of
# it. Their stitch runs keep every check but those (tests/python/conftest.py
# reads this): a smaller quarantine, no allocation stacks in a report (run the
# case again without this to get them) and no leak scan, which the C++ tests
# and the fuzzers keep doing.
export STITCH_TESTS_ASAN_OPTIONS="exitcode=86:quarantine_size_mb=16:malloc_context_size=0:detect_leaks=0:max_malloc_fill_size=0"

step_build() {
  bash scripts/install_packages.sh clang libclang-rt-dev llvm clang-format-14
  export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
  CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSTITCH_SANITIZE=ON -DSTITCH_FUZZ=ON -DSTITCH_WERROR=ON -DSTITCH_BUILD_BENCH=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)"
}

step_test() {
  # CXX for the find_package consumer test, which builds against the
  # sanitized library and so needs the same compiler's runtimes.
  (cd "$build" && CXX=clang++ ctest --output-on-failure -j"$(nproc)" --timeout 1500)
}

# -max_len per target: a little over the largest seed, so that mutations stay
# on the parts of the format that matter.
declare -A max_len=(
  [fuzz_spec]=4096 [fuzz_expression]=512 [fuzz_shapes]=512 [fuzz_manifest]=8192
  [fuzz_npy]=2048 [fuzz_safetensors]=2048 [fuzz_pt]=4096)

step_fuzz() {
  local artifacts=${STITCH_FUZZ_ARTIFACTS:-$build/fuzz-artifacts} failed=() summary=()
  mkdir -p "$artifacts"
  artifacts=$(cd "$artifacts" && pwd)
  for target in $(cat "$build/fuzz/targets.txt"); do
    local scratch log dict=()
    scratch=$(mktemp -d)
    log="$artifacts/$target.log"
    cp -r "fuzz/corpus/$target/." "$scratch/"
    [ -f "fuzz/$target.dict" ] && dict=("-dict=fuzz/$target.dict")
    echo "sanitize: fuzzing $target for ${seconds}s"
    # -rss_limit_mb also caps a single malloc: reading a file must never ask
    # for more than the file can hold. -timeout: seconds for one input.
    if "$build/fuzz/$target" "$scratch" "${dict[@]}" -max_total_time="$seconds" \
         -max_len="${max_len[$target]:-4096}" -rss_limit_mb=2048 -timeout=10 \
         -print_final_stats=1 -artifact_prefix="$artifacts/$target-" >"$log" 2>&1; then
      result=ok
    else
      result="FAILED (see $log)"
      failed+=("$target")
      grep -m3 -E "ERROR|runtime error|SUMMARY|deadly|uncaught" "$log" || true
    fi
    local execs inputs
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    inputs=$(find "$scratch" -type f | wc -l)
    summary+=("$(printf '%-18s %10s executions %6s inputs  %s' "$target" "$execs" "$inputs" "$result")")
    rm -rf "$scratch"
  done
  printf '%s\n' "${summary[@]}"
  if [ ${#failed[@]} -gt 0 ]; then
    echo "sanitize: fuzzing found problems in: ${failed[*]} (inputs in $artifacts)" >&2
    return 1
  fi
}

for step in "${steps[@]}"; do
  case $step in
    build|test|fuzz) "step_$step" ;;
    *) echo "usage: scripts/sanitize.sh [build] [test] [fuzz]" >&2; exit 2 ;;
  esac
done
