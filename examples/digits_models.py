#!/usr/bin/python3
"""Trained models and data on sklearn's digits for the merge, soup and
distillation examples (docs/merge.md, docs/train.md):

    /usr/bin/python3 examples/digits_models.py [OUTDIR]    # default: examples/models/

- digits_teacher.pt   torchvision resnet18 (10 classes) trained on the digits
                      (8x8 upsampled to 16x16, three channels)
- digits_student.pt   a small CNN, seeded and untrained
- digits_few.pt       100 labelled digits the student trains on
- digits_head_{0,1,2}.pt  one small CNN trained on the digits, then its head
                      fine-tuned three times (different seeds and learning
                      rates): the ingredients of a soup
- digits_val.pt, digits_test.pt  held-out digits: {"x": [N, 3, 16, 16], "labels": [N]}

Everything is seeded: the same files on every run. make_models.py calls this.
"""

import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from sklearn.datasets import load_digits


def digit_images():
    """The 1797 digits as [N, 3, 16, 16] floats in [0, 1], and their labels."""
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    x = F.interpolate(x, scale_factor=2, mode="nearest").repeat(1, 3, 1, 1)
    return x, torch.tensor(d.target, dtype=torch.long)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        return self.head(self.features(x))


def fit(model, x, y, steps, lr, seed, params=None):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params if params is not None else model.parameters(), lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (64,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def save(model, path):
    torch.jit.script(model.eval()).save(path)


def export(outdir):
    os.makedirs(outdir, exist_ok=True)
    x, y = digit_images()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    test, val, train = perm[:400], perm[400:700], perm[700:]
    torch.save({"x": x[test], "labels": y[test]}, os.path.join(outdir, "digits_test.pt"))
    torch.save({"x": x[val], "labels": y[val]}, os.path.join(outdir, "digits_val.pt"))
    torch.save({"x": x[train[:100]], "labels": y[train[:100]]},
               os.path.join(outdir, "digits_few.pt"))

    torch.manual_seed(0)
    teacher = fit(torchvision.models.resnet18(num_classes=10), x[train], y[train], 200, 1e-3, 0)
    save(teacher, os.path.join(outdir, "digits_teacher.pt"))
    torch.manual_seed(1)
    save(SmallCNN(), os.path.join(outdir, "digits_student.pt"))

    # A soup's ingredients share their start: one CNN trained on half the
    # digits, then its head fine-tuned on the other half three ways.
    torch.manual_seed(2)
    half = len(train) // 2
    base = fit(SmallCNN(), x[train[:half]], y[train[:half]], 300, 3e-3, 1)
    for i, (lr, steps) in enumerate([(1e-2, 200), (3e-2, 200), (5e-3, 300)]):
        ingredient = SmallCNN()
        ingredient.load_state_dict(base.state_dict())
        fit(ingredient, x[train[half:]], y[train[half:]], steps, lr, 10 + i,
            params=ingredient.head.parameters())
        save(ingredient, os.path.join(outdir, f"digits_head_{i}.pt"))


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = argv[1] if len(argv) > 1 else os.path.join(here, "models")
    export(outdir)
    print(f"wrote the digits teacher, student, soup ingredients and data to {outdir}")


if __name__ == "__main__":
    main(sys.argv)
