"""adapt(), fixes in shape mismatch errors, and `stitch chain --adapt`.

The seeds' shape bugs are the tests: the `fix:` text stitch prints, pasted
into the spec, composes, and the artifact computes what the same adapter
written by hand in PyTorch does.
"""

import re
import shutil

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import assert_clean_error, make_inputs

ATOL = 1e-5


def first_fix(stderr):
    """The first alternative of the first `fix:` line."""
    m = re.search(r"^\s*fix: (.*)$", stderr, re.M)
    assert m, f"no fix: line in\n{stderr}"
    return m.group(1).split("   or   ")[0].split("   (")[0].strip()


def compose_ok(run_stitch, spec, out):
    code, stdout, stderr = run_stitch("compose", spec, "-o", out)
    assert code == 0, f"compose failed ({code}):\n{stdout}\n{stderr}"
    return stdout, torch.jit.load(str(out))


def load_eval(path):
    m = torch.jit.load(str(path))
    m.eval()
    return m


def test_seed000_ex3_fix_composes_and_runs(run_stitch, copy_example, tmp_path):
    spec = copy_example("seed000_ex3_bug.yaml")
    code, stdout, stderr = run_stitch("compose", spec, "-o", tmp_path / "out.pt")
    assert_clean_error(code, stdout, stderr)
    assert "1936" in stderr or "2304" in stderr, stderr
    fix = first_fix(stderr)
    assert fix == "resize(model1(x), [12, 12])", stderr
    text = spec.read_text()
    assert "model1(x)" in text
    spec.write_text(text.replace("model1(x)", fix, 1))
    _, art = compose_ok(run_stitch, spec, tmp_path / "out.pt")

    m1 = load_eval(tmp_path / "models" / "seed000_ex3_model1.pt")
    m2 = load_eval(tmp_path / "models" / "seed000_ex3_model2.pt")
    (x,) = make_inputs(spec, batch=3)
    with torch.no_grad():
        want = m2(F.interpolate(m1(x), size=[12, 12], mode="bilinear", align_corners=False))
        assert torch.allclose(art(x), want, atol=ATOL)


