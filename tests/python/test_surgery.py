"""Model surgery on real architectures through the real binary: cut, taps and
after on torchvision resnet18, mobilenet_v3_small, vit_b_16, fcn_resnet50 and
torchaudio wav2vec2_base, each compared with PyTorch doing the same by hand
(nn.Sequential(*children[:k]), create_feature_extractor, calling the children
in order); the errors; seed 002 strategy 2 (mid-network fusion).

The big models (vit_b_16, fcn_resnet50, wav2vec2_base) are exported once per
session by `big_models`, not by make_fixtures.py, to keep the build fast.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

from conftest import assert_clean_error, copy_example_to

ATOL = 1e-4

_EXPORT = textwrap.dedent("""
    import sys, torch, torchvision, torchaudio
    from torchvision.models.segmentation import fcn_resnet50
    out = sys.argv[1]
    torch.set_num_threads(2)
    makers = {
        "vit_b_16": lambda: torchvision.models.vit_b_16(weights=None),
        # vit_b_16's own class and code paths, small enough for every run
        "vit_small": lambda: torchvision.models.vision_transformer.VisionTransformer(
            image_size=64, patch_size=16, num_layers=6, num_heads=4, hidden_dim=96,
            mlp_dim=192),
        "fcn_resnet50": lambda: fcn_resnet50(weights=None, weights_backbone=None,
                                             num_classes=21, aux_loss=False),
        "wav2vec2_base": lambda: torchaudio.models.wav2vec2_base(),
    }
    for i, (name, make) in enumerate(makers.items()):
        if name not in sys.argv[2:]:
            continue
        torch.manual_seed(100 + i)
        m = make().eval()
        torch.jit.script(m).save(f"{out}/{name}.pt")
""")


@pytest.fixture(scope="session")
def big_models(tmp_path_factory):
    out = tmp_path_factory.mktemp("big_models")
    names = ["fcn_resnet50", "wav2vec2_base", "vit_small"]
    if os.environ.get("STITCH_SLOW_TESTS"):
        names.append("vit_b_16")  # big and slow: only when its test runs
    subprocess.run([sys.executable, "-c", _EXPORT, str(out), *names], check=True)
    return out


def load(path):
    m = torch.jit.load(str(path))
    m.eval()
    return m


def compose(run_stitch, tmp_path, spec_text, name="spec.yaml"):
    spec = tmp_path / name
    spec.write_text(textwrap.dedent(spec_text))
    out = tmp_path / "out.pt"
    code, stdout, stderr = run_stitch("compose", spec, "-o", out)
    assert code == 0, f"compose failed ({code}):\n{stdout}\n{stderr}"
    return load(out)


def refused(run_stitch, tmp_path, spec_text):
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(spec_text))
    code, stdout, stderr = run_stitch("check", spec)
    assert_clean_error(code, stdout, stderr)
    return stderr


def close(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=ATOL), (a - b).abs().max().item()


def eager_resnet18(scripted):
    m = torchvision.models.resnet18(weights=None)
    m.load_state_dict(scripted.state_dict())
    return m.eval()


# --- resnet18, mobilenet_v3_small (make_fixtures.py) --------------------------

def test_cut_resnet_equals_sequential_of_children(run_stitch, fixtures_dir, tmp_path):
    model = compose(run_stitch, tmp_path, f"""
        inputs: {{image: [N, 3, 64, 64]}}
        models: {{r: {{file: {fixtures_dir}/resnet18.pt, cut: layer3}}}}
        graph:
          - y = r(image)
        outputs: [y]
    """)
    r = load(fixtures_dir / "resnet18.pt")
    by_hand = nn.Sequential(*list(r.children())[:7])  # conv1 ... layer3
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        close(model(x), by_hand(x))


def test_taps_equal_create_feature_extractor(run_stitch, fixtures_dir, tmp_path):
    model = compose(run_stitch, tmp_path, f"""
        inputs: {{image: [N, 3, 64, 64]}}
        models: {{r: {{file: {fixtures_dir}/resnet18.pt, taps: [layer2, layer3.1.bn2, layer4]}}}}
        graph:
          - f = r(image)
          - a = f["layer2"]
          - b = f["layer3.1.bn2"]
          - c = f["layer4"]
        outputs: [a, b, c]
    """)
    eager = eager_resnet18(load(fixtures_dir / "resnet18.pt"))
    nodes = {"layer2": "a", "layer3.1.bn2": "b", "layer4": "c"}
    by_hand = create_feature_extractor(eager, return_nodes=nodes)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got, want = model(x), by_hand(x)
    for key in nodes.values():
        close(got[key], want[key])


def test_mobilenet_cut_and_after_recompose_the_model(run_stitch, fixtures_dir, tmp_path):
    model = compose(run_stitch, tmp_path, f"""
        inputs: {{image: [N, 3, 96, 96]}}
        models:
          low:  {{file: {fixtures_dir}/mobilenet_v3_small.pt, cut: features.6}}
          high: {{file: {fixtures_dir}/mobilenet_v3_small.pt, after: features.6}}
        graph:
          - mid = low(image)
          - y = high(mid)
        outputs: [mid, y]
    """)
    m = load(fixtures_dir / "mobilenet_v3_small.pt")
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        got = model(x)
        close(got["mid"], nn.Sequential(*list(m.features.children())[:7])(x))
        close(got["y"], m(x))


def test_head_swap_on_resnet(run_stitch, fixtures_dir, tmp_path):
    """seed 004's WrappedCNN on resnet18: features up to avgpool, a new head."""
    model = compose(run_stitch, tmp_path, f"""
        inputs: {{image: [N, 3, 64, 64]}}
        models: {{backbone: {{file: {fixtures_dir}/resnet18.pt, cut: avgpool, freeze: true}}}}
        graph:
          - logits = linear(flatten(backbone(image)), 7)
        outputs: [logits]
    """)
    r = load(fixtures_dir / "resnet18.pt")
    params = dict(model.named_parameters())
    head = nn.Linear(512, 7)
    with torch.no_grad():
        head.weight.copy_(params["logits.weight"])
        head.bias.copy_(params["logits.bias"])
    by_hand = nn.Sequential(*list(r.children())[:-1], nn.Flatten(), head)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        close(model(x), by_hand(x))
    assert not params["backbone.conv1.weight"].requires_grad
    assert "backbone.fc.weight" not in params


