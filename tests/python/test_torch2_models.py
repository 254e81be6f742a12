"""Models saved by a real PyTorch 2.6 (Debian 13's, tests/fixtures/make_torch2_models.py):
torchvision 0.21's ViT and Swin, torchaudio 2.6's wav2vec2 and HuBERT,
nn.TransformerEncoder/Decoder with causal masks, and a module calling
scaled_dot_product_attention with every argument. stitch runs, composes,
cuts, taps and trains them, and the numbers equal those PyTorch 2.6 computes;
PyTorch 2.6 runs stitch's artifacts with the same numbers.

On LibTorch 1.13 every model with attention goes through stitch's
compatibility operator aten::scaled_dot_product_attention
(docs/compatibility.md); on 2.6 through LibTorch's own.
"""

import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import assert_clean_error, run_torch2, torch_major

# PyTorch 2.6 computes attention on the CPU with its flash kernel, stitch on
# 1.13 with the reference (math) formula: equal to float32 rounding.
ATOL = 1e-5

RUN_MODELS = ["vit_b_16", "vit_small", "swin_t", "wav2vec2_base", "hubert_base",
              "wav2vec2_small", "encoder_causal", "decoder_causal", "sdpa_every_argument",
              "mha_traced"]


@pytest.fixture(scope="module")
def models(torch2_models):
    return json.loads((torch2_models / "torch2_models.json").read_text())["models"]


def first_tensor(value):
    return value[0] if isinstance(value, (list, tuple)) else value


def write_spec(folder, spec):
    path = Path(folder) / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.parametrize("name", RUN_MODELS)
def test_stitch_run_gives_pytorch_26s_numbers(name, models, torch2_models, run_stitch, tmp_path):
    entry = models[name]
    inputs = []
    for arg, file in zip(entry["args"], entry["inputs"]):
        inputs += ["--input", f"{arg}={torch2_models / file}"]
    code, _, err = run_stitch("run", torch2_models / entry["file"], *inputs, "-o",
                              tmp_path / "y.pt")
    assert code == 0, err
    got = torch.load(tmp_path / "y.pt")
    got = got if isinstance(got, torch.Tensor) else got.get("0", got.get("output"))
    expected = first_tensor(torch.load(torch2_models / entry["output"]))
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=ATOL), (got - expected).abs().max()


def test_inspect_names_the_compatibility_operator(models, torch2_models, run_stitch):
    code, out, err = run_stitch("inspect", torch2_models / models["vit_small"]["file"])
    assert code == 0, err
    if torch_major() < 2:
        assert "compatibility operators: aten::scaled_dot_product_attention" in out
    else:
        assert "compatibility operators" not in out
    code, out, err = run_stitch("inspect", torch2_models / models["swin_t"]["file"])
    assert code == 0, err
    assert "compatibility operators" not in out  # swin computes its attention by hand


@pytest.fixture(scope="module")
def vit_artifact(models, torch2_models, run_stitch, tmp_path_factory):
    """vit_small cut at its last encoder block and tapped at the third,
    composed into one artifact."""
    folder = tmp_path_factory.mktemp("vit")
    spec = write_spec(folder, {
        "inputs": {"image": ["N", 3, 32, 32]},
        "models": {
            "vit": {"file": str(torch2_models / "vit_small.pt"),
                    "cut": "encoder.layers.encoder_layer_5"},
            "early": {"file": str(torch2_models / "vit_small.pt"),
                      "taps": ["encoder.layers.encoder_layer_2"]},
        },
        "graph": ["tokens = vit(image)", "taps = early(image)",
                  "mid = taps[\"encoder.layers.encoder_layer_2\"]"],
        "outputs": ["tokens", "mid"],
    })
    code, out, err = run_stitch("check", spec)
    assert code == 0, err
    assert "float[N, 17, 64]" in out
    code, _, err = run_stitch("compose", spec, "-o", folder / "vit.pt")
    assert code == 0, err
    return folder / "vit.pt"


def test_a_cut_and_a_tap_of_a_26_vit_equal_torchvisions_feature_extractor(
        vit_artifact, torch2_models, run_stitch, tmp_path):
    image = torch2_models / "vit_small.in0.pt"
    code, _, err = run_stitch("run", vit_artifact, "--input", f"image={image}", "-o",
                              tmp_path / "y.pt")
    assert code == 0, err
    got = torch.load(tmp_path / "y.pt")
    features = torch.load(torch2_models / "vit_small.features.pt")
    assert torch.allclose(got["tokens"], features["encoder.layers.encoder_layer_5"], atol=ATOL)
    assert torch.allclose(got["mid"], features["encoder.layers.encoder_layer_2"], atol=ATOL)


def test_a_cut_inside_26_wav2vec2s_transformer_equals_the_layers_run_by_hand(
        torch2_models, run_stitch, tmp_path):
    """torchaudio 2.6's layers return (x, position_bias), unpacked inside
    the layer-drop branch: the cut returns that pair."""
    spec = write_spec(tmp_path, {
        "inputs": {"audio": ["N", 1600]},
        "models": {"mid": {"file": str(torch2_models / "wav2vec2_small.pt"),
                           "cut": "encoder.transformer.layers.1"}},
        "graph": ["hidden = mid(audio)[0]"],
        "outputs": ["hidden"],
    })
    code, _, err = run_stitch("compose", spec, "-o", tmp_path / "mid.pt")
    assert code == 0, err
    code, _, err = run_stitch("run", tmp_path / "mid.pt", "--input",
                              f"audio={torch2_models / 'wav2vec2_small.in0.pt'}", "-o",
                              tmp_path / "y.pt")
    assert code == 0, err
    got = torch.load(tmp_path / "y.pt")
    expected = torch.load(torch2_models / "wav2vec2_small.layer1.pt")
    assert torch.allclose(got, expected, atol=ATOL), (got - expected).abs().max()


