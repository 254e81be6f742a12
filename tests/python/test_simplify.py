"""Dead code and repeats (#20): an entry no output uses is left out of the
artifact, and the same call on the same values runs once. `check` and
`compose` say so; the numbers are those of the used part written by hand."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import assert_clean_error

ATOL = 1e-5

# The spec: z is computed from vision's output but no output uses it.
UNUSED_BRANCH = """\
inputs:
  image: [N, 3, 224, 224]
models:
  vision: {file: resnet18.pt, cut: avgpool}
  head: {file: head.pt}
  depth: {file: head.pt}
graph:
  - logits = head(vision(image))
  - z = depth(adapt(pool(vision(image), "avg"), like=depth))
outputs: [logits]
"""

# vision(image) written twice: one run, two outputs.
REPEATED_CALL = """\
inputs:
  image: [N, 3, 224, 224]
models:
  vision: {file: resnet18.pt, cut: avgpool}
  head: {file: head.pt}
graph:
  - features = flatten(vision(image))
  - logits = head(vision(image))
outputs: [features, logits]
"""

# Two dropouts and two linear layers on one value are different computations.
NOT_REPEATS = """\
inputs:
  x: [N, 10]
models: {}
graph:
  - a = linear(x, 4)
  - b = linear(x, 4)
  - c = dropout(x, p=0.5)
  - d = dropout(x, p=0.5)
outputs: [a, b, c, d]
"""


def compose(run_stitch, tmp_path, fixtures_dir, text):
    for name in ("resnet18.pt", "head.pt"):
        (tmp_path / name).write_bytes((fixtures_dir / name).read_bytes())
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    out = tmp_path / "out.pt"
    code, stdout, stderr = run_stitch("compose", spec, "-o", out)
    assert code == 0, stderr
    return spec, out, stdout


def calls_of(module, name):
    """How many times forward's code calls the submodule `name`."""
    return module.code.count(f"self.{name}.") + module.code.count(f"{name} = self.{name}\n")


def resnet_trunk(fixtures_dir):
    r = torch.jit.load(str(fixtures_dir / "resnet18.pt")).eval()
    return nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3,
                         r.layer4, r.avgpool)


def test_an_unused_entry_is_left_out_with_a_note(run_stitch, tmp_path, fixtures_dir):
    spec, out, stdout = compose(run_stitch, tmp_path, fixtures_dir, UNUSED_BRANCH)
    assert "note: z = depth(" in stdout and "is used by no output: left out of the build" in stdout
    code, check_out, _ = run_stitch("check", spec)
    assert code == 0 and "note: z = depth(" in check_out
    art = torch.jit.load(str(out))
    graph = str(art.graph)
    assert graph.count('name="vision"') == 1, graph
    assert 'name="depth"' not in graph, graph
    assert not any(n.startswith("z_") for n, _ in art.named_children()), "no layer for z"
    trunk = resnet_trunk(fixtures_dir)
    head = torch.jit.load(str(fixtures_dir / "head.pt")).eval()
    with torch.no_grad():
        x = torch.randn(2, 3, 224, 224)
        assert torch.allclose(art(x), head(trunk(x)), atol=ATOL)


def test_the_same_call_twice_runs_once(run_stitch, tmp_path, fixtures_dir):
    spec, out, stdout = compose(run_stitch, tmp_path, fixtures_dir, REPEATED_CALL)
    assert "note: vision(image) is written 2 times (in features, logits): computed once" in stdout
    art = torch.jit.load(str(out))
    graph = str(art.graph)
    assert graph.count('name="vision"') == 1, graph
    trunk = resnet_trunk(fixtures_dir)
    head = torch.jit.load(str(fixtures_dir / "head.pt")).eval()
    with torch.no_grad():
        x = torch.randn(2, 3, 224, 224)
        got = art(x)
        assert torch.allclose(got["features"], torch.flatten(trunk(x), 1), atol=ATOL)
        assert torch.allclose(got["logits"], head(trunk(x)), atol=ATOL)


def test_layers_and_dropouts_are_never_shared(run_stitch, tmp_path, fixtures_dir):
    spec, out, stdout = compose(run_stitch, tmp_path, fixtures_dir, NOT_REPEATS)
    assert "note:" not in stdout, stdout
    art = torch.jit.load(str(out))
    children = dict(art.named_children())
    assert {"a", "b"} <= set(children), sorted(children)
    assert not torch.equal(children["a"].weight, children["b"].weight)
    art.train()
    torch.manual_seed(0)
    got = art(torch.ones(64, 10))
    assert not torch.equal(got["c"], got["d"]), "two dropouts draw two masks"
    art.eval()
    with torch.no_grad():
        x = torch.randn(3, 10)
        got = art(x)
        assert torch.allclose(got["a"], F.linear(x, children["a"].weight, children["a"].bias))
        assert torch.equal(got["c"], x) and torch.equal(got["d"], x)


def test_an_unused_input_is_noted(run_stitch, tmp_path, fixtures_dir):
    spec = tmp_path / "spec.yaml"
    spec.write_text("inputs:\n  x: [N, 4]\n  mask: [N, 4]\nmodels: {}\n"
                    "graph:\n  - y = relu(x)\noutputs: [y]\n")
    code, stdout, stderr = run_stitch("check", spec)
    assert code == 0, stderr
    assert "note: input 'mask' is used by no output" in stdout


def test_a_shape_error_in_an_unused_entry_is_still_an_error(run_stitch, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("inputs:\n  x: [N, 4]\nmodels: {}\n"
                    "graph:\n  - y = relu(x)\n  - z = reshape(x, [N, 5])\noutputs: [y]\n")
    assert_clean_error(*run_stitch("check", spec))
