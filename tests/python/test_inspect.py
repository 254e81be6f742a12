"""`stitch inspect` through the real binary: rows, shapes against PyTorch,
--depth, --json, a spec with freeze, errors, and speed on resnet50."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import assert_clean_error


def inspect_json(run_stitch, *args):
    code, stdout, stderr = run_stitch("inspect", *args, "--json")
    assert code == 0, stderr
    return json.loads(stdout)


def rows(report):
    return {r["path"]: r for r in report["modules"]}


def test_rows_match_pytorch_shapes_and_parameters(run_stitch, fixtures_dir):
    model = fixtures_dir / "resnet18.pt"
    report = inspect_json(run_stitch, model, "--input", "x=1x3x96x96")
    by_path = rows(report)
    m = torch.jit.load(str(model)).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        for name, child in m.named_children():
            if name == "fc":
                x = torch.flatten(x, 1)
            x = child(x)
            assert by_path[name]["output"] == f"float{list(x.shape)}", name
            assert by_path[name]["shape"] == list(x.shape), name  # #20: a list, not text
            assert by_path[name]["dtype"] == "float", name
            assert by_path[name]["parameters"] == sum(p.numel() for p in child.parameters())
    assert by_path["layer1.0.conv1"]["type"] == "Conv2d"
    assert report["total"]["parameters"] == sum(p.numel() for p in m.parameters())
    assert report["output"] == "float[1, 1000]"
    assert report["output_shape"] == [1, 1000]
    assert report["inputs"][0]["shape"] == [1, 3, 96, 96]


def test_table_and_depth(run_stitch, fixtures_dir):
    code, stdout, stderr = run_stitch("inspect", fixtures_dir / "resnet18.pt",
                                      "--input", "1x3x64x64", "--depth", "1")
    assert code == 0, stderr
    assert "layer4" in stdout and "layer4.0" not in stdout, stdout
    assert "float[1, 512, 2, 2]" in stdout, stdout
    assert "total parameters: 11,689,512" in stdout, stdout


def test_spec_shows_models_with_freeze_and_nodes(run_stitch, fixtures_dir, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""
        inputs: {{image: [N, 3, 64, 64]}}
        models: {{vision: {{file: {fixtures_dir}/resnet18.pt, cut: avgpool, freeze: [conv1.*]}}}}
        graph:
          - logits = linear(flatten(vision(image)), 5)
        outputs: [logits]
    """))
    report = inspect_json(run_stitch, spec)
    by_path = rows(report)
    assert by_path["vision.conv1"]["training"] == "frozen"
    assert by_path["vision.layer1"]["training"] == "trainable"
    assert by_path["vision"]["output"] == "float[1, 512, 1, 1]"
    assert "vision.fc" not in by_path
    assert report["nodes"][-1]["name"] == "logits"
    assert report["nodes"][-1]["type"] == "float[N, 5]"


def test_spec_with_input_sizes_shows_those_shapes(run_stitch, fixtures_dir, tmp_path):
    """--input on a spec gives its declared inputs sizes: N=2 from
    image=2x3x64x64, and every shape shown is at that size."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""
        inputs: {{image: [N, 3, 64, 64]}}
        models: {{vision: {{file: {fixtures_dir}/resnet18.pt, cut: avgpool}}}}
        graph:
          - logits = linear(flatten(vision(image)), 5)
        outputs: [logits]
    """))
    for given in ["image=2x3x64x64", "2x3x64x64"]:
        report = inspect_json(run_stitch, spec, "--input", given)
        assert rows(report)["vision"]["output"] == "float[2, 512, 1, 1]"
        assert report["nodes"][-1]["type"] == "float[2, 5]"
        assert report["inputs"] == [{"name": "image", "type": "float[2, 3, 64, 64]",
                                     "shape": [2, 3, 64, 64], "dtype": "float"}]
    code, out, err = run_stitch("inspect", spec, "--input", "image=2x3x32x64")
    assert_clean_error(code, out, err)
    assert "declared [N, 3, 64, 64]" in err, err
    code, out, err = run_stitch("inspect", spec, "--input", "text=2x5")
    assert_clean_error(code, out, err)
    assert "its inputs are: image" in err, err


def test_errors(run_stitch, fixtures_dir, tmp_path):
    code, out, err = run_stitch("inspect", fixtures_dir / "corrupt.pt")
    assert_clean_error(code, out, err)
    code, out, err = run_stitch("inspect", fixtures_dir / "resnet18.pt", "--input", "1x5x64x64")
    assert_clean_error(code, out, err)
    code, out, err = run_stitch("inspect", fixtures_dir / "resnet18.pt", "--input", "y=1x3x8x8")
    assert_clean_error(code, out, err)
    assert "its inputs are: x" in err, err


def test_resnet50_at_224_has_every_row(run_stitch, tmp_path):
    # How long this takes is measured by the benchmark (BENCHMARKS.md,
    # "stitch inspect resnet50"), not here.
    path = tmp_path / "resnet50.pt"
    subprocess.run([sys.executable, "-c",
                    "import sys, torch, torchvision; torch.manual_seed(0); "
                    "torch.jit.script(torchvision.models.resnet50(weights=None).eval())"
                    ".save(sys.argv[1])", str(path)], check=True)
    code, out, err = run_stitch("inspect", path, "--input", "1x3x224x224")
    assert code == 0, err
    assert "layer4.2.conv3" in out and "float[1, 2048, 7, 7]" in out
    assert "25,557,032" in out, out


