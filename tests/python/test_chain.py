"""`stitch chain A.pt B.pt ... --input SHAPE -o OUT.pt` builds y = B(A(x))."""

import shutil

import pytest
import torch

from conftest import assert_clean_error

ATOL = 1e-5


@pytest.fixture
def chained(run_stitch, fixtures_dir, tmp_path):
    """chained(["a.pt", "b.pt"], "1x10") -> loaded artifact (asserts success)."""
    def chain(models, shape, *extra):
        paths = []
        for name in models:
            shutil.copyfile(fixtures_dir / name, tmp_path / name)
            paths.append(tmp_path / name)
        out = tmp_path / "out.pt"
        code, stdout, stderr = run_stitch("chain", *paths, "--input", shape, "-o", out, *extra)
        assert code == 0, f"chain failed ({code}):\n{stdout}\n{stderr}"
        return torch.jit.load(str(out))
    return chain


def _load(fixtures_dir, name):
    m = torch.jit.load(str(fixtures_dir / name))
    m.eval()
    return m


def test_chain_of_two_equals_b_of_a(chained, fixtures_dir):
    """Seed 000, example 1, from the command line."""
    art = chained(["seed000_ex1_model1.pt", "seed000_ex1_model2.pt"], "1x10")
    a = _load(fixtures_dir, "seed000_ex1_model1.pt")
    b = _load(fixtures_dir, "seed000_ex1_model2.pt")
    with torch.no_grad():
        for batch in (1, 3):
            x = torch.randn(batch, 10)
            assert torch.allclose(art(x), b(a(x)), atol=ATOL)


def test_chain_forward_argument_is_x(chained):
    art = chained(["seed000_ex1_model1.pt", "seed000_ex1_model2.pt"], "1x10")
    names = [a.name for a in art.forward.schema.arguments]
    assert names[1:] == ["x"], art.forward.schema
    assert not art.training


def test_chain_of_three(chained, fixtures_dir):
    art = chained(["mlp_a.pt", "mlp_a.pt", "mlp_b.pt"], "1x64")
    a = _load(fixtures_dir, "mlp_a.pt")
    b = _load(fixtures_dir, "mlp_b.pt")
    with torch.no_grad():
        x = torch.randn(4, 64)
        assert torch.allclose(art(x), b(a(a(x))), atol=ATOL)


def test_chain_cnn_into_classifier(chained, fixtures_dir):
    """Seed 000, example 3 (corrected): conv feature extractor, then classifier."""
    art = chained(["seed000_ex3_model1.pt", "seed000_ex3_model2_fixed.pt"], "1x3x24x24")
    a = _load(fixtures_dir, "seed000_ex3_model1.pt")
    b = _load(fixtures_dir, "seed000_ex3_model2_fixed.pt")
    with torch.no_grad():
        x = torch.randn(2, 3, 24, 24)
        assert torch.allclose(art(x), b(a(x)), atol=ATOL)


def test_chain_then_run(run_stitch, chained, fixtures_dir, tmp_path):
    art = chained(["seed000_ex1_model1.pt", "seed000_ex1_model2.pt"], "1x10")
    x = torch.load(str(fixtures_dir / "inputs" / "x10.pt"))
    code, stdout, stderr = run_stitch("run", tmp_path / "out.pt", "--input",
                                      f"x={fixtures_dir / 'inputs' / 'x10.pt'}",
                                      "-o", tmp_path / "y.pt")
    assert code == 0, stderr
    with torch.no_grad():
        assert torch.allclose(torch.load(str(tmp_path / "y.pt")), art(x), atol=ATOL)


def test_a_mismatch_suggests_adapt_only_where_it_helps(run_stitch, fixtures_dir, tmp_path):
    a, b = fixtures_dir / "seed000_ex1_model1.pt", fixtures_dir / "mlp_b.pt"  # 5 -> 64
    code, out, err = run_stitch("chain", a, b, "--input", "1x10", "-o", tmp_path / "o.pt")
    assert_clean_error(code, out, err)
    assert "fix: add --adapt" in err, err
    code, out, err = run_stitch("chain", a, b, "--input", "1x10", "-o", tmp_path / "o.pt",
                                "--adapt")
    assert code == 0, err
    assert "adapter before mlp_b: adapt: [N, 5] -> [N, 64] by a learned projection" in out, out
    # The input does not fit the first model: --adapt cannot help there.
    code, out, err = run_stitch("chain", a, b, "--input", "1x11", "-o", tmp_path / "o.pt")
    assert_clean_error(code, out, err)
    assert "cannot feed x into seed000_ex1_model1" in err and "--adapt" not in err, err


def test_models_named_like_built_in_ops_chain(run_stitch, tmp_path):
    """chain names models after their files; mlp.pt and linear.pt are the
    models mlp_model and linear_model, not the built-in ops."""
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU()).eval()
    linear = torch.nn.Linear(8, 3).eval()
    torch.jit.script(mlp).save(str(tmp_path / "mlp.pt"))
    torch.jit.script(linear).save(str(tmp_path / "linear.pt"))
    code, _, err = run_stitch("chain", tmp_path / "mlp.pt", tmp_path / "linear.pt",
                              "--input", "1x10", "-o", tmp_path / "o.pt")
    assert code == 0, err
    m = torch.jit.load(str(tmp_path / "o.pt"))
    assert {name for name, _ in m.named_children()} == {"mlp_model", "linear_model"}
    x = torch.randn(4, 10)
    with torch.no_grad():
        assert torch.allclose(m(x), linear(mlp(x)), atol=ATOL)
