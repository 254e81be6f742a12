"""stitch's compatibility attention on LibTorch 1.13 against PyTorch 2.6's
own aten::scaled_dot_product_attention, on the same inputs, in one run.

    bash scripts/debian13.sh root            # once: PyTorch 2.6 in a Debian 13 root
    /usr/bin/python3 bench/compat_attention.py [--build BUILD] [--rounds R] [--markdown BENCHMARKS.md]

Each round times both sides (alternating which goes first): this machine's
PyTorch 1.13 with libstitch_compat.so loaded (the kernel stitch registers)
and Debian 13's PyTorch 2.6 natively (its CPU flash kernel), each in a
process of its own with the same thread count. The table gives stitch's
time over 2.6's, per shape, forward alone and forward + backward. With
--markdown, the section between the compat-attention markers of that file
is replaced (bench/report.py keeps it when it writes the rest).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from markdown_section import markers, write_section  # noqa: E402

SRC = Path(__file__).resolve().parents[1]
# (name, [batch, heads, tokens, head dim], causal)
SHAPES = [("vit_b_16 b1", [1, 12, 197, 64], False),
          ("vit_b_16 b8", [8, 12, 197, 64], False),
          ("small encoder b32, causal", [32, 4, 16, 8], True)]
BEGIN, END = markers("compat-attention")


def measure(library, threads, reps=20):
    import torch
    torch.set_num_threads(threads)
    if library:
        torch.ops.load_library(library)
    sdpa = torch.ops.aten.scaled_dot_product_attention
    out = {"torch": torch.__version__}
    for name, shape, causal in SHAPES:
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(*shape, generator=g) for _ in range(3))
        times = {}
        for kind in ("forward", "forward+backward"):
            grad = kind != "forward"
            qq, kk, vv = (t.clone().requires_grad_(grad) for t in (q, k, v))
            samples = []
            for i in range(reps + 3):
                start = time.perf_counter()
                if grad:
                    sdpa(qq, kk, vv, is_causal=causal).sum().backward()
                else:
                    with torch.no_grad():
                        sdpa(qq, kk, vv, is_causal=causal)
                if i >= 3:
                    samples.append(time.perf_counter() - start)
            times[kind] = statistics.median(samples) * 1e3
        out[name] = times
    return out


def run_side(side, build, threads):
    script = [str(Path(__file__).resolve()), "--side", side, "--threads", str(threads)]
    if side == "stitch":
        command = ["/usr/bin/python3", *script, "--library",
                   str(Path(build) / "src" / "libstitch_compat.so")]
    else:
        command = ["bash", str(SRC / "scripts" / "debian13.sh"), "python", *script]
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--side", choices=["stitch", "native"])
    p.add_argument("--library")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--build", default=str(SRC / "build"))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--markdown")
    args = p.parse_args()
    if args.side:
        print(json.dumps(measure(args.library, args.threads)))
        return
    rounds = []
    for r in range(args.rounds):
        order = ["stitch", "native"] if r % 2 == 0 else ["native", "stitch"]
        sides = {side: run_side(side, args.build, args.threads) for side in order}
        rounds.append(sides)
    rows = []
    for name, _, _ in SHAPES:
        for kind in ("forward", "forward+backward"):
            ratios = [s["stitch"][name][kind] / s["native"][name][kind] for s in rounds]
            ms = statistics.median(s["native"][name][kind] for s in rounds)
            rows.append(f"| {name} | {kind} | {statistics.median(ratios):.2f} "
                        f"({min(ratios):.2f}-{max(ratios):.2f}) | {ms:.2f} ms |")
    versions = f"{rounds[0]['stitch']['torch']} + libstitch_compat vs {rounds[0]['native']['torch']}"
    section = "\n".join([
        BEGIN,
        "## Compatibility attention (#16)",
        "",
        f"`aten::scaled_dot_product_attention` as stitch registers it on LibTorch 1.13, over "
        f"PyTorch 2.6's own, same inputs, {args.threads} threads, median of "
        f"{args.rounds} rounds (min-max) by `/usr/bin/python3 bench/compat_attention.py` "
        f"({time.strftime('%Y-%m-%d')}; {versions}).",
        "",
        "| shape | pass | stitch 1.13 / PyTorch 2.6 | PyTorch 2.6 time |",
        "|---|---|---|---|",
        *rows,
        END])
    print(section)
    if args.markdown:
        write_section(args.markdown, "compat-attention", section)


if __name__ == "__main__":
    main()
