"""Exports a real torchvision resnet18 (seeded random weights: this machine
cannot download pretrained ones) and an example image batch for the demo."""
import os
import sys

import torch
import torchvision

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "out")
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
model = torchvision.models.resnet18().eval()
torch.jit.script(model).save(os.path.join(out, "resnet18.pt"))
torch.save(torch.rand(4, 3, 224, 224), os.path.join(out, "images.pt"))
print(f"exported resnet18.pt and images.pt to {out}")
