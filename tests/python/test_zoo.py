"""The zoo: model surgery on ten more torchvision architectures, each
compared with the eager model's own layer outputs, caught by forward hooks
(torchvision's create_feature_extractor cannot trace every one of them:
shufflenet's channel_shuffle unpacks x.size()).

For every architecture one spec taps three depths, cuts at the middle one and
runs the rest of the model `after` it on the cut's output:

    t    = taps(image)          == the outputs of [early, middle, late] in model(image)
    mid  = low(image)           == the output of middle in model(image)
    y    = high(mid)            == model(image)

The models have random weights, but their BatchNorm statistics are set from
a real batch first (sklearn's digits, scaled up to 3x64x64), so that every
layer's output has a sensible scale and a 1e-4 comparison means something.
The numbers are checked in Python (torch.jit.load) and in C++ (`stitch run`).
"""

import textwrap

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models as tm

ATOL = 1e-4
SIZE = 64

# architecture: (early, middle, late) module paths
ZOO = {
    "mobilenet_v2": ("features.3", "features.7", "features.14"),
    "efficientnet_b0": ("features.2", "features.4", "features.6"),
    "regnet_x_400mf": ("trunk_output.block1", "trunk_output.block2", "trunk_output.block3"),
    "shufflenet_v2_x0_5": ("stage2", "stage3", "stage4"),
    "squeezenet1_1": ("features.3", "features.7", "features.12"),
    "densenet121": ("features.transition1", "features.transition2", "features.denseblock4"),
    "mnasnet0_5": ("layers.8", "layers.10", "layers.13"),
    "convnext_tiny": ("features.1", "features.3", "features.5"),
    "swin_t": ("features.1", "features.3", "features.5"),
    "resnext50_32x4d": ("layer1.1.conv2", "layer2", "layer3.5.bn3"),
}


def digits_batch(count, offset=0):
    """`count` of sklearn's handwritten digits as 3x64x64 images in [-1, 1]."""
    from sklearn.datasets import load_digits
    images = torch.tensor(load_digits().images[offset:offset + count], dtype=torch.float32)
    images = images.div(8.0).sub(1.0).unsqueeze(1).repeat(1, 3, 1, 1)
    return F.interpolate(images, size=(SIZE, SIZE), mode="bilinear", align_corners=False)


def with_real_statistics(model, batch):
    """Sets every BatchNorm's running statistics from one real batch."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches seen: this one
    model.train()
    with torch.no_grad():
        model(batch)
    return model.eval()


def run_with_hooks(model, image, paths):
    """model(image), and the output of each module at `paths` during that run."""
    caught = {}
    # A copy: the model may change the output in place later (a bottleneck's
    # `out += identity` right after bn3).
    handles = [model.get_submodule(path).register_forward_hook(
        lambda module, args, output, key=key: caught.__setitem__(key, output.clone()))
        for key, path in paths.items()]
    try:
        with torch.no_grad():
            y = model(image)
    finally:
        for handle in handles:
            handle.remove()
    return y, caught


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """architecture -> (eager model, scripted file)."""
    out = tmp_path_factory.mktemp("zoo")
    models = {}
    for seed, name in enumerate(ZOO):
        torch.manual_seed(seed)
        model = with_real_statistics(getattr(tm, name)(weights=None, num_classes=10),
                                     digits_batch(32))
        path = out / f"{name}.pt"
        torch.jit.script(model).save(str(path))
        models[name] = (model, path)
    return models


@pytest.mark.parametrize("name", list(ZOO))
def test_taps_cut_and_after_equal_the_eager_models_own_layers(name, zoo, run_stitch,
                                                              tmp_path):
    model, path = zoo[name]
    early, middle, late = ZOO[name]
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""
        inputs: {{image: [N, 3, {SIZE}, {SIZE}]}}
        models:
          t:    {{file: {path}, taps: [{early}, {middle}, {late}]}}
          low:  {{file: {path}, cut: {middle}}}
          high: {{file: {path}, after: {middle}}}
        graph:
          - f = t(image)
          - early = f["{early}"]
          - middle = f["{middle}"]
          - late = f["{late}"]
          - mid = low(image)
          - y = high(mid)
        outputs: [early, middle, late, mid, y]
    """))
    artifact = tmp_path / "out.pt"
    code, stdout, stderr = run_stitch("compose", spec, "-o", artifact)
    assert code == 0, f"compose failed ({code}):\n{stdout}\n{stderr}"

    image = digits_batch(3, offset=100)  # other digits than the statistics'
    y, want = run_with_hooks(model, image, {"early": early, "middle": middle, "late": late})
    want.update(mid=want["middle"], y=y)
    with torch.no_grad():
        got = torch.jit.load(str(artifact))(image)
    torch.save(image, tmp_path / "image.pt")
    code, _, stderr = run_stitch("run", artifact, "--input", f"image={tmp_path / 'image.pt'}",
                                 "-o", tmp_path / "y.pt")
    assert code == 0, stderr
    from_cpp = torch.load(str(tmp_path / "y.pt"))
    for where, outputs in (("python", got), ("c++", from_cpp)):
        assert set(outputs) == set(want), (where, set(outputs))
        for key, tensor in want.items():
            assert outputs[key].shape == tensor.shape, (where, key, outputs[key].shape)
            error = (outputs[key] - tensor).abs().max().item()
            assert torch.allclose(outputs[key], tensor, atol=ATOL), (where, key, error)
