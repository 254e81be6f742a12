#!/usr/bin/python3
"""Turns the rounds bench/run.sh recorded into a table of ratios and BENCHMARKS.md.

    /usr/bin/python3 bench/report.py ROUNDS_DIR [--markdown BENCHMARKS.md]
        [--threads T] [--blas PATH] [--cpu NAME] [--nproc N] [--torch V]

ROUNDS_DIR holds round_<k>_cpp.json (Google Benchmark's JSON from stitch_bench)
and round_<k>_py.json (bench/python_baseline.py). In each round the median of
that round's repetitions is taken for every variant; a ratio is computed per
round, and the table shows the median ratio over the rounds with its range.
Ratios come from times measured minutes apart at most, which is what makes them
comparable on a machine whose speed drifts.
"""

import argparse
import datetime
import glob
import json
import os
import re
import statistics
import sys

from markdown_section import markers  # this folder: bench/

VARIANT = {0: "artifact", 1: "byhand", 2: "optimized", 3: "concurrent", 4: "train_step"}


def read_cpp(file):
    with open(file) as f:
        data = json.load(f)
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    times = {}
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        name = b["run_name"] if "run_name" in b else b["name"]
        seconds = b["real_time"] * scale[b["time_unit"]]
        m = re.match(r"BM_(\w+)/variant:(\d+)/batch:(\d+)", name)
        if m:
            key = f"{m.group(1)}/b{m.group(3)}/{VARIANT[int(m.group(2))]}"
        else:
            m = re.match(r"BM_compose_(\w+?)(/|$)", name)
            if not m:
                continue
            key = f"compose/{m.group(1)}"
        times.setdefault(key, []).append(seconds)
    return times


def read_times(file):
    with open(file) as f:
        return json.load(f)["times"]


def load_rounds(folder):
    """One dict per round: variant -> median seconds. A round is
    round_<k>_cpp.json (and round_<k>_cpp_*.json, Google Benchmark's too)
    plus any other round_<k>_*.json with {"times": ...} (python_baseline.py's,
    run.sh's `stitch inspect` timings)."""
    rounds = []
    for cpp in sorted(glob.glob(os.path.join(folder, "round_*_cpp.json")),
                      key=lambda p: int(re.search(r"round_(\d+)_", p).group(1))):
        times = read_cpp(cpp)
        for other in sorted(glob.glob(cpp.replace("_cpp.json", "_*.json"))):
            if other == cpp:
                continue
            cpp_too = os.path.basename(other).startswith(os.path.basename(cpp)[:-5] + "_")
            times.update(read_cpp(other) if cpp_too else read_times(other))
        rounds.append({k: statistics.median(v) for k, v in times.items()})
        for k, v in times.items():
            BEST[k] = min(BEST.get(k, float("inf")), min(v))
    return rounds


# The fastest repetition of every variant over the whole run: noise from other
# processes only ever adds time, so best / best is the ratio least disturbed
# by a busy machine.
BEST = {}


# What each ratio means, by label.
MEANING = {
    "artifact / by-hand C++":
        "the stitch artifact's forward vs the same component files called one after another "
        "from C++ (for the cut: the prefix scripted by hand, `resnet18_prefix_layer3.pt`)",
    "artifact / Python eager":
        "the artifact from C++ vs the same network written with torchvision/nn modules, eager, "
        "from Python",
    "artifact / Python TorchScript":
        "the artifact from C++ vs torch.jit.script of that module, run from Python",
    "artifact in Python / Python eager":
        "the same artifact file torch.jit.load-ed in Python vs Python eager",
    "optimized artifact / Python eager":
        "the artifact `stitch compose --optimize` writes (stitch::fold_weights: freeze, "
        "channels-last convolution weights), saved and loaded back, vs Python eager",
    "concurrent / plain artifact":
        "the artifact built with concurrent branches (`BuildOptions().concurrent(true)`: "
        "fork/wait) vs the same artifact without them, both from C++",
    "concurrent / Python eager": "the concurrent artifact from C++ vs Python eager",
    "concurrent in Python / plain in Python":
        "the two artifacts torch.jit.load-ed in Python",
    "cut in Python / prefix by hand in Python":
        "the cut artifact vs the by-hand prefix, both torch.jit.load-ed in Python",
    "stitch step / Python eager step":
        "one training step (forward, loss, backward, optimizer step) through "
        "stitch::TrainStep, the code `stitch train` runs, vs the same step in Python eager",
}

