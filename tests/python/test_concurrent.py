"""Concurrent branches (BuildOptions().concurrent(true), TorchScript fork/wait):
the forked artifact loads in Python and gives the numbers of the plain build,
frozen or not, and its gradients.

The two artifacts (seed 001's parallel example, plus a linear layer) are
written by the C++ test ConcurrentTest.WritesArtifactsForPython: the option
is C++ API only.
"""

import os
import subprocess

import pytest
import torch

from conftest import BUILD


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, fixtures_dir):
    tests = BUILD / "tests" / "stitch_tests"
    if not tests.is_file():
        pytest.skip(f"no {tests} (build the C++ tests)")
    out = tmp_path_factory.mktemp("concurrent")
    proc = subprocess.run([str(tests), "--gtest_filter=ConcurrentTest.WritesArtifactsForPython"],
                          env=dict(os.environ, STITCH_CONCURRENT_OUT=str(out)),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout
    plain, forked = torch.jit.load(str(out / "plain.pt")), torch.jit.load(str(out / "forked.pt"))
    return plain, forked, fixtures_dir


def test_forked_artifact_equals_plain_build_and_pytorch(artifacts):
    plain, forked, fixtures = artifacts
    assert "fork(" in forked.code and "fork(" not in plain.code
    m1 = torch.jit.load(str(fixtures / "seed001_ex3_module1.pt")).eval()
    m2 = torch.jit.load(str(fixtures / "seed001_ex3_module2.pt")).eval()
    x = torch.randn(5, 10)
    with torch.no_grad():
        by_hand = plain.linear(torch.cat([m1(x), m2(x)], 1))
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
