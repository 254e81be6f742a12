"""`stitch merge` (docs/merge.md): weight-space merges of models of one
architecture, each compared with the published formula written here in plain
PyTorch, exactly as docs/merge.md defines it.

What is compared with what:

- every method (linear, slerp, task_arithmetic, ties, dare): every tensor of
  the merged file (named_parameters and named_buffers of torch.jit.load(OUT))
  against `reference_merge` below, applied to the tensors of the source files
  themselves, to 1e-6;
- the buffers: float buffers mixed with the method's weights, integer ones
  (num_batches_tracked) the first model's, bit for bit;
- the refusals: exit 1 (2 for bad command-line usage, README.md "Errors"),
  one `error:` line, no crash, nothing written;
- the result: its forward (in Python and in C++ through `stitch run`) against
  an eager torchvision/torch.nn module holding the reference's state_dict;
- its stitch/manifest.json against hashlib.sha256 of the source files;
- --recompute-bn against torch.optim.swa_utils.update_bn on the same batches;
- --greedy on sklearn's digits against the greedy-soup procedure replayed in
  Python (scores, order, kept/dropped, the final average), with and without
  --recompute-bn;
- `merge:` model entries of a spec against the same references.

"Fine-tuned" models are a base plus seeded noise of a few percent (BatchNorm
running statistics perturbed too, num_batches_tracked different per model).
"""

import copy
import csv
import hashlib
import json
import math
import re
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from conftest import CRASH_MARKERS, assert_clean_error

# Scripting nn.TransformerEncoder in PyTorch 1.13 warns about batch_first.
pytestmark = pytest.mark.filterwarnings("ignore:'batch_first' was found")

ATOL = 1e-6          # merged tensors against the reference formula
FORWARD_ATOL = 1e-5  # forward outputs, recomputed BatchNorm statistics
MANIFEST = "stitch/manifest.json"


# --- models -------------------------------------------------------------------

