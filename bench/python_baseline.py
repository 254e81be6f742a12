#!/usr/bin/python3
"""Python side of stitch's benchmark: the same models as bench/stitch_bench.cpp.

    /usr/bin/python3 bench/python_baseline.py --fixtures DIR --artifacts DIR \
        [--threads T] [--reps R] [--min-time S] [--out FILE.json]

Variants, for each forward scenario (resnet18_head b1/b8, chain_mlp b1/b64,
late_fusion b1/b8, cut_resnet18 b1/b8):
  py_eager       Python PyTorch eager: an nn.Sequential of torchvision resnet18's
                 children (conv1 .. avgpool) + the head (Flatten, Linear), with the
                 weights of resnet18.pt / head.pt; for the MLP, nn.Sequential of
                 (Linear, ReLU) and Linear with the weights of mlp_a.pt / mlp_b.pt;
                 for late fusion, resnet18 to avgpool and mlp_a side by side,
                 concatenated, then the artifact's Linear(576, 5); for the cut,
                 resnet18's children conv1 .. layer3
  py_torchscript that same module through torch.jit.script, run from Python (for
                 the cut: resnet18_prefix_layer3.pt, the prefix scripted by hand)
  py_artifact    the stitch artifact stitch_bench saved, torch.jit.load-ed in Python
  py_concurrent  (late fusion) the artifact built with concurrent branches
and training steps at batch 8 (py_eager only), the same steps as stitch_bench's:
  train_dual_encoder           resnet18 to avgpool + make_bench_models.TextEncoder,
                               Linear projections to 64, l2norm, clip loss, AdamW
  train_small_dual_encoder     the same with small towers (make_bench_models'
                               small_image_encoder on 32x32 images and
                               small_text_encoder on 16 tokens), projections to 32
  train_frozen_resnet18_head   frozen resnet18 (eval, no grad) + head, cross
                               entropy, Adam over the head

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
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_bench_models  # noqa: E402  (the text encoder and the cut prefix)

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


def resnet_trunk(fixtures):
    """resnet18.pt's children conv1 .. avgpool, then flatten: [N, 512]."""
    r = make_bench_models.resnet18(fixtures)
    return nn.Sequential(*[getattr(r, name) for name in RESNET_CHILDREN], nn.Flatten())


class LateFusion(nn.Module):
    def __init__(self, fixtures, artifact_file):
        super().__init__()
        self.vision = resnet_trunk(fixtures)
        self.tabular = load_weights(nn.Sequential(nn.Linear(64, 64), nn.ReLU()),
                                    os.path.join(fixtures, "mlp_a.pt"))
        self.fuse = nn.Linear(576, 5)
        artifact = torch.jit.load(artifact_file).state_dict()
        self.fuse.load_state_dict({"weight": artifact["linear.weight"],
                                   "bias": artifact["linear.bias"]})

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.vision(image), self.tabular(features)], 1))


def l2norm(x):
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


class DualEncoder(nn.Module):
    def __init__(self, image_encoder, text_encoder, image_width, text_width, shared):
        super().__init__()
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_proj = nn.Linear(image_width, shared)
        self.text_proj = nn.Linear(text_width, shared)

    def forward(self, image, tokens):
        return (l2norm(self.image_proj(self.image_encoder(image))),
                l2norm(self.text_proj(self.text_encoder(tokens))))


def clip_loss(a, b, temperature):
    logits = a @ b.t() / temperature
    labels = torch.arange(a.size(0))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def dual_encoder_step(fixtures, batch):
    """One AdamW step of the dual encoder on a fixed batch (stitch_bench's spec)."""
    model = DualEncoder(resnet_trunk(fixtures), make_bench_models.text_encoder(),
                        512, make_bench_models.WIDTH, 64)
    return clip_step(model, torch.randn(batch, 3, 224, 224), make_bench_models.TOKENS)


def small_dual_encoder_step(fixtures, batch):
    """The same step with both towers small (stitch_bench's small spec)."""
    model = DualEncoder(make_bench_models.small_image_encoder(),
                        make_bench_models.small_text_encoder(),
                        32, make_bench_models.SMALL_WIDTH, 32)
    return clip_step(model, torch.randn(batch, 3, 32, 32), make_bench_models.SMALL_TOKENS)


def clip_step(model, image, tokens_per_row):
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = torch.randint(0, make_bench_models.VOCAB, (image.size(0), tokens_per_row))

    def step():
        optimizer.zero_grad()
        loss = clip_loss(*model(image, tokens), 0.07)
        loss.backward()
        optimizer.step()
        return loss
    return step