# --- errors -------------------------------------------------------------------

def test_unknown_path_suggests_nearest_and_inspect(run_stitch, fixtures_dir, tmp_path):
    err = refused(run_stitch, tmp_path, f"""
        inputs: {{image: [N, 3, 64, 64]}}
        models: {{r: {{file: {fixtures_dir}/resnet18.pt, cut: layer3.7}}}}
        graph:
          - y = r(image)
        outputs: [y]
    """)
    assert "has no layer 'layer3.7'" in err and "layer3's children: 0, 1" in err, err
    assert "stitch inspect resnet18.pt" in err, err


def test_path_to_a_parameter_is_refused(run_stitch, fixtures_dir, tmp_path):
    err = refused(run_stitch, tmp_path, f"""
        inputs: {{image: [N, 3, 64, 64]}}
        models: {{r: {{file: {fixtures_dir}/resnet18.pt, taps: [fc.weight]}}}}
        graph:
          - y = r(image)["fc.weight"]
        outputs: [y]
    """)
    assert "'fc.weight' is a parameter, not a layer" in err, err


def test_skip_connection_across_the_split_is_refused(run_stitch, fixtures_dir, tmp_path):
    err = refused(run_stitch, tmp_path, f"""
        inputs: {{x: [N, 128, 8, 8]}}
        models: {{r: {{file: {fixtures_dir}/resnet18.pt, after: layer2.1.conv2}}}}
        graph:
          - y = r(x)
        outputs: [y]
    """)
    # The values are named as in the model's code (input0, not %input0.3),
    # with the layer that computes each.
    assert "a skip connection across the cut" in err, err
    assert "also uses input0 (the output of layer2.0), computed before it" in err, err


