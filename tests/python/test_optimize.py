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