# (scenario, batch, label, numerator, denominator, target)
FORWARD = ["artifact / by-hand C++", "artifact / Python eager", "artifact / Python TorchScript",
           "artifact in Python / Python eager", "optimized artifact / Python eager"]
VARIANTS_OF = {
    "artifact / by-hand C++": ("artifact", "byhand"),
    "artifact / Python eager": ("artifact", "py_eager"),
    "artifact / Python TorchScript": ("artifact", "py_torchscript"),
    "artifact in Python / Python eager": ("py_artifact", "py_eager"),
    "optimized artifact / Python eager": ("optimized", "py_eager"),
    "concurrent / plain artifact": ("concurrent", "artifact"),
    "concurrent / Python eager": ("concurrent", "py_eager"),
    "concurrent in Python / plain in Python": ("py_concurrent", "py_artifact"),
    "cut in Python / prefix by hand in Python": ("py_artifact", "py_torchscript"),
    "stitch step / Python eager step": ("train_step", "py_eager"),
}
TARGETS = {  # (scenario, batch, label) -> (target, where it comes from)
    ("resnet18_head", "b1", "artifact / by-hand C++"): (1.02, "#7 compose overhead"),
    ("resnet18_head", "b8", "artifact / by-hand C++"): (1.02, "#7 compose overhead"),
    ("chain_mlp", "b1", "artifact / by-hand C++"): (1.02, "#7 compose overhead"),
    ("chain_mlp", "b64", "artifact / by-hand C++"): (1.02, "#7 compose overhead"),
    ("resnet18_head", "b8", "optimized artifact / Python eager"): (0.65, "#7"),
    ("late_fusion", "b1", "concurrent / plain artifact"): (0.90, "#7"),
    ("cut_resnet18", "b1", "artifact / by-hand C++"): (1.02, "#3"),
    ("cut_resnet18", "b8", "artifact / by-hand C++"): (1.02, "#3"),
    ("cut_resnet18", "b1", "cut in Python / prefix by hand in Python"): (1.02, "#3"),
    ("cut_resnet18", "b8", "cut in Python / prefix by hand in Python"): (1.02, "#3"),
    ("train_dual_encoder", "b8", "stitch step / Python eager step"): (1.0, "#7: no slower"),
    ("train_small_dual_encoder", "b8", "stitch step / Python eager step"):
        (1 / 1.5, "#5: 1.5x faster"),
    ("train_frozen_resnet18_head", "b8", "stitch step / Python eager step"):
        (1.0, "#5: no slower"),
}
RATIOS = (
    [(scen, b, label) for scen, batches in [("resnet18_head", ["b1", "b8"]),
                                            ("chain_mlp", ["b1", "b64"])]
     for b in batches for label in FORWARD]
    + [("late_fusion", b, label) for b in ["b1", "b8"]
       for label in ["concurrent / plain artifact", "artifact / Python eager",
                     "artifact / Python TorchScript", "concurrent / Python eager",
                     "concurrent in Python / plain in Python"]]
    + [("two_resnets", "b1", "concurrent / plain artifact")]
    + [("cut_resnet18", b, label) for b in ["b1", "b8"]
       for label in ["artifact / by-hand C++", "cut in Python / prefix by hand in Python",
                     "artifact / Python eager"]]
    + [("train_dual_encoder", "b8", "stitch step / Python eager step"),
       ("train_small_dual_encoder", "b8", "stitch step / Python eager step"),
       ("train_frozen_resnet18_head", "b8", "stitch step / Python eager step")])

# Targets on absolute times: (label, variant key, limit in seconds, issue).
TIME_TARGETS = [
    ("dual-encoder training step, batch 8, stitch", "train_dual_encoder/b8/train_step", 1.0,
     "#7 (with the setup's BLAS)"),
    ("`stitch inspect resnet50.pt --input 1x3x224x224`, whole process",
     "inspect_resnet50/process", 3.0, "#3"),
]


def summarize(values):
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt_ratio(s):
    return "n/a" if s is None else f"{s[0]:.3f} ({s[1]:.3f}-{s[2]:.3f})"