def test_a_skip_connection_error_names_only_the_values_that_cross(run_stitch, fixtures_dir,
                                                                   tmp_path):
    """Only layer2.0's input (x4, layer1's output) crosses a split at
    layer2.0.conv2; the values it was computed from do not."""
    err = refused(run_stitch, tmp_path, f"""
        inputs: {{x: [N, 128, 8, 8]}}
        models: {{r: {{file: {fixtures_dir}/resnet18.pt, after: layer2.0.conv2}}}}
        graph:
          - y = r(x)
        outputs: [y]
    """)
    assert "also uses x4 (the output of layer1), computed before it" in err, err
    assert "x0" not in err and "x3" not in err, err


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)

    def forward(self, x):
        return self.b(self.a(x)) + x


def test_check_says_the_rest_after_a_layer_takes_the_models_input(run_stitch, tmp_path):
    """The part after `a` still adds the input x: check's note says it takes
    x as a further argument, and the split model equals the whole."""
    torch.jit.script(Residual().eval()).save(str(tmp_path / "res.pt"))
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent("""
        inputs: {x: [N, 8]}
        models:
          lo: {file: res.pt, cut: a}
          hi: {file: res.pt, after: a}
        graph:
          - h = lo(x)
          - y = hi(h, x)
        outputs: [y]
    """))
    code, out, err = run_stitch("check", spec)
    assert code == 0, err
    assert "res.pt, after a; also takes x (the model's own input)" in out, out
    model = compose(run_stitch, tmp_path, spec.read_text(), name="ok.yaml")
    x = torch.randn(3, 8)
    with torch.no_grad():
        close(model(x), load(tmp_path / "res.pt")(x))


# --- big architectures ----------------------------------------------------------

def test_fcn_after_takes_the_input_for_its_final_resize(run_stitch, big_models, tmp_path):
    fcn = big_models / "fcn_resnet50.pt"
    # One argument is not enough: the rest resizes to the input's size.
    err = refused(run_stitch, tmp_path, f"""
        inputs: {{image: [N, 3, 64, 64]}}
        models:
          low:  {{file: {fcn}, cut: backbone.layer3}}
          high: {{file: {fcn}, after: backbone.layer3}}
        graph:
          - y = high(low(image))["out"]
        outputs: [y]
    """)
    assert "takes 2 arguments (features, x), got 1" in err, err
    model = compose(run_stitch, tmp_path, f"""
        inputs: {{image: [N, 3, 64, 64]}}
        models:
          low:  {{file: {fcn}, cut: backbone.layer3}}
          high: {{file: {fcn}, after: backbone.layer3}}
        graph:
          - y = high(low(image), image)["out"]
        outputs: [y]
    """, name="ok.yaml")
    m = load(fcn)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        close(model(x), m(x)["out"])
        # the cut part is the backbone's children in order, up to layer3
        code, out, err = run_stitch("check", tmp_path / "ok.yaml")
        assert code == 0 and "float[N, 1024, 8, 8]" in out, out + err


VITS = [
    pytest.param("vit_small", 64, 6, id="vit_small"),
    pytest.param("vit_b_16", 224, 12, id="vit_b_16", marks=pytest.mark.skipif(
        not os.environ.get("STITCH_SLOW_TESTS"),
        reason="vit_b_16 at 224x224 takes ~40 s here; set STITCH_SLOW_TESTS=1")),
]


def vit_encoder_by_hand(vit, x, layers):
    """The encoder's layer outputs, calling vit's children in order."""
    h = vit._process_input(x)
    h = torch.cat([vit.class_token.expand(h.shape[0], -1, -1), h], dim=1)
    h = vit.encoder.dropout(h + vit.encoder.pos_embedding)
    outs = []
    for i in range(layers):
        h = getattr(vit.encoder.layers, f"encoder_layer_{i}")(h)
        outs.append(h)
    return outs


