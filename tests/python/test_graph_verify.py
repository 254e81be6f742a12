"""`stitch graph` draws specs and artifacts; `stitch verify` checks an
artifact against its parts."""

import os
import shutil
import subprocess

import pytest
import torch

from conftest import assert_clean_error, files_in

DOT = shutil.which("dot")

LATE_FUSION = (
    "inputs:\n"
    "  image: [N, 3, 64, 64]\n"
    "  signal: [N, 100]\n"
    "models:\n"
    "  vision: {file: resnet18.pt, cut: avgpool, freeze: true}\n"
    "  other: {file: seed004_mockcnn.pt, cut: features}\n"
    "graph:\n"
    "  - img = adapt(vision(image), to=[N, 512])\n"
    "  - both = concat(img, other(signal), dim=1)\n"
    "  - logits = linear(both, 5)\n"
    "outputs: [logits]\n")


@pytest.fixture
def late_fusion(fixtures_dir, tmp_path):
    for name in ("resnet18.pt", "seed004_mockcnn.pt"):
        shutil.copyfile(fixtures_dir / name, tmp_path / name)
    spec = tmp_path / "spec.yaml"
    spec.write_text(LATE_FUSION)
    return spec


def test_graph_of_a_spec_is_dot_that_dot_accepts(run_stitch, late_fusion, tmp_path):
    code, stdout, stderr = run_stitch("graph", late_fusion, "-o", tmp_path / "g.dot")
    assert code == 0, stderr
    text = (tmp_path / "g.dot").read_text()
    for word in ("vision", "frozen", "adapter", "float[N, 512]", "logits", "image"):
        assert word in text, word
    if DOT:
        subprocess.run([DOT, "-Tsvg", str(tmp_path / "g.dot")], check=True,
                       stdout=subprocess.DEVNULL)


@pytest.mark.skipif(DOT is None, reason="Graphviz's dot is not installed")
def test_graph_svg_of_an_artifact(run_stitch, late_fusion, tmp_path):
    assert run_stitch("compose", late_fusion, "-o", tmp_path / "out.pt")[0] == 0
    code, stdout, stderr = run_stitch("graph", tmp_path / "out.pt", "-o", tmp_path / "g.svg")
    assert code == 0, stderr
    svg = (tmp_path / "g.svg").read_text()
    assert "<svg" in svg and "float[N, 512]" in svg


def test_graph_of_a_moved_artifact_finds_its_model_files(run_stitch, late_fusion, tmp_path):
    # The stored spec records where the model files were (absolute paths).
    assert run_stitch("compose", late_fusion, "-o", tmp_path / "out.pt")[0] == 0
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(str(tmp_path / "out.pt"), moved / "out.pt")
    code, stdout, stderr = run_stitch("graph", moved / "out.pt", "-o", moved / "g.dot")
    assert code == 0, stderr
    text = (moved / "g.dot").read_text()
    assert "shapes not shown" not in text and "float[N, 512]" in text


def test_graph_of_an_artifact_without_its_model_files(run_stitch, late_fusion, tmp_path):
    """#20: the artifact holds its models, so its shapes need no model file."""
    assert run_stitch("compose", late_fusion, "-o", tmp_path / "out.pt")[0] == 0
    (tmp_path / "resnet18.pt").unlink()
    (tmp_path / "seed004_mockcnn.pt").unlink()
    code, stdout, stderr = run_stitch("graph", tmp_path / "out.pt", "-o", tmp_path / "g.dot")
    assert code == 0, stderr
    text = (tmp_path / "g.dot").read_text()
    assert "shapes not shown" not in text and "float[N, 512]" in text, text
    assert "vision" in text


def test_graph_of_an_optimized_artifact_without_its_model_files(run_stitch, late_fusion,
                                                                tmp_path):
    """--optimize folds the models into the code: without their files, no shapes."""
    out = tmp_path / "opt.pt"
    assert run_stitch("compose", late_fusion, "-o", out, "--optimize")[0] == 0
    (tmp_path / "resnet18.pt").unlink()
    code, stdout, stderr = run_stitch("graph", out, "-o", tmp_path / "g.dot")
    assert code == 0, stderr
    text = (tmp_path / "g.dot").read_text()
    assert "shapes not shown" in text and "resnet18.pt" in text


def test_graph_of_a_plain_model(run_stitch, fixtures_dir, tmp_path):
    code, stdout, stderr = run_stitch("graph", fixtures_dir / "head.pt", "-o", tmp_path / "g.dot")
    assert code == 0, stderr
    assert "head" in (tmp_path / "g.dot").read_text()


def test_graph_without_dot_says_so_and_writes_nothing(stitch_bin, late_fusion, tmp_path):
    env = dict(os.environ, PATH="/nonexistent")
    before = files_in(tmp_path)
    proc = subprocess.run([str(stitch_bin), "graph", str(late_fusion), "-o",
                           str(tmp_path / "g.svg")], env=env, capture_output=True, text=True)
    assert_clean_error(proc.returncode, proc.stdout, proc.stderr)
    assert "dot" in proc.stderr and "graphviz" in proc.stderr.lower()
    assert files_in(tmp_path) == before


def test_graph_rejects_an_unknown_picture_format(run_stitch, late_fusion, tmp_path):
    code, stdout, stderr = run_stitch("graph", late_fusion, "-o", tmp_path / "g.txt")
    assert code == 2, stderr


def test_verify_passes_on_a_fresh_artifact(run_stitch, late_fusion, tmp_path):
    assert run_stitch("compose", late_fusion, "-o", tmp_path / "out.pt")[0] == 0
    code, stdout, stderr = run_stitch("verify", tmp_path / "out.pt", late_fusion)
    assert code == 0, stderr
    assert "logits" in stdout and "ok" in stdout


def test_verify_catches_a_tampered_component_weight(run_stitch, late_fusion, tmp_path):
    out = tmp_path / "out.pt"
    assert run_stitch("compose", late_fusion, "-o", out)[0] == 0
    m = torch.jit.load(str(out))
    with torch.no_grad():
        getattr(m.vision.layer4, "1").conv2.weight.add_(0.05)
    m.save(str(out))
    code, stdout, stderr = run_stitch("verify", out, late_fusion)
    assert_clean_error(code, stdout, stderr)
    assert "output 'logits'" in stderr and "max abs" in stderr and "tolerance" in stderr
    assert ("note: vision's weights in the artifact differ from its file's: 1 of" in stderr and
            "'vision.layer4.1.conv2.weight'" in stderr), stderr


def test_verify_of_an_optimized_artifact(run_stitch, late_fusion, tmp_path):
    out = tmp_path / "opt.pt"
    code, _, stderr = run_stitch("compose", late_fusion, "-o", out, "--optimize")
    assert code == 0, stderr
    code, stdout, stderr = run_stitch("verify", out, late_fusion)
    assert code == 0, stderr
    assert "logits" in stdout and "ok" in stdout
    assert "note: the artifact keeps its weights in its code (compose --optimize)" in stdout


def test_verify_keeps_trained_head_weights(run_stitch, late_fusion, tmp_path):
    """The learned layers come from the artifact: training them is no difference."""
    out = tmp_path / "out.pt"
    assert run_stitch("compose", late_fusion, "-o", out)[0] == 0
    m = torch.jit.load(str(out))
    with torch.no_grad():
        m.logits.weight.mul_(3.0)
    m.save(str(out))
    code, stdout, stderr = run_stitch("verify", out, late_fusion)
    assert code == 0, stderr