class SmallCNN(nn.Module):
    """conv-bn-relu twice, global average pool, linear: parameters, float
    buffers and integer buffers in a few thousand values."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean([2, 3]))


class Tagged(nn.Module):
    """A float buffer outside BatchNorm, bool and int32 buffers, a string
    attribute."""

    def __init__(self, tag: str, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc = nn.Linear(6, 4)
        self.tag = tag
        self.register_buffer("offset", torch.randn(4, generator=g))
        self.register_buffer("mask", torch.rand(4, generator=g) > 0.5)
        self.register_buffer("steps", torch.randint(0, 100, (3,), generator=g,
                                                    dtype=torch.int32))

    def forward(self, x):
        return torch.where(self.mask, self.fc(x) + self.offset, self.fc(x))


def bn_mlp(last_bias=True):
    """64 -> 64 (BatchNorm) -> 10, taking [N, 64]."""
    return nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),
                         nn.Linear(64, 10, bias=last_bias))


def small_encoder():
    layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64,
                                       batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=2)


def resnet18(classes=10):
    return torchvision.models.resnet18(weights=None, num_classes=classes)


def fine_tuned(base, seed, rel=0.03):
    """A copy of `base` with seeded noise of `rel` (relative to each tensor's
    spread), perturbed BatchNorm statistics and num_batches_tracked 1000+seed."""
    m = copy.deepcopy(base)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            scale = p.std().item() if p.numel() > 1 else 0.0
            if scale == 0.0:
                scale = p.abs().mean().item() or 1.0
            p.add_(torch.randn(p.shape, generator=g) * (rel * scale))
        for name, b in m.named_buffers():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_mean":
                b.add_(torch.randn(b.shape, generator=g) * rel)
            elif leaf == "running_var":
                b.mul_(1 + rel * torch.rand(b.shape, generator=g))
            elif leaf == "num_batches_tracked":
                b.fill_(1000 + seed)
    return m.eval()


def save(module, path):
    torch.jit.script(module.eval()).save(str(path))
    return Path(path)


# --- reading files --------------------------------------------------------------

def tensors_of(path):
    """(params, buffers) of a TorchScript file, each an ordered name -> tensor
    dict in named_parameters() / named_buffers() order."""
    m = torch.jit.load(str(path))
    params = {n: p.detach().clone() for n, p in m.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in m.named_buffers()}
    return params, buffers


def all_tensors(path):
    params, buffers = tensors_of(path)
    return {**params, **buffers}


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def manifest_of(path):
    files = {MANIFEST: ""}
    torch.jit.load(str(path), _extra_files=files)
    assert files[MANIFEST], f"{path} has no {MANIFEST}"
    return json.loads(files[MANIFEST])


def run_output(path):
    """The one tensor `stitch run` wrote (a bare tensor or a one-entry dict)."""
    y = torch.load(str(path))
    if isinstance(y, dict):
        assert len(y) == 1, f"{path} holds {sorted(y)}"
        y = next(iter(y.values()))
    return y


# --- reference merges (docs/merge.md, "Methods") --------------------------------

def weighted_sum(tensors, weights):
    out = tensors[0] * weights[0]
    for t, w in zip(tensors[1:], weights[1:]):
        out = out + t * w
    return out


def glob_match(glob, name):
    """`*` matches any characters, dots included."""
    return re.fullmatch(".*".join(re.escape(p) for p in glob.split("*")), name) is not None


def linear_weights(rules, n):
    """name -> weights: the first (glob, weights) rule that matches, else 1/n each."""
    def weights(name):
        for glob, w in rules:
            if glob_match(glob, name):
                return w
        return [1.0 / n] * n
    return weights


def slerp_tensor(a, b, t):
    """Returns (result, branch): Shoemake's slerp with the norms and the dot in
    float64 and the coefficients applied to the tensors as float64 scalars;
    the linear (1-t) a + t b where |cos| > 0.9995 or a norm is below 1e-8."""
    a64, b64 = a.double().flatten(), b.double().flatten()
    na, nb = a64.norm().item(), b64.norm().item()
    if na < 1e-8 or nb < 1e-8:
        return (1 - t) * a + t * b, "lerp"
    cos = torch.dot(a64, b64).item() / (na * nb)
    if abs(cos) > 0.9995:
        return (1 - t) * a + t * b, "lerp"
    omega = math.acos(cos)
    sin_omega = math.sin(omega)
    return (math.sin((1 - t) * omega) / sin_omega * a
            + math.sin(t * omega) / sin_omega * b), "slerp"


def ties_tensor(b, thetas, density, scale):
    taus = [theta - b for theta in thetas]
    k = max(1, math.floor(density * b.numel()))
    trimmed = []
    for tau in taus:
        flat = tau.flatten()
        keep = torch.zeros_like(flat)
        idx = torch.topk(flat.abs(), k).indices
        keep[idx] = flat[idx]
        trimmed.append(keep.view_as(tau))
    stacked = torch.stack(trimmed)
    gamma = torch.sign(stacked.sum(0))
    agree = torch.sign(stacked) == gamma
    total = torch.where(agree, stacked, torch.zeros_like(stacked)).sum(0)
    count = agree.sum(0)
    mean = torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
    return b + scale * mean


def reference_merge(states, param_rule, buffer_weights):
    """states: [(params, buffers)] of the merged models, in order. Floating
    parameters by param_rule(name, [tensor per model]) (called in the first
    model's named_parameters() order), floating buffers by weighted_sum with
    buffer_weights(name), everything else the first model's."""
    params0, buffers0 = states[0]
    out = {}
    for name, t0 in params0.items():
        tensors = [s[0][name] for s in states]
        out[name] = param_rule(name, tensors) if t0.is_floating_point() else t0.clone()
    for name, t0 in buffers0.items():
        tensors = [s[1][name] for s in states]
        out[name] = (weighted_sum(tensors, buffer_weights(name)) if t0.is_floating_point()
                     else t0.clone())
    return out


def ref_linear(paths, rules=(), weights=None):
    states = [tensors_of(p) for p in paths]
    n = len(paths)
    if weights is not None:
        rules = [("*", weights)]
    w = linear_weights(list(rules), n)
    return reference_merge(states, lambda name, ts: weighted_sum(ts, w(name)), w)


def ref_slerp(a_path, b_path, t, branches=None):
    states = [tensors_of(a_path), tensors_of(b_path)]

    def rule(name, ts):
        result, branch = slerp_tensor(ts[0], ts[1], t)
        if branches is not None:
            branches[name] = branch
        return result
    return reference_merge(states, rule, lambda name: [1 - t, t])


def ref_task(method, paths, base_path, scale=1.0, density=0.5, seed=0):
    states = [tensors_of(p) for p in paths]
    base = all_tensors(base_path)
    n = len(paths)
    g = torch.Generator().manual_seed(seed)

    def rule(name, ts):
        b = base[name]
        if method == "task_arithmetic":
            return b + scale * sum_of([t - b for t in ts])
        if method == "ties":
            return ties_tensor(b, ts, density, scale)
        assert method == "dare"
        dropped = []
        for t in ts:
            keep = torch.rand(list(b.shape), generator=g) < density
            tau = t - b
            dropped.append(torch.where(keep, tau / density, torch.zeros_like(tau)))
        return b + scale * sum_of(dropped)
    return reference_merge(states, rule, lambda name: [1.0 / n] * n)


def sum_of(tensors):
    out = tensors[0]
    for t in tensors[1:]:
        out = out + t
    return out


def uniform_average(states):
    return {k: sum_of([s[k] for s in states]) / len(states) if s0.is_floating_point() else s0
            for k, s0 in states[0].items()}


def with_recomputed_bn(state, make, x, batch):
    """`state` with its BatchNorm statistics recomputed by update_bn on x's
    batches of `batch` rows, in order."""
    m = make()
    m.load_state_dict(state)
    torch.optim.swa_utils.update_bn(list(x.split(batch)), m)
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


# --- comparing ------------------------------------------------------------------

def assert_tensors_equal(out_path, want, like, atol=ATOL):
    """Every parameter and buffer of `out_path` equals `want` (float to `atol`,
    integer exactly), with `like`'s names, kinds, order, shapes and dtypes."""
    got_params, got_buffers = tensors_of(out_path)
    like_params, like_buffers = tensors_of(like)
    assert list(got_params) == list(like_params), "parameter names differ from the first model's"
    assert list(got_buffers) == list(like_buffers), "buffer names differ from the first model's"
    assert set(torch.jit.load(str(out_path)).state_dict()) == set(want)
    got = {**got_params, **got_buffers}
    problems = []
    for name, w in want.items():
        g = got[name]
        if g.dtype != w.dtype or g.shape != w.shape:
            problems.append(f"{name}: {g.dtype}{list(g.shape)}, expected {w.dtype}{list(w.shape)}")
        elif not w.is_floating_point():
            if not torch.equal(g, w):
                problems.append(f"{name}: {g.tolist()} != {w.tolist()}")
        elif not torch.allclose(g, w, atol=atol, rtol=0):
            problems.append(f"{name}: max |diff| {(g - w).abs().max().item():.3g}")
    assert not problems, (f"{len(problems)} of {len(want)} tensors differ:\n"
                          + "\n".join(problems[:20]))


def assert_refused(code, stdout, stderr, out_dir, expected_code=1):
    """A clean refusal: exit 1 (2 for bad usage), exactly one `error:` line,
    nothing written."""
    assert_clean_error(code, stdout, stderr, expected_code=expected_code)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"expected one error: line:\n{stderr}"
    assert not any(Path(out_dir).iterdir()), f"files written: {list(Path(out_dir).iterdir())}"


# --- fixtures -------------------------------------------------------------------

@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """base.pt and ft1.pt .. ft3.pt of SmallCNN; ft3 a little further away."""
    d = tmp_path_factory.mktemp("cnn")
    torch.manual_seed(0)
    base = SmallCNN()
    save(base, d / "base.pt")
    for i, rel in ((1, 0.03), (2, 0.04), (3, 0.05)):
        save(fine_tuned(base, i, rel), d / f"ft{i}.pt")
    return d


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """ft1.pt, ft2.pt: resnet18 (10 classes) fine-tuned from one base; five.pt
    a resnet18 with 5 classes."""
    d = tmp_path_factory.mktemp("resnet")
    torch.manual_seed(0)
    base = resnet18(10)
    for i in (1, 2):
        save(fine_tuned(base, i, 0.03), d / f"ft{i}.pt")
    torch.manual_seed(1)
    save(resnet18(5), d / "five.pt")
    return d


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """a.pt, b.pt: a 2-layer TransformerEncoder fine-tuned from one base; b's
    layers.1.linear2.weight is exactly a's (parallel: the lerp branch)."""
    d = tmp_path_factory.mktemp("encoder")
    torch.manual_seed(0)
    base = small_encoder().eval()
    a, b = fine_tuned(base, 21, 0.05), fine_tuned(base, 22, 0.05)
    with torch.no_grad():
        b.layers[1].linear2.weight.copy_(a.layers[1].linear2.weight)
    save(a, d / "a.pt")
    save(b, d / "b.pt")
    return d


@pytest.fixture
def merged(run_stitch, tmp_path):
    """merged(folder, ["a.pt", ...], *options) -> (OUT path, stdout): runs
    `stitch merge` in `folder` (sources by relative name) and asserts success."""
    def merge(folder, sources, *options, out=None):
        out = Path(out or tmp_path / "out.pt")
        code, stdout, stderr = run_stitch("merge", *sources, "-o", out, *options, cwd=folder)
        assert code == 0, f"merge failed ({code}):\n{stdout}\n{stderr}"
        for marker in CRASH_MARKERS:
            assert marker not in stderr, stderr
        assert out.is_file()
        return out, stdout
    return merge


@pytest.fixture
def refused(run_stitch, tmp_path):
    """refused(folder, ["a.pt", ...], *options) -> stderr: asserts a clean
    refusal that writes nothing; usage=True for bad command-line usage, which
    exits 2 (README.md, "Errors")."""
    def refuse(folder, sources, *options, usage=False):
        out_dir = tmp_path / "refused_out"
        out_dir.mkdir(exist_ok=True)
        code, stdout, stderr = run_stitch("merge", *sources, "-o", out_dir / "out.pt",
                                          *options, cwd=folder)
        assert_refused(code, stdout, stderr, out_dir, expected_code=2 if usage else 1)
        return stderr
    return refuse


# --- 1. linear ------------------------------------------------------------------

def test_linear_default_weights_are_equal(merged, cnn):
    out, _ = merged(cnn, ["ft1.pt", "ft2.pt"], "--method", "linear")
    assert_tensors_equal(out, ref_linear([cnn / "ft1.pt", cnn / "ft2.pt"]), like=cnn / "ft1.pt")


def test_linear_default_weights_three_models(merged, cnn):
    paths = [cnn / f"ft{i}.pt" for i in (1, 2, 3)]
    out, _ = merged(cnn, ["ft1.pt", "ft2.pt", "ft3.pt"], "--method", "linear")
    assert_tensors_equal(out, ref_linear(paths), like=paths[0])


def test_linear_weights_per_model(merged, cnn):
    out, _ = merged(cnn, ["ft1.pt", "ft2.pt"], "--method", "linear", "--weights", "0.7,0.3")
    want = ref_linear([cnn / "ft1.pt", cnn / "ft2.pt"], weights=[0.7, 0.3])
    assert_tensors_equal(out, want, like=cnn / "ft1.pt")


def test_linear_weights_are_used_as_given(merged, tmp_path):
    """Weights need not sum to 1: 2, -1 extrapolates (an MLP without buffers)."""
    torch.manual_seed(3)
    base = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    save(fine_tuned(base, 1), tmp_path / "a.pt")
    save(fine_tuned(base, 2), tmp_path / "b.pt")
    out, _ = merged(tmp_path, ["a.pt", "b.pt"], "--method", "linear", "--weights", "2,-1",
                    out=tmp_path / "x.pt")
    want = ref_linear([tmp_path / "a.pt", tmp_path / "b.pt"], weights=[2.0, -1.0])
    assert_tensors_equal(out, want, like=tmp_path / "a.pt")


def test_linear_glob_weights_on_resnet18(merged, resnet):
    """fc.* gets (0.2, 0.8), layer1.* (0.9, 0.1) (its BatchNorm buffers too),
    every other tensor (0.5, 0.5)."""
    out, _ = merged(resnet, ["ft1.pt", "ft2.pt"], "--method", "linear",
                    "--weights", "fc.*=0.2,layer1.*=0.9")
    rules = [("fc.*", [0.2, 0.8]), ("layer1.*", [0.9, 0.1])]
    want = ref_linear([resnet / "ft1.pt", resnet / "ft2.pt"], rules=rules)
    assert_tensors_equal(out, want, like=resnet / "ft1.pt")


def test_linear_glob_weights_three_models_first_glob_wins(merged, cnn):
    """'GLOB=w1:w2:w3' with three models; fc.weight matches its own glob first,
    fc.bias only fc.*; the rest 1/3 each."""
    paths = [cnn / f"ft{i}.pt" for i in (1, 2, 3)]
    out, _ = merged(cnn, ["ft1.pt", "ft2.pt", "ft3.pt"], "--method", "linear",
                    "--weights", "fc.weight=0.1:0.1:0.8,fc.*=0.5:0.3:0.2,bn2.*=0.6:0.3:0.1")
    rules = [("fc.weight", [0.1, 0.1, 0.8]), ("fc.*", [0.5, 0.3, 0.2]),
             ("bn2.*", [0.6, 0.3, 0.1])]
    assert_tensors_equal(out, ref_linear(paths, rules=rules), like=paths[0])


def test_linear_glob_matching_nothing_is_an_error(refused, cnn):
    err = refused(cnn, ["ft1.pt", "ft2.pt"], "--method", "linear",
                  "--weights", "fc.*=0.2,nosuch.*=0.9")
    assert "nosuch.*" in err, err


def test_summary_line_counts_tensors(merged, cnn):
    """SmallCNN: 10 parameters, 4 float buffers, 2 integer buffers."""
    _, stdout = merged(cnn, ["ft1.pt", "ft2.pt"], "--method", "linear")
    assert "merged 2 models by linear: 10 parameters" in stdout, stdout
    assert "4 float buffers averaged" in stdout, stdout
    assert "2 integer tensors kept from ft1.pt" in stdout, stdout
    assert "wrote" in stdout, stdout


# --- 2. slerp -------------------------------------------------------------------

def test_slerp_on_resnet18(merged, resnet, tmp_path):
    """t = 0.3. Besides the fine-tuned tensors (the slerp branch), b's fc.weight
    is a's (cos 1), its layer4.1.conv2.weight 2·a's (cos 1),
    layer2.0.bn2.weight -a's (cos -1), and a's layer1.0.bn1.bias is zero
    (norm 0): the linear branch."""
    a = torch.jit.load(str(resnet / "ft1.pt"))
    b = torch.jit.load(str(resnet / "ft2.pt"))
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    with torch.no_grad():
        pb["fc.weight"].copy_(pa["fc.weight"])
        pb["layer4.1.conv2.weight"].copy_(pa["layer4.1.conv2.weight"] * 2.0)
        pb["layer2.0.bn2.weight"].copy_(-pa["layer2.0.bn2.weight"])
        pa["layer1.0.bn1.bias"].zero_()
    a.save(str(tmp_path / "a.pt"))
    b.save(str(tmp_path / "b.pt"))
    out, _ = merged(tmp_path, ["a.pt", "b.pt"], "--method", "slerp", "--t", "0.3")
    branches = {}
    want = ref_slerp(tmp_path / "a.pt", tmp_path / "b.pt", 0.3, branches)
    for name in ("fc.weight", "layer4.1.conv2.weight", "layer2.0.bn2.weight",
                 "layer1.0.bn1.bias"):
        assert branches[name] == "lerp", name
    assert list(branches.values()).count("slerp") > 40, branches
    assert_tensors_equal(out, want, like=tmp_path / "a.pt")


def test_slerp_on_transformer_encoder(merged, encoder):
    out, _ = merged(encoder, ["a.pt", "b.pt"], "--method", "slerp", "--t", "0.3")
    branches = {}
    want = ref_slerp(encoder / "a.pt", encoder / "b.pt", 0.3, branches)
    assert branches["layers.1.linear2.weight"] == "lerp"
    assert "slerp" in branches.values()
    assert_tensors_equal(out, want, like=encoder / "a.pt")


def test_slerp_default_t_is_half(merged, cnn):
    out, _ = merged(cnn, ["ft1.pt", "ft3.pt"], "--method", "slerp")
    assert_tensors_equal(out, ref_slerp(cnn / "ft1.pt", cnn / "ft3.pt", 0.5),
                         like=cnn / "ft1.pt")


# --- 3.-5. task vectors ---------------------------------------------------------

def test_task_arithmetic(merged, cnn):
    paths = [cnn / "ft1.pt", cnn / "ft2.pt"]
    out, _ = merged(cnn, ["ft1.pt", "ft2.pt"], "--method", "task_arithmetic",
                    "--base", "base.pt", "--scale", "0.5")
    want = ref_task("task_arithmetic", paths, cnn / "base.pt", scale=0.5)
    assert_tensors_equal(out, want, like=paths[0])


@pytest.mark.parametrize("scale", [None, 0.5])
def test_ties(merged, cnn, scale):
    paths = [cnn / f"ft{i}.pt" for i in (1, 2, 3)]
    extra = ["--scale", str(scale)] if scale is not None else []
    out, _ = merged(cnn, ["ft1.pt", "ft2.pt", "ft3.pt"], "--method", "ties",
                    "--base", "base.pt", "--density", "0.3", *extra)
    want = ref_task("ties", paths, cnn / "base.pt", scale=scale or 1.0, density=0.3)
    assert_tensors_equal(out, want, like=paths[0])


def test_dare_follows_the_seeded_generator(merged, cnn, tmp_path):
    """The draws: one generator seeded 7, torch.rand(shape) tensor by tensor in
    the first model's parameter order (buffers draw nothing), model by model."""
    paths = [cnn / f"ft{i}.pt" for i in (1, 2, 3)]
    sources = ["ft1.pt", "ft2.pt", "ft3.pt"]
    options = ["--method", "dare", "--base", "base.pt", "--density", "0.4"]
    out, _ = merged(cnn, sources, *options, "--seed", "7", out=tmp_path / "seed7.pt")
    want = ref_task("dare", paths, cnn / "base.pt", density=0.4, seed=7)
    assert_tensors_equal(out, want, like=paths[0])

    again, _ = merged(cnn, sources, *options, "--seed", "7", out=tmp_path / "seed7_again.pt")
    first, second = all_tensors(out), all_tensors(again)
    for name in first:
        assert torch.equal(first[name], second[name]), f"{name} differs between two runs"

    other, _ = merged(cnn, sources, *options, "--seed", "8", out=tmp_path / "seed8.pt")
    third = all_tensors(other)
    assert any(not torch.equal(first[n], third[n]) for n in first), "seed 8 gave seed 7's merge"
    assert_tensors_equal(other, ref_task("dare", paths, cnn / "base.pt", density=0.4, seed=8),
                         like=paths[0])


def test_dare_default_seed_and_density(merged, cnn):
    paths = [cnn / "ft1.pt", cnn / "ft2.pt"]
    out, _ = merged(cnn, ["ft1.pt", "ft2.pt"], "--method", "dare", "--base", "base.pt",
                    "--scale", "0.8")
    want = ref_task("dare", paths, cnn / "base.pt", scale=0.8, density=0.5, seed=0)
    assert_tensors_equal(out, want, like=paths[0])


# --- 6. buffers -----------------------------------------------------------------

# method options, buffer weights for (ft2, ft1)
BUFFER_CASES = {
    "linear": (["--method", "linear", "--weights", "0.7,0.3"], [0.7, 0.3]),
    "slerp": (["--method", "slerp", "--t", "0.2"], [0.8, 0.2]),
    "task_arithmetic": (["--method", "task_arithmetic", "--base", "base.pt"], [0.5, 0.5]),
    "ties": (["--method", "ties", "--base", "base.pt"], [0.5, 0.5]),
    "dare": (["--method", "dare", "--base", "base.pt"], [0.5, 0.5]),
}


@pytest.mark.parametrize("method", list(BUFFER_CASES))
def test_buffers_mixed_by_method_integers_from_first_model(merged, cnn, method):
    """ft2 first: running_mean/var are w·ft2 + w'·ft1 (never the base's),
    num_batches_tracked is ft2's (1002), not ft1's (1001) nor the base's (0)."""
    options, w = BUFFER_CASES[method]
    out, _ = merged(cnn, ["ft2.pt", "ft1.pt"], *options)
    _, got = tensors_of(out)
    _, first = tensors_of(cnn / "ft2.pt")
    _, second = tensors_of(cnn / "ft1.pt")
    assert list(got) == list(first)
    for name, g in got.items():
        if name.endswith("num_batches_tracked"):
            assert g.dtype == torch.int64 and torch.equal(g, first[name]), (name, g, first[name])
            assert g.item() == 1002
        else:
            want = first[name] * w[0] + second[name] * w[1]
            assert torch.allclose(g, want, atol=ATOL, rtol=0), (
                f"{name}: max |diff| {(g - want).abs().max().item():.3g}")


def test_other_buffers_and_attributes(merged, tmp_path):
    """A float buffer of any module is mixed like running_mean; bool and int32
    buffers and a string attribute are the first model's."""
    torch.manual_seed(8)
    a = Tagged("first", seed=1)
    b = copy.deepcopy(a)
    b.tag = "second"
    with torch.no_grad():
        b.fc.weight.add_(0.05)
        b.offset.copy_(torch.randn(4))
        b.mask.logical_not_()
        b.steps.add_(7)
    save(a, tmp_path / "a.pt")
    save(b, tmp_path / "b.pt")
    out, _ = merged(tmp_path, ["a.pt", "b.pt"], "--method", "linear", "--weights", "0.7,0.3",
                    out=tmp_path / "out.pt")
    want = ref_linear([tmp_path / "a.pt", tmp_path / "b.pt"], weights=[0.7, 0.3])
    assert torch.allclose(want["offset"], 0.7 * a.offset + 0.3 * b.offset, atol=ATOL)
    assert torch.equal(want["mask"], a.mask) and torch.equal(want["steps"], a.steps)
    assert_tensors_equal(out, want, like=tmp_path / "a.pt")
    assert torch.jit.load(str(out)).tag == "first"


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_double_models_merge_in_double(merged, tmp_path, method):
    torch.manual_seed(9)
    base = bn_mlp().double()
    save(fine_tuned(base, 1, 0.05), tmp_path / "a.pt")
    save(fine_tuned(base, 2, 0.05), tmp_path / "b.pt")
    paths = [tmp_path / "a.pt", tmp_path / "b.pt"]
    if method == "linear":
        out, _ = merged(tmp_path, ["a.pt", "b.pt"], "--method", "linear", "--weights", "0.7,0.3",
                        out=tmp_path / "out.pt")
        want = ref_linear(paths, weights=[0.7, 0.3])
    else:
        out, _ = merged(tmp_path, ["a.pt", "b.pt"], "--method", "slerp", "--t", "0.3",
                        out=tmp_path / "out.pt")
        want = ref_slerp(*paths, 0.3)
    assert want["0.weight"].dtype == torch.float64
    assert_tensors_equal(out, want, like=paths[0], atol=1e-12)


# --- 7. refusals ----------------------------------------------------------------

def test_refuses_different_shapes(refused, resnet):
    err = refused(resnet, ["ft1.pt", "five.pt"], "--method", "linear")
    assert "fc.weight" in err, err
    assert "[10, 512]" in err and "[5, 512]" in err, err


def test_a_refusal_keeps_an_earlier_output(run_stitch, resnet, tmp_path):
    out = tmp_path / "out.pt"
    out.write_bytes(b"earlier output")
    code, stdout, stderr = run_stitch("merge", "ft1.pt", "five.pt", "-o", out, cwd=resnet)
    assert_clean_error(code, stdout, stderr)
    assert out.read_bytes() == b"earlier output"
    assert [p.name for p in tmp_path.iterdir()] == ["out.pt"]


@pytest.mark.parametrize("order", ["missing_in_second", "missing_in_first"])
def test_refuses_a_missing_parameter(refused, tmp_path, order):
    torch.manual_seed(4)
    save(bn_mlp(last_bias=True), tmp_path / "with.pt")
    torch.manual_seed(4)
    save(bn_mlp(last_bias=False), tmp_path / "without.pt")
    sources = ["with.pt", "without.pt"]
    if order == "missing_in_first":
        sources.reverse()
    err = refused(tmp_path, sources, "--method", "linear")
    assert "3.bias" in err, err


def test_refuses_a_different_dtype(refused, tmp_path):
    torch.manual_seed(5)
    base = SmallCNN()
    save(fine_tuned(base, 1), tmp_path / "a.pt")
    save(fine_tuned(base, 2).double(), tmp_path / "b.pt")
    err = refused(tmp_path, ["a.pt", "b.pt"], "--method", "linear")
    assert "conv1.weight" in err, err
    assert "double" in err or "float64" in err, err


def test_refuses_slerp_of_three(refused, cnn):
    refused(cnn, ["ft1.pt", "ft2.pt", "ft3.pt"], "--method", "slerp", usage=True)


@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "dare"])
def test_task_methods_need_a_base(refused, cnn, method):
    err = refused(cnn, ["ft1.pt", "ft2.pt"], "--method", method, usage=True)
    assert "--base" in err, err