def fmt_time(seconds):
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def build_tables(rounds):
    ratio_rows = []
    for scenario, batch, label in RATIOS:
        num, den = VARIANTS_OF[label]
        a, b = f"{scenario}/{batch}/{num}", f"{scenario}/{batch}/{den}"
        values = [r[a] / r[b] for r in rounds if a in r and b in r]
        target, _ = TARGETS.get((scenario, batch, label), (None, None))
        s = summarize(values)
        best = BEST[a] / BEST[b] if a in BEST and b in BEST else None
        met = "" if target is None or s is None else ("yes" if s[0] <= target else "NO")
        ratio_rows.append((f"{scenario} {batch}", label, s, best, target, met))
    time_target_rows = []
    for label, key, limit, issue in TIME_TARGETS:
        s = summarize([r[key] for r in rounds if key in r])
        met = "" if s is None else ("yes" if s[0] <= limit else "NO")
        time_target_rows.append((label, s, limit, issue, met))
    compose_rows = []
    for label, key in [("load only (2 x torch::jit::load), absolute", None),
                       ("check (load, cut, probe) beyond loading", "compose/check"),
                       ("build (check + build) beyond loading", "compose/build"),
                       ("build + save beyond loading", "compose/build_save"),
                       ("`stitch compose` as before #18 (check, then a build that "
                        "checks again, save) beyond loading", "compose/cli_checking_twice"),
                       ("`stitch compose` now (check, build from its report, save) "
                        "beyond loading", "compose/cli")]:
        if key is None:
            values = [r["compose/load_only"] for r in rounds if "compose/load_only" in r]
            compose_rows.append((label, summarize(values), ""))
            continue
        values = [r[key] - r["compose/load_only"] for r in rounds
                  if key in r and "compose/load_only" in r]
        s = summarize(values)
        met = "" if s is None else ("yes" if s[0] < 2.0 else "NO")
        compose_rows.append((label, s, met))
    time_rows = []
    keys = sorted({k for r in rounds for k in r})
    for key in keys:
        values = [r[key] for r in rounds if key in r]
        time_rows.append((key, statistics.median(values), min(values), max(values)))
    return ratio_rows, compose_rows, time_rows, time_target_rows


def peak_memory_row(folder):
    """Peak resident memory of the resnet18 + head step, frozen vs trainable
    (run.sh's two `stitch_bench --peak-memory` processes), or None."""
    peaks = {}
    for mode in ["frozen", "trainable"]:
        file = os.path.join(folder, f"peak_{mode}.json")
        if not os.path.exists(file):
            return None
        with open(file) as f:
            peaks[mode] = json.load(f)
    return peaks


def fmt_target_time(s):
    return "n/a" if s is None else f"{fmt_time(s[0])} ({fmt_time(s[1])}-{fmt_time(s[2])})"


def peak_lines(peaks):
    if peaks is None:
        return ["peak memory: not measured (no peak_frozen.json / peak_trainable.json)"]
    f, t = peaks["frozen"], peaks["trainable"]
    met = "yes" if f["peak_kb"] < t["peak_kb"] else "NO"
    return [f"peak memory of the resnet18 + head step, b8: frozen {f['peak_kb'] / 1024:.0f} MB "
            f"(+{(f['peak_kb'] - f['rss_before_kb']) / 1024:.0f} MB over the steady state), "
            f"trainable {t['peak_kb'] / 1024:.0f} MB "
            f"(+{(t['peak_kb'] - t['rss_before_kb']) / 1024:.0f} MB); target frozen < "
            f"trainable (#5): {met}"]


def text_table(ratio_rows, compose_rows, time_target_rows=(), peaks=None):
    lines = [f"{'scenario':<30} {'ratio':<40} {'median (min-max)':<26} {'best':<6} "
             f"{'target':<8} met"]
    for scen, label, s, best, target, met in ratio_rows:
        t = "" if target is None else f"<= {target:.2f}"
        b = "" if best is None else f"{best:.3f}"
        lines.append(f"{scen:<30} {label:<40} {fmt_ratio(s):<26} {b:<6} {t:<8} {met}")
    for label, s, met in compose_rows:
        v = "n/a" if s is None else f"{s[0]:.2f} s ({s[1]:.2f}-{s[2]:.2f})"
        t = "< 2 s" if met else ""
        lines.append(f"{'compose 2x resnet18':<20} {label:<42} {v:<24} {t:<8} {met}")
    for label, s, limit, issue, met in time_target_rows:
        lines.append(f"{label:<64} {fmt_target_time(s):<30} <= {fmt_time(limit):<8} {met}")
    lines += peak_lines(peaks)
    return "\n".join(lines)


