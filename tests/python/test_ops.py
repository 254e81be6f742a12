"""Each built-in op, composed alone into an artifact, computes what PyTorch
computes (PRODUCT.md "Built-in ops"), with the weights of learned ops read from
the artifact under the names the contract gives them (`y = linear(x, 5)` ->
`y.weight`; nested `y = relu(linear(x, 5))` -> `y_linear.weight`)."""

import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import artifact_tensors

ATOL = 1e-5

X = "x: [N, 6]"
A3 = "a: [N, 4]\n  b: [N, 4]\n  c: [N, 4]"
IMG = "x: [N, 3, 5, 6]"
SEQ = "x: [N, 5, 8]"


def _linear(P, name, x):
    return F.linear(x, P[f"{name}.weight"], P.get(f"{name}.bias"))


def _bn(P, name, x):
    return F.batch_norm(x, P[f"{name}.running_mean"], P[f"{name}.running_var"],
                        P[f"{name}.weight"], P[f"{name}.bias"], False, 0.0, 1e-5)


def _nested_linears(P, x):
    """y = relu(linear(linear(x, 8), 4)): two nested linears, y_linear and
    y_linear_2 (whichever order stitch numbers them in, told apart by shape)."""
    names = ["y_linear", "y_linear_2"]
    inner = next(n for n in names if P[f"{n}.weight"].shape == (8, 6))
    outer = next(n for n in names if P[f"{n}.weight"].shape == (4, 8))
    return F.relu(_linear(P, outer, _linear(P, inner, x)))


# id -> (inputs block, graph lines, reference(P, **inputs))
CASES = {
    "concat": (A3, ["y = concat(a, b, c, dim=1)"],
               lambda P, a, b, c: torch.cat((a, b, c), 1)),
    "concat_last_dim": (A3, ["y = concat(a, b, dim=-1)"],
                        lambda P, a, b, c: torch.cat((a, b), -1)),
    "add": (A3, ["y = add(a, b, c)"], lambda P, a, b, c: a + b + c),
    "stack": (A3, ["y = stack(a, b, dim=1)"], lambda P, a, b, c: torch.stack((a, b), 1)),
    "mul": (A3, ["y = mul(a, b)"], lambda P, a, b, c: a * b),
    "arithmetic": (A3, ["y = a + b * 2 - c"], lambda P, a, b, c: a + b * 2 - c),
    "flatten": (IMG, ["y = flatten(x)"], lambda P, x: torch.flatten(x, 1)),
    "flatten_start": (IMG, ["y = flatten(x, start=2)"], lambda P, x: torch.flatten(x, 2)),
    "reshape": ("x: [N, 12]", ["y = reshape(x, [-1, 3, 4])"],
                lambda P, x: x.reshape(-1, 3, 4)),
    "permute": (SEQ, ["y = permute(x, [0, 2, 1])"], lambda P, x: x.permute(0, 2, 1)),
    "unsqueeze": (X, ["y = unsqueeze(x, 1)"], lambda P, x: x.unsqueeze(1)),
    "squeeze": (X, ["y = squeeze(unsqueeze(x, 2), 2)"], lambda P, x: x),
    "mean": (SEQ, ["y = mean(x, dim=1)"], lambda P, x: x.mean(1)),
    "pool_avg": (IMG, ['y = pool(x, "avg")'], lambda P, x: x.mean((2, 3))),
    "pool_max": (IMG, ['y = pool(x, "max")'], lambda P, x: x.amax((2, 3))),
    "resize": (IMG, ["y = resize(x, [8, 10])"],
               lambda P, x: F.interpolate(x, size=(8, 10), mode="bilinear",
                                          align_corners=False)),
    "select": (SEQ, ["y = select(x, 1, 2)"], lambda P, x: x.select(1, 2)),
    "linear": (X, ["y = linear(x, 4)"], lambda P, x: _linear(P, "y", x)),
    "linear_no_bias": (X, ["y = linear(x, 4, bias=false)"],
                       lambda P, x: F.linear(x, P["y.weight"])),
    "linear_nested_names": (X, ["y = relu(linear(linear(x, 8), 4))"], _nested_linears),
    "linear_on_3d": (SEQ, ["y = linear(x, 3)"], lambda P, x: _linear(P, "y", x)),
    "conv2d": (IMG, ["y = conv(x, 6, kernel=3, stride=2, padding=1)"],
               lambda P, x: F.conv2d(x, P["y.weight"], P["y.bias"], stride=2, padding=1)),
    "conv2d_default_1x1": (IMG, ["y = conv(x, 4)"],
                           lambda P, x: F.conv2d(x, P["y.weight"], P["y.bias"])),
    "conv1d": (SEQ, ["y = conv(x, 7, kernel=3)"],
               lambda P, x: F.conv1d(x, P["y.weight"], P["y.bias"])),
    "mlp": (X, ["y = mlp(x, [16, 8, 3])"],
            lambda P, x: _linear(P, "y.fc2", F.relu(_linear(P, "y.fc1", F.relu(
                _linear(P, "y.fc0", x)))))),
    "mlp_gelu": (X, ['y = mlp(x, [16, 3], act="gelu")'],
                 lambda P, x: _linear(P, "y.fc1", F.gelu(_linear(P, "y.fc0", x)))),
    "embedding": ("tokens: {shape: [N, 7], dtype: int64}", ["y = embedding(tokens, 50, 6)"],
                  lambda P, tokens: F.embedding(tokens, P["y.weight"])),
    "layernorm": (SEQ, ["y = layernorm(x)"],
                  lambda P, x: F.layer_norm(x, (8,), P["y.weight"], P["y.bias"], 1e-5)),
    "batchnorm1d": (X, ["y = batchnorm(x)"], lambda P, x: _bn(P, "y", x)),
    "batchnorm2d": (IMG, ["y = batchnorm(x)"], lambda P, x: _bn(P, "y", x)),
    "scale_offset": (X, ["y = scale_offset(x, scale=3.0, offset=-1.0)"],
                     lambda P, x: x * P["y.scale"] + P["y.offset"]),
    "normalize": (IMG, ["y = normalize(x, mean=[0.5, 0.4, 0.3], std=[0.2, 0.3, 0.4])"],
                  lambda P, x: (x - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1))
                  / torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1)),
    "relu": (X, ["y = relu(x)"], lambda P, x: F.relu(x)),
    "gelu": (X, ["y = gelu(x)"], lambda P, x: F.gelu(x)),
    "sigmoid": (X, ["y = sigmoid(x)"], lambda P, x: torch.sigmoid(x)),
    "tanh": (X, ["y = tanh(x)"], lambda P, x: torch.tanh(x)),
    "softmax": (X, ["y = softmax(x, 1)"], lambda P, x: torch.softmax(x, 1)),
    "l2norm": (X, ["y = l2norm(x, dim=1)"], lambda P, x: F.normalize(x, dim=1)),
    "dropout_is_identity_in_eval": (X, ["y = dropout(x, 0.5)"], lambda P, x: x),
}