@pytest.mark.parametrize("name,size,layers", VITS)
def test_vit_taps_and_cut_equal_the_encoder_run_by_hand(run_stitch, big_models, tmp_path,
                                                        name, size, layers):
    path = big_models / f"{name}.pt"
    model = compose(run_stitch, tmp_path, f"""
        inputs: {{image: [N, 3, {size}, {size}]}}
        models:
          vit: {{file: {path}, taps: [encoder.layers.encoder_layer_3, encoder.ln]}}
          upto3: {{file: {path}, cut: encoder.layers.encoder_layer_3}}
        graph:
          - f = vit(image)
          - mid = f["encoder.layers.encoder_layer_3"]
          - last = f["encoder.ln"]
          - cut = upto3(image)
        outputs: [mid, last, cut]
    """)
    vit = load(path)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        got = model(x)
        hs = vit_encoder_by_hand(vit, x, layers)
        close(got["mid"], hs[3])
        close(got["cut"], hs[3])
        close(got["last"], vit.encoder.ln(hs[-1]))
    # layers 4 and up are not in the cut model any more
    kept = {n for n, _ in model.upto3.named_modules()}
    assert "encoder.layers.encoder_layer_3" in kept and "encoder.layers.encoder_layer_4" not in kept
    assert "heads" not in kept


# torchaudio 2.x's transformer layers return (x, position_bias), 0.x's x.
LAYERS_RETURN_TUPLES = "position_bias" in __import__("inspect").signature(
    __import__("torchaudio").models.wav2vec2.components.EncoderLayer.forward).parameters


def test_wav2vec2_cut_inside_the_transformer(run_stitch, big_models, tmp_path):
    w2v = big_models / "wav2vec2_base.pt"
    model = compose(run_stitch, tmp_path, f"""
        inputs: {{audio: [N, 8000]}}
        models:
          fe:  {{file: {w2v}, cut: feature_extractor}}
          mid: {{file: {w2v}, cut: encoder.transformer.layers.3}}
        graph:
          - conv = fe(audio)[0]
          - hidden = mid(audio){{first}}
        outputs: [conv, hidden]
    """.replace("{first}", "[0]" if LAYERS_RETURN_TUPLES else ""))
    m = load(w2v)
    x = torch.randn(2, 8000)
    with torch.no_grad():
        got = model(x)
        feats, lengths = m.feature_extractor(x, None)
        close(got["conv"], feats)
        h, mask = m.encoder._preprocess(feats, lengths)
        h = m.encoder.transformer._preprocess(h)
        bias = None
        for i in range(4):
            layer = getattr(m.encoder.transformer.layers, str(i))
            if LAYERS_RETURN_TUPLES:
                h, bias = layer(h, mask, position_bias=bias)
            else:
                h = layer(h, mask)
        close(got["hidden"], h)


# --- layers inside branches -----------------------------------------------------

class DataBranch(nn.Module):
    """A branch on the data: which layer runs depends on the input."""

    def __init__(self):
        super().__init__()
        self.pre = nn.Linear(4, 4)
        self.pos = nn.Linear(4, 3)
        self.neg = nn.Linear(4, 3)
        self.post = nn.Linear(3, 2)

    def forward(self, x):
        h = self.pre(x)
        if bool(h.sum() > 0):
            y = self.pos(h)
        else:
            y = self.neg(h)
        return self.post(y)


class ModeBranch(nn.Module):
    """A branch on the mode, as layer drop is: in eval mode `kept` always runs
    and `skipped` never does."""

    def __init__(self):
        super().__init__()
        self.kept = nn.Linear(4, 4)
        self.skipped = nn.Linear(4, 4)

    def forward(self, x):
        if not (self.training and bool(torch.rand(1) < 0.5)):
            x = self.kept(x)
        if self.training:
            x = self.skipped(x)
        return x


def one_model_spec(file, surgery):
    """y = m(x) over x: [N, 4], with m the model in `file` and `surgery` its
    cut/after/taps key ("cut: pos")."""
    return f"""
        inputs: {{x: [N, 4]}}
        models:
          m: {{file: {file}, {surgery}}}
        graph:
          - y = m(x)
        outputs: [y]
    """


@pytest.mark.parametrize("key", ["cut: pos", "after: pos", "taps: [neg]"])
def test_a_layer_in_a_data_dependent_branch_is_refused_naming_the_branch(run_stitch, tmp_path,
                                                                          key):
    torch.jit.script(DataBranch()).save(str(tmp_path / "branchy.pt"))
    err = refused(run_stitch, tmp_path, one_model_spec("branchy.pt", key))
    layer = key.split(": ")[1].strip("[]")
    assert f"layer '{layer}' runs only on one path of `if bool(" in err, err
    assert "(line " in err and "fix: use a layer that runs on every path" in err, err


