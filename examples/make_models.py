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




# --- seed 002, strategy 2: mid-network fusion ---------------------------------
# Bigger pieces (torchvision/torchaudio architectures), exported beside the
# others by main(). Not in seed_models(): the test
# fixtures import that list and stay small.

def strategy2_models():
    """name -> zero-argument constructor; seeded like seed_models()."""
    import torchvision
    from torchvision.models.segmentation import fcn_resnet50
    return {
        # model A as the seed writes it: FCN-ResNet50 with 20 classes
        "seed002_fcn_resnet50": lambda: fcn_resnet50(
            weights=None, weights_backbone=None, num_classes=20, aux_loss=False),
        # the corrected version: an RGB resnet18 split at layer3 ...
        "seed002_rgb_resnet18": lambda: torchvision.models.resnet18(weights=None),
        # ... and model B, a resnet18 for the depth map
        "seed002_depth_resnet18": lambda: torchvision.models.resnet18(weights=None),
    }


def export_strategy2(outdir):
    os.makedirs(outdir, exist_ok=True)
    names = []
    for i, (name, make) in enumerate(strategy2_models().items()):
        torch.manual_seed(200 + i)
        export(make(), os.path.join(outdir, name + ".pt"))
        names.append(name)
    return names


# --- seed 002: training examples (strategies 1 and 3) -------------------------
#
# Small stand-ins for the seed's pretrained models (resnet18, wav2vec2, BERT)
# and synthetic data that the example specs train on:
#   seed002_strategy1_train.yaml  late fusion of two frozen models + classifier
#   seed002_strategy3_clip.yaml   two encoders + projection heads, clip loss
# Exported by main() with the seeds' models; tests/python/test_train.py calls
# export_seed002 directly.

class TinyVision(nn.Module):
    """resnet18's shape in small: features (with BatchNorm), pool, fc."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class TinySpeech(nn.Module):
    """wav2vec2's shape in small: waveform [N, T] -> hidden states [N, T', C]."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 16, 10, stride=5)
        self.conv2 = nn.Conv1d(16, 32, 8, stride=4)

    def forward(self, audio):
        x = torch.nn.functional.gelu(self.conv1(audio.unsqueeze(1)))
        x = torch.nn.functional.gelu(self.conv2(x))
        return x.transpose(1, 2)


class TinyImageEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 64), nn.ReLU(),
                                 nn.Linear(64, 64), nn.ReLU())

    def forward(self, x):
        return self.net(x)


class TinyTextEncoder(nn.Module):
    """BERT's shape in small: token ids [N, L] -> mean of token states."""

    def __init__(self, vocab=64, dim=48):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)

    def forward(self, tokens):
        return torch.relu(self.mix(self.embed(tokens))).mean(dim=1)


def seed002_fusion_data(n=640, classes=5, seed=0):
    """Images and waveforms whose class shows in both: a colour/position
    pattern in the image, a frequency in the audio."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    images = torch.randn(n, 3, 32, 32, generator=g) * 0.5
    for c in range(classes):
        rows = labels == c
        images[rows, c % 3, 4 * c:4 * c + 8, :] += 2.0
    t = torch.arange(1600, dtype=torch.float32) / 1600
    freq = (labels.float() + 1) * 40
    audio = torch.sin(2 * torch.pi * freq[:, None] * t[None, :])
    audio += 0.3 * torch.randn(n, 1600, generator=g)
    return {"images": images, "audio": audio, "labels": labels}


def seed002_pairs_data(n=1024, seed=0):
    """Paired images and captions from one latent vector each: the image is
    a random projection of it, the caption quantises each latent dimension
    into a token (8 dims x 8 bins, vocab 64)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 8, generator=g)
    project = torch.randn(8, 3 * 8 * 8, generator=g)
    images = torch.tanh(z @ project / 2).reshape(n, 3, 8, 8)
    images += 0.05 * torch.randn(images.shape, generator=g)
    bins = torch.bucketize(z, torch.tensor([-1.15, -0.67, -0.32, 0.0, 0.32, 0.67, 1.15]))
    tokens = bins + 8 * torch.arange(8)[None, :]
    return {"images": images, "captions": tokens.long()}


def export_seed002(outdir):
    os.makedirs(outdir, exist_ok=True)
    for i, (name, make) in enumerate([("seed002_vision", TinyVision),
                                      ("seed002_speech", TinySpeech),
                                      ("seed002_image_encoder", TinyImageEncoder),
                                      ("seed002_text_encoder", TinyTextEncoder)]):
        torch.manual_seed(100 + i)
        module = make()
        if name == "seed002_vision":
            # "pretrained": give BatchNorm statistics that are not the defaults
            module.train()
            with torch.no_grad():
                for _ in range(5):
                    module(torch.randn(16, 3, 32, 32) * 2 + 0.5)
        export(module, os.path.join(outdir, name + ".pt"))
    torch.save(seed002_fusion_data(), os.path.join(outdir, "seed002_fusion.pt"))
    torch.save(seed002_pairs_data(), os.path.join(outdir, "seed002_pairs.pt"))



def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = argv[1] if len(argv) > 1 else os.path.join(here, "models")
    names = export_all(outdir) + export_strategy2(outdir)
    export_seed002(outdir)
    sys.path.insert(0, here)
    import digits_models  # trains on sklearn's digits: only for the examples
    digits_models.export(outdir)  # the merge, soup and distillation examples
    print(f"wrote {len(names)} models and the seed 002 training models and data to {outdir}")


if __name__ == "__main__":
    main(sys.argv)