# 0-dim parameters the contract fixes the initial value of.
INITIAL = {"scale_offset": {"y.scale": 3.0, "y.offset": -1.0}}


def _spec_text(inputs, graph):
    lines = ["inputs:", "  " + inputs, "graph:"] + [f"  - {g}" for g in graph]
    return "\n".join(lines + ["outputs: [y]", ""])


def _make_inputs(spec_text, batch):
    g = torch.Generator().manual_seed(batch)
    out = {}
    for name, decl in yaml.safe_load(spec_text)["inputs"].items():
        shape = decl["shape"] if isinstance(decl, dict) else decl
        dims = [batch if isinstance(d, str) else d for d in shape]
        if isinstance(decl, dict) and decl.get("dtype") == "int64":
            out[name] = torch.randint(0, 50, dims, generator=g)
        else:
            out[name] = torch.randn(*dims, generator=g)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_op_matches_pytorch(run_stitch, tmp_path, case):
    inputs, graph, reference = CASES[case]
    text = _spec_text(inputs, graph)
    (tmp_path / "spec.yaml").write_text(text)
    out = tmp_path / "out.pt"
    code, stdout, stderr = run_stitch("compose", tmp_path / "spec.yaml", "-o", out)
    assert code == 0, f"compose failed ({code}):\n{text}\n{stdout}\n{stderr}"
    art = torch.jit.load(str(out))
    P = artifact_tensors(art)
    for name, value in INITIAL.get(case, {}).items():
        assert float(P[name]) == value, (name, float(P[name]))
    with torch.no_grad():
        for batch in (1, 3):
            xs = _make_inputs(text, batch)
            got = art(**xs) if len(xs) > 1 else art(*xs.values())
            want = reference(P, **xs)
            assert got.shape == want.shape, (got.shape, want.shape)
            assert got.dtype == want.dtype, (got.dtype, want.dtype)
            assert torch.allclose(got, want, atol=ATOL), (got - want).abs().max()
