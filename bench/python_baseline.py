#!/usr/bin/python3
"""Python side of stitch's benchmark: the same models as bench/stitch_bench.cpp.

    /usr/bin/python3 bench/python_baseline.py --fixtures DIR --artifacts DIR \
        [--threads T] [--reps R] [--min-time S] [--out FILE.json]

Variants, for each scenario (resnet18_head b1/b8, chain_mlp b1/b64):
  py_eager       Python PyTorch eager: an nn.Sequential of torchvision resnet18's
                 children (conv1 .. avgpool) + the head (Flatten, Linear), with the
                 weights of resnet18.pt / head.pt; for the MLP, nn.Sequential of
                 (Linear, ReLU) and Linear with the weights of mlp_a.pt / mlp_b.pt
  py_torchscript that same nn.Sequential through torch.jit.script, run from Python
  py_artifact    the stitch artifact stitch_bench saved, torch.jit.load-ed in Python

Rounds are interleaved: each repetition times every (scenario, variant) once, in
a shuffled order, so a drift in machine speed hits all of them alike. Writes
{"threads": T, "times": {"resnet18_head/b1/py_eager": [seconds per call, one per
repetition], ...}} as JSON. Checks first that every variant gives the same
output as eager.
"""

import argparse
import json
import os
import random
import sys
import time

import torch
import torch.nn as nn
import torchvision

RESNET_CHILDREN = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                   "layer4", "avgpool"]


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_weights(module, file):
    state = torch.jit.load(file).state_dict()
    module.load_state_dict(state)
    return module


def resnet_head_eager(fixtures):
    r = load_weights(torchvision.models.resnet18(weights=None),
                     os.path.join(fixtures, "resnet18.pt"))
    head = load_weights(nn.Sequential(nn.Flatten(), nn.Linear(512, 5)),
                        os.path.join(fixtures, "head.pt"))
    return nn.Sequential(*[getattr(r, name) for name in RESNET_CHILDREN], head).eval()


def chain_mlp_eager(fixtures):
    a = load_weights(nn.Sequential(nn.Linear(64, 64), nn.ReLU()),
                     os.path.join(fixtures, "mlp_a.pt"))
    b = load_weights(nn.Linear(64, 10), os.path.join(fixtures, "mlp_b.pt"))
    return nn.Sequential(a, b).eval()


def variants(eager, artifact_file):
    script = torch.jit.script(eager)
    script.eval()
    artifact = torch.jit.load(artifact_file)
    artifact.eval()
    return {"py_eager": eager, "py_torchscript": script, "py_artifact": artifact}


def time_call(fn, x, min_time):
    """Mean seconds per call over at least min_time (at least one call)."""
    calls = 0
    start = time.perf_counter()
    while True:
        fn(x)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fixtures", required=True)
    p.add_argument("--artifacts", required=True)
    p.add_argument("--threads", type=int,
                   default=int(os.environ.get("STITCH_THREADS", "0")) or usable_cores())
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--filter", default="", help="only scenarios containing this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    args = p.parse_args(argv[1:])

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {
        "resnet18_head": variants(resnet_head_eager(args.fixtures),
                                  os.path.join(args.artifacts, "resnet18_head.pt")),
        "chain_mlp": variants(chain_mlp_eager(args.fixtures),
                              os.path.join(args.artifacts, "chain_mlp.pt")),
    }
    cases = []
    for scenario, batches, shape in [("resnet18_head", [1, 8], (3, 224, 224)),
                                     ("chain_mlp", [1, 64], (64,))]:
        for batch in batches:
            key = f"{scenario}/b{batch}"
            if args.filter and args.filter not in key:
                continue
            x = torch.randn(batch, *shape)
            with torch.no_grad():
                expected = models[scenario]["py_eager"](x)
                for name, m in models[scenario].items():
                    got = m(x)
                    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
                        print(f"error: {key} {name} differs from eager by "
                              f"{(got - expected).abs().max().item()}", file=sys.stderr)
                        return 1
            for name, m in models[scenario].items():
                cases.append((f"{key}/{name}", m, x))

    rng = random.Random(args.seed)
    times = {key: [] for key, _, _ in cases}
    with torch.no_grad():
        for _, m, x in cases:  # warm-up (TorchScript's profiling executor specializes here)
            for _ in range(5):
                m(x)
        for rep in range(args.reps):
            order = list(cases)
            rng.shuffle(order)
            for key, m, x in order:
                times[key].append(time_call(m, x, args.min_time))
    result = {"threads": torch.get_num_threads(), "torch": torch.__version__,
              "times": times}
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            f.write(text)
        os.replace(args.out + ".tmp", args.out)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
