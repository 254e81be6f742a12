#!/usr/bin/python3
"""Exports the models only the benchmark uses (the rest are the test fixtures).

    /usr/bin/python3 bench/make_bench_models.py FIXTURES OUTDIR

Writes into OUTDIR:
  text_encoder.pt          tokens int64[N, 32] -> float[N, 128]: Embedding(1000, 128),
                           a 2-layer nn.TransformerEncoder (4 heads, feed-forward 256),
                           mean over tokens (the dual encoder's text tower)
  small_image_encoder.pt   float[N, 3, 32, 32] -> float[N, 32]: two strided
                           Conv2d + BatchNorm2d + ReLU, global average pool
  small_text_encoder.pt    tokens int64[N, 16] -> float[N, 64]: the text encoder
                           at width 64, feed-forward 128 (the small dual encoder)
  resnet18_prefix_layer3.pt  resnet18.pt's children conv1 .. layer3 called in order
                           in a scripted nn.Module (the "cut by hand" baseline)
  resnet50.pt              torchvision resnet50, random weights (for `stitch inspect`)
  resnet50_b.pt            another resnet50 (seed 12): the second model of the merge
Python's side of the benchmark builds the same modules from this file, so both
sides run the same architectures with the same weights.
"""

import os
import sys

import torch
import torch.nn as nn
import torchvision

PREFIX_CHILDREN = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3"]
TOKENS, VOCAB, WIDTH = 32, 1000, 128
SMALL_TOKENS, SMALL_WIDTH = 16, 64  # the small dual encoder's text tower


class TextEncoder(nn.Module):
    def __init__(self, width=WIDTH, feedforward=256):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        layer = nn.TransformerEncoderLayer(width, 4, feedforward, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embed(tokens)).mean(dim=1)


class Prefix(nn.Module):
    """The children of a model up to and including the last name, in order."""

    def __init__(self, model, names):
        super().__init__()
        self.body = nn.Sequential(*[getattr(model, name) for name in names])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def text_encoder():
    torch.manual_seed(10)
    return TextEncoder()


def small_image_encoder():
    """float[N, 3, 32, 32] -> float[N, 32]: two strided conv + BatchNorm + ReLU."""
    torch.manual_seed(12)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())


def small_text_encoder():
    torch.manual_seed(13)
    return TextEncoder(width=SMALL_WIDTH, feedforward=128)


def resnet18(fixtures):
    r = torchvision.models.resnet18(weights=None)
    r.load_state_dict(torch.jit.load(os.path.join(fixtures, "resnet18.pt")).state_dict())
    return r


def resnet18_prefix(fixtures):
    return Prefix(resnet18(fixtures), PREFIX_CHILDREN)


def save(module, path):
    module.eval()
    torch.jit.script(module).save(path + ".tmp")
    os.replace(path + ".tmp", path)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    fixtures, out = argv[1], argv[2]
    os.makedirs(out, exist_ok=True)
    save(text_encoder(), os.path.join(out, "text_encoder.pt"))
    save(small_image_encoder(), os.path.join(out, "small_image_encoder.pt"))
    save(small_text_encoder(), os.path.join(out, "small_text_encoder.pt"))
    save(resnet18_prefix(fixtures), os.path.join(out, "resnet18_prefix_layer3.pt"))
    if not os.path.exists(os.path.join(out, "resnet50.pt")):
        torch.manual_seed(11)
        save(torchvision.models.resnet50(weights=None), os.path.join(out, "resnet50.pt"))
    if not os.path.exists(os.path.join(out, "resnet50_b.pt")):
        torch.manual_seed(12)
        save(torchvision.models.resnet50(weights=None), os.path.join(out, "resnet50_b.pt"))
    print(f"wrote the benchmark models to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
