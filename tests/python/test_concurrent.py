"""Concurrent branches (`stitch compose --concurrent`, C++
BuildOptions().concurrent(true), TorchScript fork/wait): the forked artifact
loads in Python and gives the numbers of the plain build, frozen or not, and
its gradients. The graph is seed 001's parallel example plus a linear layer.
"""

import pytest
import torch

SPEC = """
inputs:
  x: [N, 10]
models:
  module1: {{file: {fixtures}/seed001_ex3_module1.pt}}
  module2: {{file: {fixtures}/seed001_ex3_module2.pt}}
graph:
  - y = linear(concat(module1(x), module2(x), dim=1), 3)
outputs: [y]
"""


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, fixtures_dir, run_stitch):
    out = tmp_path_factory.mktemp("concurrent")
    spec = out / "parallel.yaml"
    spec.write_text(SPEC.format(fixtures=fixtures_dir))
    for name, flags in [("plain.pt", []), ("forked.pt", ["--concurrent"])]:
        code, _, err = run_stitch("compose", spec, "-o", out / name, *flags)
        assert code == 0, err
    plain, forked = torch.jit.load(str(out / "plain.pt")), torch.jit.load(str(out / "forked.pt"))
    return plain, forked, fixtures_dir


def test_forked_artifact_equals_plain_build_and_pytorch(artifacts):
    plain, forked, fixtures = artifacts
    assert "fork(" in forked.code and "fork(" not in plain.code
    m1 = torch.jit.load(str(fixtures / "seed001_ex3_module1.pt")).eval()
    m2 = torch.jit.load(str(fixtures / "seed001_ex3_module2.pt")).eval()
    x = torch.randn(5, 10)
    with torch.no_grad():
        by_hand = plain.y(torch.cat([m1(x), m2(x)], 1))
        assert torch.allclose(forked(x), plain(x))
        assert torch.allclose(forked(x), by_hand, atol=1e-6)


def test_forked_artifact_freezes(artifacts):
    plain, forked, _ = artifacts
    frozen = torch.jit.freeze(forked.eval())
    x = torch.randn(3, 10)
    with torch.no_grad():
        assert torch.allclose(frozen(x), plain(x), atol=1e-6)


def test_forked_branches_backpropagate(artifacts):
    plain, forked, _ = artifacts
    x = torch.randn(4, 10)
    grads = []
    for m in (plain, forked):
        m.train()
        m.zero_grad()
        m(x).square().sum().backward()
        grads.append({name: p.grad.clone() for name, p in m.named_parameters()})
        m.eval()
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, g in grads[0].items():
        assert torch.allclose(grads[1][name], g, atol=1e-6), name