def test_refuses_a_base_of_another_shape(refused, resnet):
    refused(resnet, ["ft1.pt", "ft2.pt"], "--method", "task_arithmetic", "--base", "five.pt")


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_refuses_a_corrupt_file(refused, cnn, tmp_path, kind):
    data = (cnn / "ft2.pt").read_bytes()
    if kind == "garbage":
        bad = b"this is not a TorchScript archive\n" * 50
    else:
        bad = data[:len(data) // 2]
    (tmp_path / "bad.pt").write_bytes(bad)
    (tmp_path / "ft1.pt").write_bytes((cnn / "ft1.pt").read_bytes())
    err = refused(tmp_path, ["ft1.pt", "bad.pt"], "--method", "linear")
    assert "bad.pt" in err, err


# --- 8. the result runs ---------------------------------------------------------

def assert_runs_like(run_stitch, out, eager, input_name, x, tmp_path):
    """The merged file gives the eager model's output, in Python and in C++."""
    torch.save(x, str(tmp_path / "x.pt"))
    with torch.no_grad():
        want = eager(x)
        assert torch.allclose(torch.jit.load(str(out)).eval()(x), want, atol=FORWARD_ATOL)
    code, stdout, stderr = run_stitch("run", out, "--input", f"{input_name}={tmp_path / 'x.pt'}",
                                      "-o", tmp_path / "y.pt")
    assert code == 0, f"{stdout}\n{stderr}"
    assert torch.allclose(run_output(tmp_path / "y.pt"), want, atol=FORWARD_ATOL)


def test_merged_resnet18_runs_in_python_and_cpp(run_stitch, merged, resnet, tmp_path):
    out, _ = merged(resnet, ["ft1.pt", "ft2.pt"], "--method", "linear", "--weights", "0.6,0.4")
    eager = resnet18(10)
    eager.load_state_dict(ref_linear([resnet / "ft1.pt", resnet / "ft2.pt"], weights=[0.6, 0.4]))
    eager.eval()
    assert torch.jit.load(str(out)).code == torch.jit.load(str(resnet / "ft1.pt")).code
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert_runs_like(run_stitch, out, eager, "x", x, tmp_path)


def test_merged_encoder_runs_in_python_and_cpp(run_stitch, merged, encoder, tmp_path):
    out, _ = merged(encoder, ["a.pt", "b.pt"], "--method", "slerp", "--t", "0.3")
    eager = small_encoder()
    eager.load_state_dict(ref_slerp(encoder / "a.pt", encoder / "b.pt", 0.3))
    eager.eval()
    x = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(0))
    assert_runs_like(run_stitch, out, eager, "src", x, tmp_path)