def markdown(rounds, ratio_rows, compose_rows, time_rows, time_target_rows, peaks, meta):
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    out = []
    out.append("# Benchmarks\n")
    out.append(f"Measured {now} by `bash bench/run.sh` ({len(rounds)} interleaved rounds). "
               "Numbers are ratios of times measured in the same run; absolute times "
               "are at the end, for scale only.\n")
    out.append("| machine | |\n|---|---|")
    out.append(f"| CPU | {meta.cpu} |")
    out.append(f"| cores (`nproc`) | {meta.nproc} |")
    out.append(f"| intra-op threads (both sides) | {meta.threads} |")
    out.append(f"| `libblas.so.3` | `{meta.blas}` |")
    out.append(f"| PyTorch / LibTorch | {meta.torch} (Debian) |")
    out.append(f"| load average at start / end | {meta.load_start} / {meta.load_end} |")
    out.append("")
    out.append("## Ratios\n")
    out.append("Median over rounds of the per-round ratio, with the smallest and largest "
               "round in brackets; `best` is the fastest repetition of one side over the "
               "fastest of the other over the whole run (interference from other "
               "processes only adds time, so it is the least disturbed estimate). "
               "Below 1 means the first-named side is faster. `met` judges the median.\n")
    out.append("| scenario | ratio | median (min-max) | best | target | met |")
    out.append("|---|---|---|---|---|---|")
    for scen, label, s, best, target, met in ratio_rows:
        t = ""
        if target is not None:
            issue = TARGETS[(scen.split()[0], scen.split()[1], label)][1]
            t = f"<= {target:.2f} ({issue})"
        b = "" if best is None else f"{best:.3f}"
        out.append(f"| {scen} | {label} | {fmt_ratio(s)} | {b} | {t} | {met} |")
    out.append("")
    out.append("| time | median (min-max) | target | met |")
    out.append("|---|---|---|---|")
    for label, s, limit, issue, met in time_target_rows:
        out.append(f"| {label} | {fmt_target_time(s)} | <= {fmt_time(limit)} ({issue}) | {met} |")
    out.append("")
    for line in peak_lines(peaks):
        out.append(f"- {line[0].upper()}{line[1:]}.")
    out.append("")
    out.append("| compose of two resnet18 (cut at avgpool, concat) | seconds (beyond "
               "loading both files) | target | met |")
    out.append("|---|---|---|---|")
    for label, s, met in compose_rows:
        v = "n/a" if s is None else f"{s[0]:.2f} s ({s[1]:.2f}-{s[2]:.2f})"
        out.append(f"| {label} | {v} | {'< 2 s' if met else ''} | {met} |")
    out.append("")
    out.append("## What each row means\n")
    out.append("Scenarios: `resnet18_head` is `resnet18.pt` cut at `avgpool` followed by "
               "`head.pt` (Flatten + Linear(512, 5)), input `[B, 3, 224, 224]`; "
               "`chain_mlp` is `mlp_a.pt` (Linear(64, 64) + ReLU) then `mlp_b.pt` "
               "(Linear(64, 10)), input `[B, 64]`. The models are the test fixtures "
               "(`tests/fixtures/make_fixtures.py`, torchvision architectures with seeded "
               "random weights); every side uses the same weights, and "
               "`python_baseline.py` checks that all variants give the same output.\n")
    out.append("Also: `late_fusion` is resnet18 cut at `avgpool` on `image` and `mlp_a.pt` on "
               "`features` `[B, 64]`, flattened and concatenated, then `linear(.., 5)`; "
               "`two_resnets` is the compose scenario's graph (two resnet18 cut at `avgpool` on one image, concatenated), C++ only; `cut_resnet18` is `resnet18.pt` cut at `layer3`; `train_dual_encoder` is "
               "resnet18 (cut at `avgpool`) + a 2-layer transformer encoder "
               "(`bench/make_bench_models.py`), each with a linear projection to 64 and "
               "l2norm, clip loss, AdamW; `train_small_dual_encoder` is the same step with two small "
               "towers (a 2-conv CNN on 32x32 images, a width-64 transformer on 16 tokens, "
               "projections to 32); `train_frozen_resnet18_head` is frozen resnet18 + "
               "`head.pt`, cross entropy, Adam.\n")
    for label, meaning in MEANING.items():
        out.append(f"- **{label}**: {meaning}.")
    out.append("- **compose beyond loading**: `stitch::build` of a graph of two "
               "resnet18 files (`resnet18.pt`, `resnet18_b.pt`, both cut at `avgpool`, "
               "outputs concatenated; input `[N, 3, 224, 224]`) minus the time "
               "`torch::jit::load` takes for the same two files. `check` is the part of it "
               "that loads (with sha256), cuts and probes the models (two probe forwards "
               "per model, at batch 2 and 3); `build + save` adds `stitch::save`, which is "
               "what `stitch compose` does, and is the row the target is about.")
    out.append("")
    out.append("## Method\n")
    out.append("- `bench/stitch_bench.cpp` (Google Benchmark) times the C++ side: the "
               "artifact is built with the C++ API, saved, and loaded back with "
               "`torch::jit::load`, as it ships. The by-hand baseline loads the component "
               "files with `torch::jit::load` and calls them in order (resnet18's "
               "children `conv1` .. `avgpool`, then the head). Threads are set with "
               "`stitch::set_threads()`; all forwards run under `NoGradGuard`, after 5 warm-up calls "
               "per process. Within one process Google Benchmark's random interleaving "
               "runs the repetitions of all variants in a shuffled order.")
    out.append("- `bench/python_baseline.py` times the Python side (`/usr/bin/python3`, "
               "`torch.no_grad()`, `torch.set_num_threads` to the same count, 5 warm-up calls "
               "per variant), also in "
               "shuffled repetitions.")
    out.append("- `bench/run.sh` alternates the two processes round after round (C++ first "
               "in odd rounds, Python first in even ones), so that the speed drift of "
               "this machine (tens of percent over minutes) hits both sides alike. Each "
               "ratio is computed within a round, then the median over rounds is shown.")
    out.append("- Not a test: nothing here runs under ctest or CI.\n")
    out.append("## Absolute times (median over rounds, min-max), for scale\n")
    out.append("| variant | time per call |")
    out.append("|---|---|")
    for key, med, lo, hi in time_rows:
        out.append(f"| {key} | {fmt_time(med)} ({fmt_time(lo)}-{fmt_time(hi)}) |")
    out.append("")
    if meta.notes and os.path.exists(meta.notes):
        with open(meta.notes) as f:
            out.append(f.read().rstrip() + "\n")
    return "\n".join(out)


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("rounds_dir")
    p.add_argument("--markdown")
    p.add_argument("--threads", default="?")
    p.add_argument("--blas", default="?")
    p.add_argument("--cpu", default="?")
    p.add_argument("--nproc", default="?")
    p.add_argument("--torch", default="?")
    p.add_argument("--load-start", default="?")
    p.add_argument("--load-end", default="?")
    p.add_argument("--notes", help="a Markdown file appended to BENCHMARKS.md")
    meta = p.parse_args(argv[1:])
    rounds = load_rounds(meta.rounds_dir)
    if not rounds:
        print(f"error: no round_*_cpp.json in {meta.rounds_dir}", file=sys.stderr)
        return 1
    ratio_rows, compose_rows, time_rows, time_target_rows = build_tables(rounds)
    peaks = peak_memory_row(meta.rounds_dir)
    print(text_table(ratio_rows, compose_rows, time_target_rows, peaks))
    if meta.markdown:
        text = markdown(rounds, ratio_rows, compose_rows, time_rows, time_target_rows, peaks,
                        meta)
        # Sections other benchmarks write (bench/compat_attention.py) stay.
        if os.path.exists(meta.markdown):
            with open(meta.markdown) as f:
                old = f.read()
            # bench/compat_attention.py, merge_bench.py, dead_code_bench.py
            for name in ("compat-attention", "merge", "dead-code"):
                begin, end = markers(name)
                if begin in old and end in old:
                    text = (text.rstrip("\n") + "\n\n" +
                            old[old.index(begin):old.index(end) + len(end)] + "\n")
        with open(meta.markdown + ".tmp", "w") as f:
            f.write(text)
        os.replace(meta.markdown + ".tmp", meta.markdown)
        print(f"wrote {meta.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