CHECK_IN_TORCH2 = """
import json, sys, torch
artifact, image, features = sys.argv[1:4]
m = torch.jit.load(artifact)
y = m(torch.load(image))
f = torch.load(features)
print(json.dumps({
    "torch": torch.__version__,
    "tokens": (y["tokens"] - f["encoder.layers.encoder_layer_5"]).abs().max().item(),
    "mid": (y["mid"] - f["encoder.layers.encoder_layer_2"]).abs().max().item()}))
"""


def test_pytorch_26_runs_the_artifact_with_the_same_numbers(vit_artifact, torch2_models,
                                                            tmp_path):
    script = tmp_path / "check.py"
    script.write_text(CHECK_IN_TORCH2)
    result = json.loads(run_torch2(script, vit_artifact, torch2_models / "vit_small.in0.pt",
                                   torch2_models / "vit_small.features.pt").splitlines()[-1])
    assert result["torch"].startswith("2.")
    assert result["tokens"] <= ATOL and result["mid"] <= ATOL, result


def test_the_manifest_records_the_libtorch_and_the_compatibility_operators(vit_artifact):
    manifest = json.loads(read_extra(vit_artifact, "stitch/manifest.json"))
    assert manifest["libtorch_version"].split(".")[:2] == torch.__version__.split(".")[:2]
    expected = ["aten::scaled_dot_product_attention"] if torch_major() < 2 else []
    assert manifest["compat_operators"] == expected


def read_extra(artifact, name):
    import zipfile
    with zipfile.ZipFile(artifact) as z:
        entry = next(n for n in z.namelist() if n.endswith("/extra/" + name))
        return z.read(entry).decode()


def test_python_113_loads_26_models_with_libstitch_compat(models, torch2_models, compat_library):
    """A program without stitch loads the 2.x models on LibTorch 1.13 by
    loading libstitch_compat.so (docs/compatibility.md)."""
    for name in ["vit_small", "encoder_causal", "sdpa_every_argument"]:
        entry = models[name]
        m = torch.jit.load(str(torch2_models / entry["file"]))
        inputs = [torch.load(torch2_models / f) for f in entry["inputs"]]
        with torch.no_grad():
            got = first_tensor(m(*inputs))
        expected = first_tensor(torch.load(torch2_models / entry["output"]))
        assert torch.allclose(got, expected, atol=ATOL), name


TRAIN_IN_TORCH2 = """
import sys, torch, torch.nn.functional as F
torch._C._jit_set_texpr_fuser_enabled(False)  # 2.6 hangs training with it (conftest.py)
initial, data_file, out = sys.argv[1:4]
m = torch.jit.load(initial).train()
data = torch.load(data_file)
opt = torch.optim.SGD(m.parameters(), lr=0.05)
for start in range(0, 16, 8):
    s = slice(start, start + 8)
    y = m(data["image"][s])
    loss = F.cross_entropy(y["logits"] if isinstance(y, dict) else y, data["labels"][s])
    opt.zero_grad()
    loss.backward()
    opt.step()
torch.save({k: v.detach() for k, v in m.state_dict().items()}, out)
"""


def test_training_through_26_attention_steps_as_pytorch_26(torch2_models, compat_library,
                                                           run_stitch, tmp_path):
    """Two SGD steps through vit_small's attention (in training mode,
    nn.MultiheadAttention calls scaled_dot_product_attention: forward and
    backward) end where PyTorch 2.6's own loop takes the same weights."""
    g = torch.Generator().manual_seed(5)
    torch.save({"image": torch.randn(16, 3, 32, 32, generator=g),
                "labels": torch.randint(0, 10, (16,), generator=g)}, tmp_path / "data.pt")
    spec = write_spec(tmp_path, {
        "inputs": {"image": ["N", 3, 32, 32]},
        "models": {"vit": {"file": str(torch2_models / "vit_small.pt")}},
        "graph": ["logits = vit(image)"],
        "outputs": ["logits"],
        "train": {"data": "data.pt", "loss": "cross_entropy(logits, labels)",
                  "optimizer": "sgd", "lr": 0.05, "epochs": 1, "batch": 8,
                  "shuffle": False, "out": "run"},
    })
    code, _, err = run_stitch("compose", spec, "-o", tmp_path / "init.pt")
    assert code == 0, err
    code, _, err = run_stitch("train", spec)
    assert code == 0, err
    script = tmp_path / "train.py"
    script.write_text(TRAIN_IN_TORCH2)
    run_torch2(script, tmp_path / "init.pt", tmp_path / "data.pt", tmp_path / "expected.pt")
    expected = torch.load(tmp_path / "expected.pt")
    trained = state_of(tmp_path / "run" / "model.pt")
    initial = state_of(tmp_path / "init.pt")
    assert set(trained) == set(expected)
    moved = 0
    for name, value in expected.items():
        assert torch.allclose(trained[name], value, atol=ATOL), name
        moved += not torch.equal(initial[name], value)
    assert moved > 10, "the step changed almost nothing"


def state_of(artifact):
    m = torch.jit.load(str(artifact))
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_a_pt2_program_is_named_with_a_recipe(torch2_models, run_stitch, tmp_path):
    code, _, err = run_stitch("inspect", torch2_models / "program.pt2")
    assert_clean_error(code, "", err)
    assert "it is a torch.export program (.pt2)" in err
    assert "torch.jit.script(model).save" in err
    assert "inline_container" not in err and "serialized_exported_program" not in err
