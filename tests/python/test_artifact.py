"""The saved artifact: one TorchScript file, readable by torch.jit.load, with
stitch/spec.yaml and stitch/manifest.json inside; several copies of the same
architecture in one file; several outputs as a dict."""

import hashlib
import json
import shutil

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from conftest import artifact_tensors, copy_params

ATOL = 1e-5

TWO_RESNETS = """\
# two resnet18 files: same TorchScript class names, different weights
inputs:
  image: [N, 3, 224, 224]
models:
  a: {file: resnet18.pt}
  b: {file: resnet18_b.pt}
graph:
  - y = concat(a(image), b(image), dim=1)
outputs: [y]
"""

TWO_OUTPUTS = """\
inputs:
  x: [N, 10]
models:
  m1: {file: seed000_ex1_model1.pt}
  m2: {file: seed000_ex1_model2.pt}
graph:
  - hidden = m1(x)
  - logits = m2(hidden)
outputs: [hidden, logits]
"""

RESNET_HEAD = """\
# resnet18 cut at avgpool, frozen, with the head file on top
inputs:
  image: [N, 3, 224, 224]
models:
  vision: {file: resnet18.pt, cut: avgpool, freeze: true}
  head: {file: head.pt}
graph:
  - logits = head(vision(image))
outputs: [logits]
"""

MOBILENET_NEW_HEAD = """\
# mobilenet_v3_small's convolutional features, global average pool, new linear head
inputs:
  image: [N, 3, 224, 224]
models:
  mnet: {file: mobilenet_v3_small.pt, cut: features}
graph:
  - feats = pool(mnet(image), "avg")
  - logits = linear(feats, 5)
outputs: [logits]
"""


@pytest.fixture(scope="module")
def compose_spec(tmp_path_factory, run_stitch, fixtures_dir):
    """compose_spec(key, text) -> (folder, artifact path); composed once per module."""
    cache = {}

    def compose(key, text):
        if key not in cache:
            work = tmp_path_factory.mktemp(key)
            spec = yaml.safe_load(text)
            for model in spec.get("models", {}).values():
                shutil.copyfile(fixtures_dir / model["file"], work / model["file"])
            (work / "spec.yaml").write_text(text)
            out = work / "out.pt"
            code, stdout, stderr = run_stitch("compose", work / "spec.yaml", "-o", out)
            cache[key] = (work, out, code, stdout, stderr)
        work, out, code, stdout, stderr = cache[key]
        assert code == 0, f"compose failed ({code}):\n{stdout}\n{stderr}"
        return work, out
    return compose