def test_an_artifact_without_input_shows_its_declared_shapes(run_stitch, fixtures_dir, tmp_path):
    """#20: inspect of an artifact showed `-` though its manifest declares the inputs."""
    (tmp_path / "resnet18.pt").write_bytes((fixtures_dir / "resnet18.pt").read_bytes())
    spec = tmp_path / "spec.yaml"
    spec.write_text("inputs:\n  image: [N, 3, 64, 64]\nmodels:\n"
                    "  vision: {file: resnet18.pt, cut: avgpool}\n"
                    "graph:\n  - f = flatten(vision(image))\noutputs: [f]\n")
    assert run_stitch("compose", spec, "-o", tmp_path / "a.pt")[0] == 0
    report = inspect_json(run_stitch, tmp_path / "a.pt")
    assert rows(report)["vision"]["shape"] == [1, 512, 1, 1], report
    assert report["output_shape"] == [1, 512]
    assert "declared inputs" in report["note"]


def test_json_of_check_verify_and_run_gives_shapes_as_lists(run_stitch, fixtures_dir, tmp_path):
    """#20: --json on check, verify and run, with shapes as lists of sizes
    (dynamic dims by name) that match what the artifact computes."""
    import numpy as np
    (tmp_path / "resnet18.pt").write_bytes((fixtures_dir / "resnet18.pt").read_bytes())
    spec = tmp_path / "spec.yaml"
    spec.write_text("inputs:\n  image: [N, 3, 64, 64]\nmodels:\n"
                    "  vision: {file: resnet18.pt, cut: avgpool}\n"
                    "graph:\n  - f = flatten(vision(image))\noutputs: [f]\n")
    code, stdout, err = run_stitch("check", spec, "--json")
    assert code == 0, err
    checked = json.loads(stdout)
    nodes = {n["name"]: n for n in checked["nodes"]}
    assert checked["ok"] is True
    assert nodes["image"]["shape"] == ["N", 3, 64, 64] and nodes["image"]["dtype"] == "float"
    assert nodes["f"]["shape"] == ["N", 512] and nodes["f"]["line"] == 6
    artifact = tmp_path / "a.pt"
    assert run_stitch("compose", spec, "-o", artifact)[0] == 0
    code, stdout, err = run_stitch("verify", artifact, spec, "--json")
    assert code == 0, err
    verified = json.loads(stdout)
    assert verified["ok"] is True and verified["notes"] == []
    assert [(o["name"], o["shape"], o["ok"]) for o in verified["outputs"]] == [("f", [2, 512], True)]
    assert 0 <= verified["outputs"][0]["max_abs_diff"] <= verified["atol"]
    x = torch.randn(3, 3, 64, 64)
    np.save(tmp_path / "x.npy", x.numpy())
    code, stdout, err = run_stitch("run", artifact, "--input", tmp_path / "x.npy",
                                   "-o", tmp_path / "y.npy", "--json")
    assert code == 0, err
    ran = json.loads(stdout)
    assert ran == {"file": str(tmp_path / "y.npy"),
                   "outputs": [{"name": "f", "shape": [3, 512], "dtype": "float"}]}
    expected = torch.jit.load(str(artifact))(x)  # one output: the tensor itself
    assert torch.allclose(torch.from_numpy(np.load(tmp_path / "y.npy")), expected, atol=1e-5)


def test_archive_lists_code_and_tensors_without_running_the_model(run_stitch, fixtures_dir):
    """#21: --archive reads the zip entries: every code file with its
    classes, and the tensors, as Python's zipfile sees them."""
    import zipfile
    model = fixtures_dir / "resnet18.pt"
    code, stdout, err = run_stitch("inspect", model, "--archive", "--json")
    assert code == 0, err
    report = json.loads(stdout)
    with zipfile.ZipFile(model) as z:
        names = z.namelist()
        code_files = sorted(n.split("/", 1)[1] for n in names if "/code/" in n and n.endswith(".py"))
        tensors = [i for i in z.infolist() if "/data/" in i.filename]
        version = z.read(next(n for n in names if n.endswith("/version"))).decode().strip()
    assert [c["name"] for c in report["code"]] == code_files
    assert report["tensors"] == len(tensors)
    assert report["tensor_bytes"] == sum(i.file_size for i in tensors)
    assert report["version"] == version and report["artifact"] is False
    outline = [e for c in report["code"] for e in c["outline"]]
    assert "class ResNet" in outline and "  def forward" in outline
    assert all(c["file_operator"] is None for c in report["code"])
    code, stdout, err = run_stitch("inspect", model, "--archive")
    assert code == 0, err
    assert "read without running any of its code" in stdout and "class ResNet" in stdout
    code, out, err = run_stitch("inspect", fixtures_dir / "corrupt.pt", "--archive")
    assert_clean_error(code, out, err)
    assert "not a TorchScript archive" in err