def test_layers_around_a_data_branch_still_cut_as_pytorch(run_stitch, tmp_path):
    torch.manual_seed(0)
    eager = DataBranch().eval()
    torch.jit.script(eager).save(str(tmp_path / "branchy.pt"))
    model = compose(run_stitch, tmp_path, one_model_spec("branchy.pt", "cut: pre"))
    x = torch.randn(5, 4)
    with torch.no_grad():
        close(model(x), eager.pre(x))


def test_a_layer_that_runs_on_every_path_in_eval_mode_is_cut(run_stitch, tmp_path):
    torch.manual_seed(0)
    eager = ModeBranch().eval()
    torch.jit.script(eager).save(str(tmp_path / "mode.pt"))
    model = compose(run_stitch, tmp_path, one_model_spec("mode.pt", "cut: kept"))
    x = torch.randn(5, 4)
    with torch.no_grad():
        close(model(x), eager.kept(x))
    err = refused(run_stitch, tmp_path, one_model_spec("mode.pt", "cut: skipped"))
    assert "layer 'skipped' runs only on one path of `if " in err, err


# --- seed 002, strategy 2 -----------------------------------------------------------

def test_seed002_strategy2_bug_is_refused_naming_both_shapes(run_stitch, example_models_dir,
                                                             tmp_path):
    spec = copy_example_to("seed002_strategy2_bug.yaml", tmp_path, example_models_dir)
    code, stdout, stderr = run_stitch("check", spec)
    assert_clean_error(code, stdout, stderr)
    assert "float[N, 2048, 28, 28]" in stderr and "float[N, 512]" in stderr, stderr
    assert "seed002_strategy2_bug.yaml:" in stderr, stderr


def seed002_strategy2_fixed(load_model, params):
    """The corrected fusion written by hand in PyTorch, on the artifact's
    bridge weights (also usable by test_examples.py's HAND_BUILT)."""
    rgb = load_model("seed002_rgb_resnet18")
    depth = load_model("seed002_depth_resnet18")
    bridge = nn.Conv2d(256 + 512, 256, kernel_size=3, padding=1)
    with torch.no_grad():
        bridge.weight.copy_(params["fused.weight"])
        bridge.bias.copy_(params["fused.bias"])

    class Fused(nn.Module):
        def __init__(self):
            super().__init__()
            self.low = nn.Sequential(*list(rgb.children())[:7])      # up to layer3
            self.depth = nn.Sequential(*list(depth.children())[:8])  # up to layer4
            self.bridge = bridge
            self.layer4, self.avgpool, self.fc = rgb.layer4, rgb.avgpool, rgb.fc

        def forward(self, image, depth_map):
            a = self.low(image)
            b = F.interpolate(self.depth(depth_map), size=[14, 14], mode="bilinear",
                              align_corners=False)
            x = self.bridge(torch.cat((a, b), dim=1))
            return self.fc(torch.flatten(self.avgpool(self.layer4(x)), 1))

    return Fused().eval()


def test_seed002_strategy2_fixed_equals_hand_built(run_stitch, example_models_dir, tmp_path):
    spec = copy_example_to("seed002_strategy2_fixed.yaml", tmp_path, example_models_dir)
    out = tmp_path / "out.pt"
    code, stdout, stderr = run_stitch("compose", spec, "-o", out)
    assert code == 0, stderr
    artifact = load(out)
    params = dict(artifact.named_parameters())
    assert not params["rgb_low.conv1.weight"].requires_grad
    by_hand = seed002_strategy2_fixed(lambda n: load(tmp_path / "models" / f"{n}.pt"), params)
    g = torch.Generator().manual_seed(2)
    image, depth_map = torch.randn(2, 3, 224, 224, generator=g), torch.randn(2, 3, 224, 224,
                                                                               generator=g)
    with torch.no_grad():
        close(artifact(image, depth_map), by_hand(image, depth_map))