def _metadata(path):
    extra = {"stitch/spec.yaml": "", "stitch/manifest.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    text = {k: v.decode() if isinstance(v, bytes) else v for k, v in extra.items()}
    return module, text["stitch/spec.yaml"], text["stitch/manifest.json"]


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_metadata_files(compose_spec):
    work, out = compose_spec("two_outputs", TWO_OUTPUTS)
    _, spec_text, manifest_text = _metadata(out)
    assert spec_text, "stitch/spec.yaml is missing or empty"
    assert manifest_text, "stitch/manifest.json is missing or empty"

    spec = yaml.safe_load(spec_text)
    assert list(spec["inputs"]) == ["x"]
    assert set(spec["models"]) == {"m1", "m2"}
    assert spec["outputs"] == ["hidden", "logits"]
    # "The spec as resolved": each model's file is where it was loaded from.
    for name, file in [("m1", "seed000_ex1_model1.pt"), ("m2", "seed000_ex1_model2.pt")]:
        assert spec["models"][name]["file"] == str((work / file).resolve())

    manifest = json.loads(manifest_text)
    assert isinstance(manifest["stitch_version"], str) and manifest["stitch_version"]
    components = {c["name"]: c for c in manifest["components"]}
    assert set(components) == {"m1", "m2"}
    for name, file in [("m1", "seed000_ex1_model1.pt"), ("m2", "seed000_ex1_model2.pt")]:
        assert components[name]["file"] == file
        assert components[name]["sha256"] == _sha256(work / file)
    assert manifest["inputs"] == [{"name": "x", "shape": ["N", 10], "dtype": "float"}]
    outputs = {o["name"]: o for o in manifest["outputs"]}
    assert [o["name"] for o in manifest["outputs"]] == ["hidden", "logits"]
    assert outputs["hidden"]["shape"] == ["N", 5]
    assert outputs["logits"]["shape"] == ["N", 2]
    assert all(o["dtype"] == "float" for o in outputs.values())


def test_two_outputs_return_a_dict(compose_spec, fixtures_dir):
    _, out = compose_spec("two_outputs", TWO_OUTPUTS)
    art = torch.jit.load(str(out))
    m1 = torch.jit.load(str(fixtures_dir / "seed000_ex1_model1.pt"))
    m2 = torch.jit.load(str(fixtures_dir / "seed000_ex1_model2.pt"))
    with torch.no_grad():
        for batch in (1, 3):
            x = torch.randn(batch, 10)
            got = art(x)
            assert isinstance(got, dict), type(got)
            assert set(got) == {"hidden", "logits"}
            assert torch.allclose(got["hidden"], m1(x), atol=ATOL)
            assert torch.allclose(got["logits"], m2(m1(x)), atol=ATOL)


def test_run_with_two_outputs_writes_a_dict(run_stitch, compose_spec, tmp_path):
    _, out = compose_spec("two_outputs", TWO_OUTPUTS)
    art = torch.jit.load(str(out))
    x = torch.randn(2, 10)
    torch.save(x, tmp_path / "x.pt")
    code, stdout, stderr = run_stitch("run", out, "--input", f"x={tmp_path / 'x.pt'}",
                                      "-o", tmp_path / "y.pt")
    assert code == 0, stderr
    y = torch.load(str(tmp_path / "y.pt"))
    assert isinstance(y, dict) and set(y) == {"hidden", "logits"}, y
    with torch.no_grad():
        want = art(x)
    for k in y:
        assert torch.allclose(y[k], want[k], atol=ATOL)


def test_run_in_batches_shows_progress_and_keys_one_output_by_its_name(run_stitch, fixtures_dir,
                                                                      tmp_path):
    chain = tmp_path / "chain.pt"
    code, _, err = run_stitch("chain", fixtures_dir / "seed000_ex1_model1.pt",
                              fixtures_dir / "seed000_ex1_model2.pt", "--input", "1x10",
                              "-o", chain)
    assert code == 0, err
    x = torch.randn(30, 10)
    torch.save(x, tmp_path / "x.pt")
    code, stdout, stderr = run_stitch("run", chain, "--input", tmp_path / "x.pt",
                                      "-o", tmp_path / "y.safetensors", "--batch", "3")
    assert code == 0, stderr
    # Not a terminal: plain lines, about ten of them, the last one complete.
    lines = stderr.splitlines()
    assert lines[-1] == "batch 10/10 (30 of 30 samples)", stderr
    assert 1 < len(lines) <= 10, stderr
    raw = (tmp_path / "y.safetensors").read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    header.pop("__metadata__", None)
    assert list(header) == ["y"], header  # chain's output is named y
    begin, end = header["y"]["data_offsets"]
    y = torch.frombuffer(bytearray(raw[8 + size + begin:8 + size + end]),
                         dtype=torch.float32).reshape(header["y"]["shape"])
    with torch.no_grad():
        assert torch.allclose(y, torch.jit.load(str(chain))(x), atol=ATOL)


def test_two_resnets_with_the_same_class_names(compose_spec, fixtures_dir):
    work, out = compose_spec("two_resnets", TWO_RESNETS)
    art, _, manifest_text = _metadata(out)
    a = torch.jit.load(str(fixtures_dir / "resnet18.pt")).eval()
    b = torch.jit.load(str(fixtures_dir / "resnet18_b.pt")).eval()
    with torch.no_grad():
        for batch in (1, 2):
            x = torch.randn(batch, 3, 224, 224)
            want = torch.cat((a(x), b(x)), dim=1)
            got = art(x)
            assert got.shape == (batch, 2000)
            assert torch.allclose(got, want, atol=ATOL), (got - want).abs().max()
    # the two copies keep their own weights
    params = artifact_tensors(art)
    assert not torch.equal(params["a.conv1.weight"], params["b.conv1.weight"])
    manifest = json.loads(manifest_text)
    shas = {c["name"]: c["sha256"] for c in manifest["components"]}
    assert shas == {"a": _sha256(work / "resnet18.pt"), "b": _sha256(work / "resnet18_b.pt")}


def test_resnet_cut_at_avgpool_with_head(compose_spec, fixtures_dir):
    _, out = compose_spec("resnet_head", RESNET_HEAD)
    art = torch.jit.load(str(out))
    r = torch.jit.load(str(fixtures_dir / "resnet18.pt")).eval()
    head = torch.jit.load(str(fixtures_dir / "head.pt")).eval()
    trunk = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2,
                          r.layer3, r.layer4, r.avgpool)
    with torch.no_grad():
        for batch in (1, 2):
            x = torch.randn(batch, 3, 224, 224)
            assert torch.allclose(art(x), head(trunk(x)), atol=ATOL)
    names = set(artifact_tensors(art))
    assert not any(n.startswith("vision.fc.") for n in names), (
        "parameters a cut model no longer uses are dropped")


def test_mobilenet_features_with_new_head(compose_spec, fixtures_dir):
    _, out = compose_spec("mobilenet_head", MOBILENET_NEW_HEAD)
    art = torch.jit.load(str(out))
    mnet = torch.jit.load(str(fixtures_dir / "mobilenet_v3_small.pt")).eval()
    linear = nn.Linear(576, 5)
    copy_params(linear, artifact_tensors(art), "logits")
    with torch.no_grad():
        for batch in (1, 2):
            x = torch.randn(batch, 3, 224, 224)
            want = linear(torch.flatten(F.adaptive_avg_pool2d(mnet.features(x), 1), 1))
            assert torch.allclose(art(x), want, atol=ATOL)
