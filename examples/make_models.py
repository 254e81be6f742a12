#!/usr/bin/python3
"""Exports the TorchScript model files the example specs refer to.

    /usr/bin/python3 examples/make_models.py [OUTDIR]     # default: examples/models/

Every model below is a piece of one of the seed answers (shared/seeds/000, 001,
003, 004), written exactly as the seed writes it, built with seeded random
weights (no pretrained weights are downloaded), put in eval() mode and saved
with torch.jit.script. The specs in this folder name these files as
`file: models/<name>.pt`; the glue the seeds write by hand (reshape layers,
intermediary Linear layers, concatenation, Preprocessor, the new classifier
head) is written with stitch's built-in ops in the specs instead.

tests/fixtures/make_fixtures.py imports this file and exports the same models
(with the same names) for the C++ and Python tests.
"""

import os
import sys

import torch
import torch.nn as nn


# --- seed 003: stacks (also exported as whole models, for tests) -----------

class MySimpleStack(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.linear1 = nn.Linear(input_size, hidden_size)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        x = self.linear1(x)
        x = self.relu(x)
        x = self.linear2(x)
        return x


class MySequentialStack(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, output_size),
        )

    def forward(self, x):
        return self.layers(x)


class MyComplexStack(nn.Module):
    def __init__(self, input_size, hidden_size1, hidden_size2, output_size):
        super().__init__()
        self.branch1 = nn.Sequential(nn.Linear(input_size, hidden_size1), nn.ReLU())
        self.branch2 = nn.Sequential(nn.Linear(input_size, hidden_size2), nn.ReLU())
        self.final_linear = nn.Linear(hidden_size1 + hidden_size2, output_size)

    def forward(self, x):
        x1 = self.branch1(x)
        x2 = self.branch2(x)
        x_combined = torch.cat((x1, x2), dim=1)
        return self.final_linear(x_combined)


# --- seed 004: wrapping ------------------------------------------------------

class LinearClassifier(nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.linear = nn.Linear(input_size, output_size)

    def forward(self, x):
        return self.linear(x)


class Preprocessor(nn.Module):
    def __init__(self, scale: float, offset: float):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale, dtype=torch.float32))
        self.offset = nn.Parameter(torch.tensor(offset, dtype=torch.float32))

    def forward(self, x):
        return (x * self.scale) + self.offset


class MockCNN(nn.Module):
    def __init__(self, feature_size):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(100, feature_size))
        self.classifier = nn.Linear(feature_size, 10)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x)


class CustomClassifier(nn.Module):
    def __init__(self, input_size, num_classes, hidden_size=32):
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        x = self.fc1(x)
        x = self.relu(x)
        x = self.fc2(x)
        return x


class StreamModel1(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.linear = nn.Linear(input_size, hidden_size)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.linear(x))


class StreamModel2(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.linear = nn.Linear(input_size, hidden_size)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return self.sigmoid(self.linear(x))


def seed_models():
    """name -> zero-argument constructor, for every model file of the examples.

    Each constructor is called right after torch.manual_seed(i) (i = its
    position here), so the weights are the same on every run."""
    return {
        # seed 000, example 1: nn.Sequential(model1, model2)
        "seed000_ex1_model1": lambda: nn.Sequential(nn.Linear(10, 5), nn.ReLU()),
        "seed000_ex1_model2": lambda: nn.Linear(5, 2),
        # seed 000, example 2: Linear -> ReshapeLayer((-1, 3, 5)) -> Conv1d
        "seed000_ex2_model1": lambda: nn.Linear(10, 15),
        "seed000_ex2_model2": lambda: nn.Sequential(nn.Conv1d(3, 8, kernel_size=3), nn.ReLU()),
        # seed 000, example 3: conv feature extractor + classifier
        "seed000_ex3_model1": lambda: nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3), nn.MaxPool2d(2), nn.ReLU()),
        # as the seed writes it: expects 16*12*12 = 2304 features, but a 24x24
        # image gives 16x11x11 = 1936 (stitch must refuse this combination)
        "seed000_ex3_model2": lambda: nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 12 * 12, 128), nn.ReLU(), nn.Linear(128, 10)),
        # corrected: 16*11*11
        "seed000_ex3_model2_fixed": lambda: nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 11 * 11, 128), nn.ReLU(), nn.Linear(128, 10)),
        # seed 001: module1 (module2 of example 1 is nn.ReLU: the `relu` op)
        "seed001_ex1_module1": lambda: nn.Linear(10, 5),
        "seed001_ex2_module1": lambda: nn.Linear(10, 5),
        "seed001_ex2_module2": lambda: nn.Linear(3, 2),
        "seed001_ex3_module1": lambda: nn.Linear(10, 5),
        "seed001_ex3_module2": lambda: nn.Linear(10, 5),
        # seed 003: the three stacks as whole models (the specs rebuild them
        # from built-in ops; these are for tests that load a stack as a file)
        "seed003_simple_stack": lambda: MySimpleStack(10, 20, 5),
        "seed003_sequential_stack": lambda: MySequentialStack(10, 20, 5),
        "seed003_complex_stack": lambda: MyComplexStack(10, 15, 20, 5),
        # seed 004
        "seed004_linear_classifier": lambda: LinearClassifier(10, 2),
        "seed004_preprocessor": lambda: Preprocessor(2.0, 1.0),
        "seed004_mockcnn": lambda: MockCNN(50),
        "seed004_custom_classifier": lambda: CustomClassifier(50, 5),
        "seed004_stream1": lambda: StreamModel1(5, 20),
        "seed004_stream2": lambda: StreamModel2(8, 15),
    }


def export(module, path):
    """eval() + torch.jit.script + save."""
    module.eval()
    torch.jit.script(module).save(path)


def export_all(outdir):
    os.makedirs(outdir, exist_ok=True)
    names = []
    for i, (name, make) in enumerate(seed_models().items()):
        torch.manual_seed(i)
        export(make(), os.path.join(outdir, name + ".pt"))
        names.append(name)
    return names


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = argv[1] if len(argv) > 1 else os.path.join(here, "models")
    names = export_all(outdir)
    print(f"wrote {len(names)} models to {outdir}")


if __name__ == "__main__":
    main(sys.argv)