def frozen_head_step(fixtures, batch):
    """One Adam step of the head on a frozen resnet18 (eval mode, no grad)."""
    backbone = resnet_trunk(fixtures).eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    head = nn.Linear(512, 5).train()
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    image = torch.randn(batch, 3, 224, 224)
    labels = torch.randint(0, 5, (batch,))

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(head(backbone(image)), labels)
        loss.backward()
        optimizer.step()
        return loss
    return step


def merge_resnet50(artifacts):
    """`stitch merge resnet50.pt resnet50_b.pt` written in Python: both
    loaded, every floating-point tensor averaged into the first, saved
    (bench/merge_bench.py times it)."""
    a_file = os.path.join(artifacts, "resnet50.pt")
    b_file = os.path.join(artifacts, "resnet50_b.pt")
    out = os.path.join(artifacts, "py_merged_resnet50.pt")

    def merge():
        a, b = torch.jit.load(a_file), torch.jit.load(b_file)
        theirs = dict(b.named_parameters())
        theirs.update(dict(b.named_buffers()))
        with torch.no_grad():
            for name, t in list(a.named_parameters()) + list(a.named_buffers()):
                if t.is_floating_point():
                    t.mul_(0.5).add_(theirs[name], alpha=0.5)
        a.save(out)
    return merge


def variants(eager, artifact_file, script=None):
    if script is None:
        script = torch.jit.script(eager)
    script.eval()
    artifact = torch.jit.load(artifact_file)
    artifact.eval()
    return {"py_eager": eager, "py_torchscript": script, "py_artifact": artifact}


def time_call(fn, min_time):
    """Mean seconds per call over at least min_time (at least one call)."""
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
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
    p.add_argument("--filter", default="", help="only variants whose key contains this")
    p.add_argument("--skip", default="", help="no variant whose key contains this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    args = p.parse_args(argv[1:])

    def wanted(key):
        return (not args.filter or args.filter in key) and not (args.skip and args.skip in key)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    art = lambda name: os.path.join(args.artifacts, name)  # noqa: E731
    fusion = LateFusion(args.fixtures, art("late_fusion.pt")).eval()
    prefix = make_bench_models.resnet18_prefix(args.fixtures).eval()
    models = {
        "resnet18_head": variants(resnet_head_eager(args.fixtures), art("resnet18_head.pt")),
        "chain_mlp": variants(chain_mlp_eager(args.fixtures), art("chain_mlp.pt")),
        "late_fusion": dict(variants(fusion, art("late_fusion.pt")),
                            py_concurrent=torch.jit.load(art("late_fusion_concurrent.pt")).eval()),
        "cut_resnet18": variants(prefix, art("cut_resnet18.pt"),
                                 script=torch.jit.load(art("resnet18_prefix_layer3.pt"))),
    }
    image = (3, 224, 224)
    cases = []  # (key, function of no arguments, runs under no_grad)
    for scenario, batches, shapes in [("resnet18_head", [1, 8], [image]),
                                      ("chain_mlp", [1, 64], [(64,)]),
                                      ("late_fusion", [1, 8], [image, (64,)]),
                                      ("cut_resnet18", [1, 8], [image])]:
        for batch in batches:
            key = f"{scenario}/b{batch}"
            chosen = {name: m for name, m in models[scenario].items()
                      if wanted(f"{key}/{name}")}
            if not chosen:
                continue
            xs = [torch.randn(batch, *shape) for shape in shapes]
            with torch.no_grad():
                expected = models[scenario]["py_eager"](*xs)
                for name, m in chosen.items():
                    got = m(*xs)
                    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
                        print(f"error: {key} {name} differs from eager by "
                              f"{(got - expected).abs().max().item()}", file=sys.stderr)
                        return 1
            for name, m in chosen.items():
                cases.append((f"{key}/{name}", lambda m=m, xs=xs: m(*xs), True))
    for key, make in [("train_dual_encoder/b8", dual_encoder_step),
                      ("train_small_dual_encoder/b8", small_dual_encoder_step),
                      ("train_frozen_resnet18_head/b8", frozen_head_step)]:
        if wanted(f"{key}/py_eager"):
            cases.append((f"{key}/py_eager", make(args.fixtures, 8), False))

    rng = random.Random(args.seed)
    times = {key: [] for key, _, _ in cases}
    for _, fn, no_grad in cases:  # warm-up (TorchScript's profiling executor specializes here)
        with torch.set_grad_enabled(not no_grad):
            for _ in range(5 if no_grad else 2):
                fn()
    for rep in range(args.reps):
        order = list(cases)
        rng.shuffle(order)
        for key, fn, no_grad in order:
            with torch.set_grad_enabled(not no_grad):
                times[key].append(time_call(fn, args.min_time))
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