# --- 9. manifest ----------------------------------------------------------------

def test_manifest_records_method_and_sources(merged, cnn):
    out, _ = merged(cnn, ["ft1.pt", "ft2.pt"], "--method", "linear", "--weights", "0.7,0.3")
    m = manifest_of(out)["merge"]
    assert m["method"] == "linear"
    assert m["sources"] == [{"file": "ft1.pt", "sha256": sha256(cnn / "ft1.pt")},
                            {"file": "ft2.pt", "sha256": sha256(cnn / "ft2.pt")}]
    names = zipfile.ZipFile(out).namelist()
    assert not any(n.endswith("extra/stitch/spec.yaml") for n in names), names


@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "dare"])
def test_manifest_records_the_base_and_options(merged, cnn, method):
    density = ["--density", "0.3"] if method != "task_arithmetic" else []
    out, _ = merged(cnn, ["ft1.pt", "ft3.pt"], "--method", method, "--base", "base.pt",
                    "--scale", "0.5", *density)
    m = manifest_of(out)["merge"]
    assert m["method"] == method
    assert [s["file"] for s in m["sources"]] == ["ft1.pt", "ft3.pt"]
    assert [s["sha256"] for s in m["sources"]] == [sha256(cnn / "ft1.pt"), sha256(cnn / "ft3.pt")]
    assert m["base"] == {"file": "base.pt", "sha256": sha256(cnn / "base.pt")}
    assert m["scale"] == 0.5
    if method != "task_arithmetic":
        assert m["density"] == 0.3