def test_seed002_resnet_into_a_linear_model_fix_composes(run_stitch, fixtures_dir, tmp_path):
    """Strategy 1: resnet18 without its fc gives [N, 512, 1, 1]; a model
    starting with Linear(512) needs [N, 512]."""
    shutil.copyfile(fixtures_dir / "resnet18.pt", tmp_path / "resnet18.pt")
    torch.manual_seed(0)
    torch.jit.script(nn.Linear(512, 5).eval()).save(str(tmp_path / "classifier.pt"))
    template = ("inputs:\n"
                "  image: [N, 3, 64, 64]\n"
                "models:\n"
                "  vision: {file: resnet18.pt, cut: avgpool, freeze: true}\n"
                "  head: {file: classifier.pt}\n"
                "graph:\n"
                "  - logits = head(vision(image))\n"
                "outputs: [logits]\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(template)
    code, stdout, stderr = run_stitch("check", spec)
    assert_clean_error(code, stdout, stderr)
    assert "[N, 512, 1, 1]" in stderr and "Linear(in_features=512)" in stderr, stderr
    assert "fix: flatten(vision(image))   or   adapt(vision(image), like=head)" in stderr
    fixes = re.search(r"fix: (.*)", stderr).group(1).split("   or   ")

    r = load_eval(tmp_path / "resnet18.pt")
    head = load_eval(tmp_path / "classifier.pt")
    backbone = nn.Sequential(*[getattr(r, n) for n in (
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")])
    x = torch.randn(2, 3, 64, 64)
    for fix in fixes:
        spec.write_text(template.replace("vision(image)", fix.strip(), 1))
        stdout, art = compose_ok(run_stitch, spec, tmp_path / "out.pt")
        with torch.no_grad():
            assert torch.allclose(art(x), head(backbone(x).flatten(1)), atol=ATOL)
    assert "adapt: [N, 512, 1, 1] -> [N, 512] by flatten" in stdout, stdout


def test_adapt_choice_is_printed_by_check(run_stitch, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("inputs:\n  x: [N, 512, 7, 7]\n"
                    "graph:\n  - y = adapt(x, to=[N, 512])\n  - z = adapt(y, to=[N, 10])\n"
                    "outputs: [z]\n")
    code, stdout, stderr = run_stitch("check", spec)
    assert code == 0, stderr
    assert "adapt: [N, 512, 7, 7] -> [N, 512] by global average pooling" in stdout
    assert "adapt: [N, 512] -> [N, 10] by a learned projection Linear(512 -> 10)" in stdout
    # #20: a learned adapter starts untrained, and check says so (only that one).
    notes = [line for line in stdout.splitlines() if line.startswith("note: the adapter of")]
    assert notes == ["note: the adapter of y is a learned projection Linear(512 -> 10), freshly "
                     "initialised (seeded, not trained): train it (stitch train) before its "
                     "outputs mean anything"], stdout


def test_adapt_like_unknown_model_is_a_spec_error(run_stitch, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("inputs:\n  x: [N, 5]\n"
                    "graph:\n  - y = adapt(x, like=nobody)\noutputs: [y]\n")
    code, stdout, stderr = run_stitch("check", spec)
    assert_clean_error(code, stdout, stderr)
    assert "nobody" in stderr


def test_chain_without_adapt_lists_the_fixes(run_stitch, fixtures_dir, tmp_path):
    a, b = fixtures_dir / "seed000_ex3_model1.pt", fixtures_dir / "seed000_ex3_model2.pt"
    code, stdout, stderr = run_stitch("chain", a, b, "--input", "1x3x24x24",
                                      "-o", tmp_path / "out.pt")
    assert_clean_error(code, stdout, stderr)
    assert "fix: resize(seed000_ex3_model1(x), [12, 12])" in stderr, stderr
    assert "--adapt" in stderr
    assert not (tmp_path / "out.pt").exists()


def test_chain_with_adapt_inserts_and_prints_the_adapter(run_stitch, fixtures_dir, tmp_path):
    a, b = fixtures_dir / "seed000_ex3_model1.pt", fixtures_dir / "seed000_ex3_model2.pt"
    code, stdout, stderr = run_stitch("chain", a, b, "--input", "1x3x24x24",
                                      "-o", tmp_path / "out.pt", "--adapt")
    assert code == 0, stderr
    assert ("adapter before seed000_ex3_model2: adapt: [N, 16, 11, 11] -> "
            "[N, 16, 12, 12] by resize (interpolation) to 12x12") in stdout, stdout
    art = torch.jit.load(str(tmp_path / "out.pt"))
    m1, m2 = load_eval(a), load_eval(b)
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        want = m2(F.interpolate(m1(x), size=[12, 12], mode="bilinear", align_corners=False))
        assert torch.allclose(art(x), want, atol=ATOL)


def test_chain_with_adapt_leaves_fitting_models_alone(run_stitch, fixtures_dir, tmp_path):
    a, b = fixtures_dir / "seed000_ex1_model1.pt", fixtures_dir / "seed000_ex1_model2.pt"
    code, stdout, stderr = run_stitch("chain", a, b, "--input", "1x10",
                                      "-o", tmp_path / "out.pt", "--adapt")
    assert code == 0, stderr
    assert "adapt: [N, 5] fits as it is" in stdout, stdout
    art = torch.jit.load(str(tmp_path / "out.pt"))
    x = torch.randn(3, 10)
    with torch.no_grad():
        assert torch.allclose(art(x), load_eval(b)(load_eval(a)(x)), atol=ATOL)


def test_the_fix_for_a_concat_of_two_maps_is_valid_as_written(run_stitch, tmp_path):
    """#20: the fix said to=[N, ?, 14, 14], which the parser refused."""
    def spec(expression):
        path = tmp_path / "spec.yaml"
        path.write_text("inputs:\n  a: [N, 4, 14, 14]\n  b: [N, 3, 7, 7]\nmodels: {}\n"
                        f"graph:\n  - y = concat(a, {expression}, dim=1)\noutputs: [y]\n")
        return path
    code, out, err = run_stitch("check", spec("b"))
    assert code == 1, err
    fixes = [line.split("fix: ", 1)[1] for line in err.splitlines() if "fix: " in line]
    assert fixes, err
    alternatives = fixes[0].split("   or   ")
    assert any("to=[N, -1, 14, 14]" in a for a in alternatives), err
    for alternative in alternatives:
        code, out, err2 = run_stitch("check", spec(alternative.strip()))
        assert code == 0, f"the fix {alternative!r} does not check:\n{err2}"
        assert "float[N, 7, 14, 14]" in out, out
