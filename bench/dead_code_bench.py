#!/usr/bin/python3
"""The dead-code benchmark (#20): a spec with an entry no output uses and a
model call written twice, composed by stitch, against the spec of the used
part alone; and, for scale, the same spec with the unused entry made an
output (its resnet18 call is the used part's, computed once). The three artifacts run in
one Python process (torch.jit.load), batch 1, in interleaved rounds.

    /usr/bin/python3 bench/dead_code_bench.py [--build BUILD] [--rounds R] [--markdown BENCHMARKS.md]

BUILD has the stitch binary and the test fixtures (default build-bench, as
bench/run.sh builds it). With --markdown, the section between the dead-code
markers of that file is replaced (bench/run.sh's report keeps it). Not a
test: CI does not run it.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from markdown_section import markers, write_section  # noqa: E402

SRC = Path(__file__).resolve().parent.parent
BEGIN, END = markers("dead-code")

HEADER = """\
inputs:
  image: [N, 3, 224, 224]
models:
  vision: {file: resnet18.pt, cut: avgpool}
  head: {file: head.pt}
  depth: {file: head.pt}
graph:
  - logits = head(vision(image))
"""
# The branch: pooled vision features through another head.
BRANCH = "  - z = depth(adapt(pool(vision(image), \"avg\"), like=depth))\n"
SPECS = {
    "used": HEADER + "outputs: [logits]\n",
    "unused": HEADER + BRANCH + "outputs: [logits]\n",
    "branch_as_output": HEADER + BRANCH + "outputs: [logits, z]\n",
}


def compose(stitch, fixtures, work):
    for name in ("resnet18.pt", "head.pt"):
        shutil.copyfile(Path(fixtures) / name, work / name)
    artifacts = {}
    for key, text in SPECS.items():
        (work / f"{key}.yaml").write_text(text)
        artifacts[key] = work / f"{key}.pt"
        subprocess.run([stitch, "compose", work / f"{key}.yaml", "-o", artifacts[key]],
                       check=True, stdout=subprocess.DEVNULL)
    return artifacts


def time_forward(module, x, seconds=1.0):
    """Median seconds of one forward, over about `seconds`."""
    with torch.no_grad():
        for _ in range(3):
            module(x)
        times = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 5:
            start = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=str(SRC / "build-bench"))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--markdown")
    args = p.parse_args()
    threads = int(os.environ.get("STITCH_THREADS", "0")) or os.cpu_count()
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = compose(str(Path(args.build) / "stitch"), Path(args.build) / "fixtures",
                            Path(tmp))
        modules = {k: torch.jit.load(str(v)).eval() for k, v in artifacts.items()}
    x = torch.randn(1, 3, 224, 224)
    rounds = []
    for r in range(args.rounds):
        order = list(modules) if r % 2 == 0 else list(modules)[::-1]
        rounds.append({k: time_forward(modules[k], x) for k in order})
        print(f"round {r + 1}/{args.rounds}: " +
              ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in rounds[-1].items()), file=sys.stderr)

    def ratio(num, den):
        values = [r[num] / r[den] for r in rounds]
        return statistics.median(values), min(values), max(values)

    rows = []
    for label, num, target in [
            ("the spec with an unused entry and vision(image) twice / the used part alone",
             "unused", 1.05),
            ("the same spec with z as an output (vision(image) still runs once) / the used "
             "part alone", "branch_as_output", None)]:
        med, lo, hi = ratio(num, "used")
        met = "" if target is None else ("yes" if med <= target else "NO")
        rows.append(f"| {label} | {med:.2f} ({lo:.2f}-{hi:.2f}) | "
                    f"{'' if target is None else f'<= {target:.2f} (#20)'} | {met} |")
    times = ", ".join(f"{k} {statistics.median(r[k] for r in rounds) * 1e3:.1f} ms"
                      for k in modules)
    section = "\n".join([
        BEGIN,
        "## Unused entries and repeated calls (#20)",
        "",
        "resnet18 cut at `avgpool` + `head.pt`, batch 1, with the issue's unused entry "
        "`z = depth(adapt(pool(vision(image), \"avg\"), like=depth))`, which also writes "
        f"`vision(image)` a second time; median of {args.rounds} interleaved rounds (min-max), "
        f"{threads} threads, in Python (torch.jit.load), by "
        f"`/usr/bin/python3 bench/dead_code_bench.py` ({time.strftime('%Y-%m-%d')}).",
        "",
        "| ratio | median (min-max) | target | met |",
        "|---|---|---|---|",
        *rows,
        "",
        f"- Absolute times, for scale: {times}.",
        "- Before #20 the unused entry ran, resnet18 included, a second time: the issue "
        "measured 37 ms against 18.5 ms for the used part.",
        END])
    print(section)
    if args.markdown:
        write_section(args.markdown, "dead-code", section)


if __name__ == "__main__":
    main()