def test_manifest_records_t_and_seed(merged, cnn, tmp_path):
    out, _ = merged(cnn, ["ft1.pt", "ft2.pt"], "--method", "slerp", "--t", "0.3",
                    out=tmp_path / "slerp.pt")
    m = manifest_of(out)["merge"]
    assert m["method"] == "slerp" and m["t"] == 0.3 and "base" not in m
    out, _ = merged(cnn, ["ft1.pt", "ft2.pt"], "--method", "dare", "--base", "base.pt",
                    "--seed", "5", out=tmp_path / "dare.pt")
    m = manifest_of(out)["merge"]
    assert m["seed"] == 5 and m["density"] == 0.5 and m["scale"] == 1.0


# --- 10. --recompute-bn ---------------------------------------------------------

def test_recompute_bn_equals_update_bn(merged, resnet, tmp_path):
    x = torch.randn(200, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.save({"x": x}, str(tmp_path / "data.pt"))
    out, _ = merged(resnet, ["ft1.pt", "ft2.pt"], "--method", "linear",
                    "--recompute-bn", tmp_path / "data.pt", "--batch", "50")
    averaged = ref_linear([resnet / "ft1.pt", resnet / "ft2.pt"])
    eager = resnet18(10)
    eager.load_state_dict(averaged)
    torch.optim.swa_utils.update_bn(list(x.split(50)), eager)
    want = dict(eager.named_buffers())
    got_params, got_buffers = tensors_of(out)
    problems = []
    for name, g in got_buffers.items():
        if name.endswith(("running_mean", "running_var")):
            if not torch.allclose(g, want[name], atol=FORWARD_ATOL):
                problems.append(f"{name}: max |diff| {(g - want[name]).abs().max().item():.3g}")
        if name.endswith("running_var") and torch.allclose(g, averaged[name], atol=1e-3):
            problems.append(f"{name}: still the averaged statistics")
    assert not problems, "\n".join(problems)
    for name, g in got_params.items():  # the weights are the linear merge's
        assert torch.allclose(g, averaged[name], atol=ATOL, rtol=0), name


@pytest.mark.parametrize("fmt", ["pt", "npy"])
def test_recompute_bn_with_a_partial_last_batch(merged, cnn, tmp_path, fmt):
    """150 rows in batches of 64 (64, 64, 22), from a bare tensor (.pt or
    .npy): each batch counts once in the mean, as in update_bn."""
    x = torch.randn(150, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    data = tmp_path / f"data.{fmt}"
    if fmt == "npy":
        import numpy
        numpy.save(str(data), x.numpy())
    else:
        torch.save(x, str(data))
    paths = [cnn / "ft1.pt", cnn / "ft2.pt", cnn / "ft3.pt"]
    out, _ = merged(cnn, ["ft1.pt", "ft2.pt", "ft3.pt"], "--method", "ties",
                    "--base", "base.pt", "--recompute-bn", data)
    merged_state = ref_task("ties", paths, cnn / "base.pt")
    want = with_recomputed_bn(merged_state, SmallCNN, x, 64)
    got = all_tensors(out)
    for name, w in want.items():
        if name.endswith(("running_mean", "running_var")):
            assert torch.allclose(got[name], w, atol=FORWARD_ATOL), (
                f"{name}: max |diff| {(got[name] - w).abs().max().item():.3g}")
        elif w.is_floating_point():
            assert torch.allclose(got[name], w, atol=ATOL, rtol=0), name


def test_recompute_bn_refuses_a_model_traced_in_eval_mode(refused, tmp_path):
    torch.manual_seed(6)
    base = SmallCNN()
    example = torch.randn(2, 3, 16, 16)
    for i, name in ((1, "a.pt"), (2, "b.pt")):
        torch.jit.trace(fine_tuned(base, i).eval(), example).save(str(tmp_path / name))
    torch.save({"x": torch.randn(20, 3, 16, 16)}, str(tmp_path / "data.pt"))
    refused(tmp_path, ["a.pt", "b.pt"], "--method", "linear", "--recompute-bn", "data.pt")


# --- 11. greedy soup on sklearn's digits ---------------------------------------

def digits_split():
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return (x[perm[:1200]], y[perm[:1200]]), (x[perm[1200:]], y[perm[1200:]])


def train_ingredient(init, train, seed, lr, steps, shuffle_labels=False):
    x, y = train
    m = copy.deepcopy(init)
    g = torch.Generator().manual_seed(seed)
    if shuffle_labels:
        y = y[torch.randperm(len(y), generator=g)]
    opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = F.cross_entropy(m(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


# ingredient file -> (seed, lr, steps, shuffled labels); ing3 is the bad one
INGREDIENTS = {"ing0.pt": (1, 0.05, 300, False), "ing1.pt": (2, 0.02, 400, False),
               "ing2.pt": (3, 0.1, 200, False), "ing3.pt": (4, 0.05, 300, True)}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The ingredients (one shared init) and val.pt {"x", "labels"}."""
    d = tmp_path_factory.mktemp("digits")
    train, (vx, vy) = digits_split()
    torch.manual_seed(0)
    init = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    for name, (seed, lr, steps, shuffled) in INGREDIENTS.items():
        save(train_ingredient(init, train, seed, lr, steps, shuffled), d / name)
    torch.save({"x": vx, "labels": vy}, str(d / "val.pt"))
    return d


def digits_mlp():
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def score(state, metric, val, make=digits_mlp):
    """accuracy or mean cross-entropy on `val` of the module make() holding `state`."""
    m = make()
    m.load_state_dict(state)
    m.eval()
    with torch.no_grad():
        logits = m(val["x"])
    if metric == "accuracy":
        return (logits.argmax(-1) == val["labels"]).sum().item() / len(val["labels"])
    return F.cross_entropy(logits, val["labels"]).item()


def parse_kept(value):
    v = value.strip().lower()
    if v in ("1", "true", "yes", "kept", "start"):
        return True
    assert v in ("0", "false", "no", "dropped"), f"kept column holds {value!r}"
    return False


def read_scores(path, expected_models):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["step", "model", "model_score", "soup_score", "kept"]
        rows = list(reader)
    assert sorted(Path(r["model"]).name for r in rows) == sorted(expected_models), rows
    return rows


def replay_greedy(rows, score_of, higher, tol):
    """Checks the CSV `rows` against the greedy soup replayed in Python, where
    score_of([names]) scores the uniform average of those models; returns
    (the kept names, the soup's score)."""
    names = [Path(r["model"]).name for r in rows]
    scores = {n: score_of([n]) for n in names}
    for row, name in zip(rows, names):
        assert abs(float(row["model_score"]) - scores[name]) <= tol, (name, row, scores[name])
    ordered = [scores[n] for n in names]
    assert ordered == sorted(ordered, reverse=higher), f"not best first: {rows}"
    assert parse_kept(rows[0]["kept"]), rows[0]
    assert abs(float(rows[0]["soup_score"]) - scores[names[0]]) <= tol, rows[0]
    soup, current = [names[0]], scores[names[0]]
    for row, name in zip(rows[1:], names[1:]):
        candidate = score_of(soup + [name])
        assert abs(float(row["soup_score"]) - candidate) <= tol, (row, candidate)
        keep = candidate >= current if higher else candidate <= current
        assert parse_kept(row["kept"]) == keep, (row, candidate, current)
        if keep:
            soup.append(name)
            current = candidate
    return soup, current


@pytest.mark.parametrize("metric", ["accuracy", "loss"])
def test_greedy_soup_on_digits(run_stitch, digits, tmp_path, metric):
    """The CSV replayed in Python: the scores, best first, each candidate's
    soup score, kept iff it scores at least as well; the soup is the uniform
    average of the kept ingredients and no worse than the best single model."""
    val = torch.load(str(digits / "val.pt"))
    states = {name: all_tensors(digits / name) for name in INGREDIENTS}
    higher = metric == "accuracy"
    tol = 1e-6 if higher else 1e-5
    singles = [score(s, metric, val) for s in states.values()]
    best = max(singles) if higher else min(singles)

    out = tmp_path / "soup.pt"
    options = [] if metric == "accuracy" else ["--scores", tmp_path / "loss_scores.csv"]
    code, stdout, stderr = run_stitch("merge", *INGREDIENTS, "-o", out, "--greedy",
                                      "--data", "val.pt", "--metric", metric, *options,
                                      cwd=digits)
    assert code == 0, f"{stdout}\n{stderr}"
    csv_path = tmp_path / ("soup.scores.csv" if metric == "accuracy" else "loss_scores.csv")
    rows = read_scores(csv_path, INGREDIENTS)
    soup, current = replay_greedy(
        rows, lambda names: score(uniform_average([states[n] for n in names]), metric, val),
        higher, tol)
    assert abs(float(rows[0]["model_score"]) - best) <= tol, "the first row is not the best"
    assert "ing3.pt" not in soup  # the ingredient trained on shuffled labels

    got = all_tensors(out)
    want = uniform_average([states[n] for n in soup])
    for name, w in want.items():
        assert torch.allclose(got[name], w, atol=ATOL, rtol=0), name
    final = score(got, metric, val)
    assert (final >= best) if higher else (final <= best + 1e-6), (final, best)
    assert abs(final - current) <= tol


BN_INGREDIENTS = {"bn0.pt": (1, 0.05, 300), "bn1.pt": (2, 0.02, 400), "bn2.pt": (3, 0.1, 200)}


def test_greedy_soup_recomputes_bn_of_every_candidate(run_stitch, tmp_path):
    """--greedy --recompute-bn on a BatchNorm MLP: every soup scored (single
    models too) has its statistics recomputed first (update_bn on 230 rows in
    batches of 64: 64, 64, 64, 38); the result has the kept average's weights
    and their recomputed statistics."""
    train, (vx, vy) = digits_split()
    torch.manual_seed(0)
    init = bn_mlp()
    for name, (seed, lr, steps) in BN_INGREDIENTS.items():
        save(train_ingredient(init, train, seed, lr, steps), tmp_path / name)
    torch.save({"x": vx, "labels": vy}, str(tmp_path / "val.pt"))
    bn_x = train[0][:230]
    torch.save({"x": bn_x}, str(tmp_path / "bn.pt"))
    val = {"x": vx, "labels": vy}
    states = {name: all_tensors(tmp_path / name) for name in BN_INGREDIENTS}

    def soup_of(names):
        return with_recomputed_bn(uniform_average([states[n] for n in names]), bn_mlp, bn_x, 64)

    out = tmp_path / "soup.pt"
    code, stdout, stderr = run_stitch("merge", *BN_INGREDIENTS, "-o", out, "--greedy",
                                      "--data", "val.pt", "--metric", "accuracy",
                                      "--recompute-bn", "bn.pt", cwd=tmp_path)
    assert code == 0, f"{stdout}\n{stderr}"
    rows = read_scores(tmp_path / "soup.scores.csv", BN_INGREDIENTS)
    soup, current = replay_greedy(rows, lambda names: score(soup_of(names), "accuracy", val,
                                                            bn_mlp), True, 1e-6)
    want = soup_of(soup)
    got = all_tensors(out)
    for name, w in want.items():
        if name.endswith(("running_mean", "running_var")):
            assert torch.allclose(got[name], w, atol=FORWARD_ATOL), name
        elif w.is_floating_point():
            assert torch.allclose(got[name], w, atol=ATOL, rtol=0), name
    assert abs(score(got, "accuracy", val, bn_mlp) - current) <= 1e-6


# --- 12. merge: in a spec -------------------------------------------------------

@pytest.fixture
def spec_models(tmp_path):
    torch.manual_seed(7)
    base = bn_mlp()
    save(base, tmp_path / "base.pt")
    save(fine_tuned(base, 1, 0.05), tmp_path / "a.pt")
    save(fine_tuned(base, 2, 0.05), tmp_path / "b.pt")
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(2))
    torch.save(x, str(tmp_path / "x.pt"))
    return tmp_path, x


def compose_merge_entry(run_stitch, folder, entry):
    (folder / "spec.yaml").write_text(textwrap.dedent(f"""\
        inputs: {{x: [N, 64]}}
        models:
          m: {entry}
        graph:
          - y = m(x)
        outputs: [y]
    """))
    out = folder / "out.pt"
    code, stdout, stderr = run_stitch("compose", folder / "spec.yaml", "-o", out)
    assert code == 0, f"compose failed ({code}):\n{stdout}\n{stderr}"
    return out


def check_spec_artifact(run_stitch, folder, out, want, x):
    """The artifact's m.* tensors are `want`, its output the eager module's,
    in Python and through `stitch run`."""
    art = torch.jit.load(str(out)).eval()
    got = {**dict(art.named_parameters()), **dict(art.named_buffers())}
    for name, w in want.items():
        key = f"m.{name}"
        assert key in got, f"no {key} in {sorted(got)}"
        if w.is_floating_point():
            assert torch.allclose(got[key], w, atol=ATOL, rtol=0), key
        else:
            assert torch.equal(got[key], w), key
    eager = bn_mlp()
    eager.load_state_dict(want)
    eager.eval()
    with torch.no_grad():
        expected = eager(x)
        assert torch.allclose(art(x), expected, atol=FORWARD_ATOL)
    code, stdout, stderr = run_stitch("run", out, "--input", f"x={folder / 'x.pt'}",
                                      "-o", folder / "y.pt")
    assert code == 0, f"{stdout}\n{stderr}"
    assert torch.allclose(run_output(folder / "y.pt"), expected, atol=FORWARD_ATOL)
    return art


def test_spec_slerp_entry(run_stitch, spec_models):
    folder, x = spec_models
    out = compose_merge_entry(run_stitch, folder, "{merge: [a.pt, b.pt], method: slerp, t: 0.25}")
    want = ref_slerp(folder / "a.pt", folder / "b.pt", 0.25)
    check_spec_artifact(run_stitch, folder, out, want, x)


def test_spec_linear_entry_with_weights_and_freeze(run_stitch, spec_models):
    folder, x = spec_models
    out = compose_merge_entry(run_stitch, folder,
                              "{merge: [a.pt, b.pt], method: linear, weights: [0.7, 0.3], "
                              "freeze: true}")
    want = ref_linear([folder / "a.pt", folder / "b.pt"], weights=[0.7, 0.3])
    art = check_spec_artifact(run_stitch, folder, out, want, x)
    params = dict(art.named_parameters())
    frozen = [n for n in params if n.startswith("m.")]
    assert frozen and not any(params[n].requires_grad for n in frozen), frozen


# entry -> reference(folder)
SPEC_ENTRIES = {
    "task_arithmetic": (
        "{merge: [a.pt, b.pt], method: task_arithmetic, base: base.pt, scale: 0.5}",
        lambda d: ref_task("task_arithmetic", [d / "a.pt", d / "b.pt"], d / "base.pt",
                           scale=0.5)),
    "ties": (
        "{merge: [a.pt, b.pt], method: ties, base: base.pt, density: 0.3, scale: 0.5}",
        lambda d: ref_task("ties", [d / "a.pt", d / "b.pt"], d / "base.pt", scale=0.5,
                           density=0.3)),
    "dare": (
        "{merge: [a.pt, b.pt], method: dare, base: base.pt, density: 0.4, seed: 3}",
        lambda d: ref_task("dare", [d / "a.pt", d / "b.pt"], d / "base.pt", density=0.4,
                           seed=3)),
    "linear_by_default_glob_weights": (
        "{merge: [a.pt, b.pt], weights: '3.*=0.2'}",
        lambda d: ref_linear([d / "a.pt", d / "b.pt"], rules=[("3.*", [0.2, 0.8])])),
}


@pytest.mark.parametrize("case", list(SPEC_ENTRIES))
def test_spec_entry_keys(run_stitch, spec_models, case):
    """The keys method (default linear), weights (the glob string), base,
    scale, density and seed of a merge: entry."""
    folder, x = spec_models
    entry, reference = SPEC_ENTRIES[case]
    out = compose_merge_entry(run_stitch, folder, entry)
    check_spec_artifact(run_stitch, folder, out, reference(folder), x)


# --- 13. options the method does not take ---------------------------------------

@pytest.mark.parametrize("method,option", [("linear", ["--t", "0.3"]),
                                           ("slerp", ["--seed", "3"]),
                                           ("ties", ["--base", "ft3.pt", "--seed", "3"])])
def test_an_option_the_method_does_not_take_is_refused(refused, cnn, method, option):
    err = refused(cnn, ["ft1.pt", "ft2.pt"], "--method", method, *option, usage=True)
    assert f"{option[-2]} is not an option of the {method} method" in err, err


def test_a_greedy_soup_takes_no_method_options(refused, cnn):
    err = refused(cnn, ["ft1.pt", "ft2.pt"], "--greedy", "--data", "val.pt", "--t", "0.3",
                  usage=True)
    assert "--t" in err, err


def test_a_spec_entry_with_an_option_its_method_does_not_take_is_refused(run_stitch, spec_models):
    folder, _ = spec_models
    (folder / "spec.yaml").write_text(textwrap.dedent("""\
        inputs: {x: [N, 64]}
        models:
          m: {merge: [a.pt, b.pt], t: 0.3}
        graph:
          - y = m(x)
        outputs: [y]
    """))
    code, stdout, stderr = run_stitch("check", folder / "spec.yaml")
    assert_clean_error(code, stdout, stderr)
    assert "spec.yaml:3:" in stderr and "models.m.t is not an option of the linear method" in stderr


def test_ties_of_half_precision_models_is_computed_in_float(merged, tmp_path):
    """LibTorch 1.13 has no half topk or clamp on the CPU: stitch trims,
    elects and averages in float and stores half, as the test does."""
    torch.manual_seed(3)
    base = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
    files = []
    for i in range(3):
        m = copy.deepcopy(base)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.05 * torch.randn_like(p))
        save(m.half(), tmp_path / f"h{i}.pt")
        files.append(tmp_path / f"h{i}.pt")
    out, _ = merged(tmp_path, ["h0.pt", "h1.pt"], "--method", "ties", "--base", "h2.pt",
                    "--density", "0.5")
    got = all_tensors(out)
    b_state = all_tensors(files[2])
    for name, b in b_state.items():
        ts = [all_tensors(f)[name].float() for f in files[:2]]
        want = ties_tensor(b.float(), ts, 0.5, 1.0).half()
        assert got[name].dtype == torch.float16, name
        assert torch.allclose(got[name].float(), want.float(), atol=2e-3), name
