"""Loads the demo artifact in Python and compares it with the same model
written by hand in PyTorch."""
import sys

import torch
import torch.nn as nn

artifact, resnet, images, outputs = sys.argv[1:5]
extra = {"stitch/manifest.json": ""}
model = torch.jit.load(artifact, _extra_files=extra)
params = dict(model.named_parameters())

backbone = torch.jit.load(resnet).eval()
head = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, 10)).eval()
with torch.no_grad():
    head[0].weight.copy_(params["logits.fc0.weight"])
    head[0].bias.copy_(params["logits.fc0.bias"])
    head[3].weight.copy_(params["logits.fc1.weight"])
    head[3].bias.copy_(params["logits.fc1.bias"])
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def by_hand(x):
    x = (x - mean) / std
    r = backbone
    for layer in [r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4,
                  r.avgpool]:
        x = layer(x)
    return head(torch.flatten(x, 1))


x = torch.load(images)
with torch.no_grad():
    expected = by_hand(x)
    got = model(x)["logits"]
from_cli = torch.load(outputs)["logits"]
print(f"python: artifact vs hand-written PyTorch, max |diff| = "
      f"{(got - expected).abs().max().item():.2e}")
print(f"python: `stitch run` output vs hand-written, max |diff| = "
      f"{(from_cli - expected).abs().max().item():.2e}")
ok = torch.allclose(got, expected, atol=1e-5) and torch.allclose(from_cli, expected, atol=1e-5)
print("python: same numbers" if ok else "python: MISMATCH")
sys.exit(0 if ok else 1)
