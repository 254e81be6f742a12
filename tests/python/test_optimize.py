"""`stitch compose --optimize`: weights folded for inference (torch.jit.freeze).
The artifact still loads in Python with its metadata and gives the numbers of
the plain build and of the same model written by hand."""

import json

import torch

SPEC = """
inputs:
  image: [N, 3, 64, 64]
models:
  backbone: {{file: {resnet}, cut: avgpool}}
graph:
  - features = flatten(backbone(image))
  - logits = linear(features, 4)
outputs: [logits]
"""


def test_optimized_artifact_equals_plain_build_and_pytorch(run_stitch, fixtures_dir, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(resnet=fixtures_dir / "resnet18.pt"))
    code, _, err = run_stitch("compose", spec, "-o", tmp_path / "plain.pt")
    assert code == 0, err
    code, _, err = run_stitch("compose", spec, "-o", tmp_path / "opt.pt", "--optimize")
    assert code == 0, err

    extra = {"stitch/manifest.json": ""}
    optimized = torch.jit.load(str(tmp_path / "opt.pt"), _extra_files=extra)
    assert json.loads(extra["stitch/manifest.json"])["outputs"][0]["name"] == "logits"
    plain = torch.jit.load(str(tmp_path / "plain.pt"))
    # Frozen: the head's weights are constants now, not parameters.
    assert len(list(optimized.parameters())) == 0

    params = dict(plain.named_parameters())
    resnet = torch.jit.load(str(fixtures_dir / "resnet18.pt")).eval()
    head = torch.nn.Linear(512, 4)
    with torch.no_grad():
        head.weight.copy_(params["logits.weight"])
        head.bias.copy_(params["logits.bias"])
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        r = resnet
        h = x
        for layer in [r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3,
                      r.layer4, r.avgpool]:
            h = layer(h)
        expected = head(torch.flatten(h, 1))
        assert torch.allclose(plain(x), expected, atol=1e-5)
        assert torch.allclose(optimized(x), expected, atol=1e-4)


CUT_SPEC = """
inputs:
  image: [N, 3, 64, 64]
models:
  backbone: {{file: {resnet}, cut: layer3}}
graph:
  - features = backbone(image)
outputs: [features]
"""


def conv_weights(module):
    """The constant weight of every 2-d convolution in a frozen module's graph."""
    return [node.inputsAt(1).toIValue() for node in module.graph.findAllNodes("aten::conv2d")]


def test_optimized_convolutions_are_channels_last_and_outputs_stay_contiguous(
        run_stitch, fixtures_dir, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(CUT_SPEC.format(resnet=fixtures_dir / "resnet18.pt"))
    for name, flags in [("plain.pt", []), ("opt.pt", ["--optimize"])]:
        code, _, err = run_stitch("compose", spec, "-o", tmp_path / name, *flags)
        assert code == 0, err
    plain = torch.jit.load(str(tmp_path / "plain.pt"))
    optimized = torch.jit.load(str(tmp_path / "opt.pt"))

    # oneDNN keeps NHWC activations between convolutions whose weights are
    # channels-last; the strides survive save + load.
    weights = conv_weights(optimized)
    assert len(weights) == 1 + 2 * 2 * 3 + 2  # conv1, 2 per block, 2 downsamples
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = plain(x)
        got = optimized(x)
    assert got.shape == (2, 256, 4, 4)
    assert got.is_contiguous()  # so that view() works as on the plain artifact's output
    assert torch.allclose(got.view(2, -1), expected.view(2, -1), atol=1e-4)
