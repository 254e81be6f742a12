#!/usr/bin/env bash
# Builds stitch_bench, runs it and bench/python_baseline.py in interleaved
# rounds, prints the table of ratios and writes BENCHMARKS.md.
#
#   bash bench/run.sh [ROUNDS]
#
# Each round runs stitch_bench, python_baseline.py and `stitch inspect` of
# resnet50 (order alternating); after the rounds, two processes measure the
# peak memory of a training step with the backbone frozen and trainable.
# Merges and unused entries have benchmarks of their own: bench/merge_bench.py,
# bench/dead_code_bench.py.
#
# Environment:
#   STITCH_BENCH_BUILD  build folder (default: build-bench in the source tree)
#   STITCH_THREADS      intra-op threads on both sides (default: nproc)
#   BENCH_REPS          repetitions of every variant per round and side (3)
#   BENCH_MIN_TIME      seconds per repetition (0.5)
#   BENCH_MARKDOWN      where to write the report (default: BENCHMARKS.md in
#                       the source tree; "-" to only print the table)
# Not a test: CI does not run it. Numbers are ratios measured in one run.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${STITCH_BENCH_BUILD:-$SRC/build-bench}
ROUNDS=${1:-4}
REPS=${BENCH_REPS:-3}
MIN_TIME=${BENCH_MIN_TIME:-0.5}
MARKDOWN=${BENCH_MARKDOWN:-$SRC/BENCHMARKS.md}
THREADS=${STITCH_THREADS:-$(nproc)}
export STITCH_THREADS=$THREADS
PY=/usr/bin/python3

echo "== building stitch_bench in $BUILD"
cmake -S "$SRC" -B "$BUILD" -DSTITCH_BUILD_BENCH=ON > "$BUILD.cmake.log" 2>&1 ||
  { cat "$BUILD.cmake.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target stitch_bench stitch_cli

BIN=$BUILD/bench/stitch_bench
if [[ -f $BUILD/fixtures/.stamp ]]; then
  FIXTURES=$BUILD/fixtures           # the tests' fixtures (tests are built)
else
  FIXTURES=$BUILD/bench/fixtures     # exported for the benchmark alone
fi
export STITCH_BENCH_FIXTURES=$FIXTURES
export STITCH_BENCH_OUT=$BUILD/bench/artifacts
RESULTS=$BUILD/bench/results
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
"$PY" "$SRC/bench/make_bench_models.py" "$FIXTURES" "$STITCH_BENCH_OUT" \
  > "$RESULTS/models.log" 2>&1 || { cat "$RESULTS/models.log"; exit 1; }

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_START=$(loadavg)
echo "== $ROUNDS rounds, $REPS repetitions of ${MIN_TIME}s, $THREADS threads, load $LOAD_START"

# Builds and saves the artifacts the Python side loads.
"$BIN" --benchmark_filter='BM_chain_mlp/variant:0/batch:1' --benchmark_min_time=0.01 \
  > "$RESULTS/prepare.log" 2>&1 || { cat "$RESULTS/prepare.log"; exit 1; }

# The variants that fork (concurrent branches) run in a process of their
# own on each side, one process per scenario: once a fork has run,
# LibTorch's inter-op threads hold OpenMP teams of their own, and every later
# variant in that process shares the two cores with them (the small
# dual-encoder step measured 5-8 ms alone and 13-15 ms after the two_resnets
# fork; concurrent late fusion at b1, 1.0x of plain alone and 1.5x after it).
run_cpp() {  # round, output suffix, filter
  "$BIN" --benchmark_repetitions="$REPS" --benchmark_enable_random_interleaving=true \
    --benchmark_min_time="$MIN_TIME" --benchmark_report_aggregates_only=false \
    --benchmark_filter="$3" \
    --benchmark_out="$RESULTS/round_$1_$2.json" --benchmark_out_format=json \
    > "$RESULTS/round_$1_$2.log" 2>&1 || { cat "$RESULTS/round_$1_$2.log"; exit 1; }
}
run_py() {  # round, output suffix, python_baseline.py's selection
  "$PY" "$SRC/bench/python_baseline.py" --fixtures "$FIXTURES" \
    --artifacts "$STITCH_BENCH_OUT" --threads "$THREADS" --reps "$REPS" \
    --min-time "$MIN_TIME" --seed "$1" --out "$RESULTS/round_$1_$2.json" "${@:3}" \
    > "$RESULTS/round_$1_$2.log" 2>&1 || { cat "$RESULTS/round_$1_$2.log"; exit 1; }
}
run_sides() {  # round; odd rounds start with C++, even ones with Python
  local cpp=(run_cpp "$1" cpp '-variant:3/|BM_merge_') py=(run_py "$1" py --skip concurrent)
  if (($1 % 2)); then "${cpp[@]}"; "${py[@]}"; else "${py[@]}"; "${cpp[@]}"; fi
  run_cpp "$1" cpp_concurrent 'BM_late_fusion/variant:3/'
  run_cpp "$1" cpp_concurrent_two_resnets 'BM_two_resnets/variant:3/'
  run_py "$1" py_concurrent --filter concurrent
}

# The wall time of a whole `stitch inspect` process (start-up, load, probe).
run_inspect() {
  local start=$EPOCHREALTIME
  "$BUILD/stitch" inspect "$STITCH_BENCH_OUT/resnet50.pt" --input 1x3x224x224 \
    > "$RESULTS/round_$1_inspect.log" 2>&1 || { cat "$RESULTS/round_$1_inspect.log"; exit 1; }
  local seconds
  seconds=$("$PY" -c "print($EPOCHREALTIME - $start)")
  echo "{\"times\": {\"inspect_resnet50/process\": [$seconds]}}" > "$RESULTS/round_$1_inspect.json"
}

for ((k = 1; k <= ROUNDS; k++)); do
  start=$SECONDS
  if ((k % 2)); then
    run_sides "$k"; run_inspect "$k"
  else
    run_inspect "$k"; run_sides "$k"
  fi
  echo "round $k/$ROUNDS done in $((SECONDS - start)) s (load $(loadavg))"
done
for mode in frozen trainable; do
  "$BIN" --peak-memory=$mode > "$RESULTS/peak_$mode.json" 2> "$RESULTS/peak_$mode.log" ||
    { cat "$RESULTS/peak_$mode.log"; exit 1; }
done
LOAD_END=$(loadavg)

BLAS=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null |
  awk '/^Value:/ {print $2}')
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
TORCH=$("$PY" -c 'import torch; print(torch.__version__)')
REPORT_ARGS=("$RESULTS" --threads "$THREADS" --blas "${BLAS:-unknown}" --cpu "${CPU:-unknown}"
  --nproc "$(nproc)" --torch "$TORCH" --load-start "$LOAD_START" --load-end "$LOAD_END"
  --notes "$SRC/bench/notes.md")
if [[ $MARKDOWN != - ]]; then REPORT_ARGS+=(--markdown "$MARKDOWN"); fi
echo
"$PY" "$SRC/bench/report.py" "${REPORT_ARGS[@]}"
