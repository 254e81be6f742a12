"""Every example spec in examples/ composes into one TorchScript file that
computes exactly what the seed's hand-written PyTorch computes.

For each example: `stitch compose SPEC -o out.pt`, load out.pt with
torch.jit.load, and compare with the combination written by hand the way the
seed writes it (nn.Sequential, a wrapper nn.Module, torch.cat), on the same
weights: model files are loaded with torch.jit.load, the weights of stitch's
built-in learned layers are copied from the artifact into the hand-built
layers. Also `stitch run` on saved inputs.
"""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml

from conftest import (EXAMPLES, artifact_tensors, assert_clean_error, copy_example_to,
                      copy_params, example_specs, files_in, make_inputs, spec_inputs)

_spec = importlib.util.spec_from_file_location("make_models", EXAMPLES / "make_models.py")
seeds = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seeds)

BUGGY = "seed000_ex3_bug.yaml"
# Examples whose proof lives in another test file (refused specs, training
# recipes, and the 224x224 fusion that test_surgery.py compares by hand).
TESTED_ELSEWHERE = {
    "seed002_strategy2_bug.yaml": "test_surgery.py",
    "seed002_strategy2_fixed.yaml": "test_surgery.py",
    "seed002_strategy1_train.yaml": "test_train.py",
    "seed002_strategy3_clip.yaml": "test_train.py",
    "distill_digits.yaml": "test_digits_examples.py",
    "distill_digits_student.yaml": "test_digits_examples.py",
    "soup_digits.yaml": "test_digits_examples.py",
}
ATOL = 1e-5


# --- the seeds' glue, as the seeds write it ----------------------------------

class ReshapeLayer(nn.Module):  # seed 000, example 2
    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(self.shape)


class CombinedModule(nn.Module):  # seed 001, example 1
    def __init__(self, module1, module2):
        super().__init__()
        self.module1 = module1
        self.module2 = module2

    def forward(self, x):
        x = self.module1(x)
        x = self.module2(x)
        return x


class CombinedModuleIntermediary(nn.Module):  # seed 001, example 2
    def __init__(self, module1, module2, in_features, hidden_size):
        super().__init__()
        self.module1 = module1
        self.intermediary = nn.Linear(in_features, hidden_size)
        self.module2 = module2

    def forward(self, x):
        x = self.module1(x)
        x = self.intermediary(x)
        x = self.module2(x)
        return x


class CombinedModuleParallel(nn.Module):  # seed 001, example 3
    def __init__(self, module1, module2):
        super().__init__()
        self.module1 = module1
        self.module2 = module2

    def forward(self, x):
        x1 = self.module1(x)
        x2 = self.module2(x)
        return torch.cat((x1, x2), dim=1)


class WrappedModel(nn.Module):  # seed 004, Preprocessor + LinearClassifier
    def __init__(self, classifier, scale, offset):
        super().__init__()
        self.preprocessor = seeds.Preprocessor(scale, offset)
        self.classifier = classifier

    def forward(self, x):
        x = self.preprocessor(x)
        return self.classifier(x)


class WrappedCNN(nn.Module):  # seed 004, head swap
    def __init__(self, cnn, custom_classifier):
        super().__init__()
        self.cnn_features = cnn.features
        self.classifier = custom_classifier

    def forward(self, x):
        x = self.cnn_features(x)
        return self.classifier(x)


class CombinedModel(nn.Module):  # seed 004, two streams
    def __init__(self, stream1, stream2, hidden_size1, hidden_size2, output_size):
        super().__init__()
        self.stream1 = stream1
        self.stream2 = stream2
        self.classifier = nn.Linear(hidden_size1 + hidden_size2, output_size)

    def forward(self, x1, x2):
        out1 = self.stream1(x1)
        out2 = self.stream2(x2)
        combined_out = torch.cat((out1, out2), dim=1)
        return self.classifier(combined_out)


# --- one hand-built model per example ----------------------------------------
# Each takes `load` (model file name -> torch.jit.load of it) and `params`
# (the artifact's parameters and buffers by name).

def seed000_ex1_chain(load, params):
    return nn.Sequential(load("seed000_ex1_model1"), load("seed000_ex1_model2"))


def seed000_ex2_reshape(load, params):
    return nn.Sequential(load("seed000_ex2_model1"), ReshapeLayer((-1, 3, 5)),
                         load("seed000_ex2_model2"))


def seed000_ex3_fixed(load, params):
    return nn.Sequential(load("seed000_ex3_model1"), load("seed000_ex3_model2_fixed"))


def seed001_ex1_sequential(load, params):
    return CombinedModule(load("seed001_ex1_module1"), nn.ReLU())


def seed001_ex2_intermediary(load, params):
    m = CombinedModuleIntermediary(load("seed001_ex2_module1"),
                                   load("seed001_ex2_module2"), 5, 3)
    copy_params(m.intermediary, params, "intermediary")
    return m


def seed001_ex3_parallel(load, params):
    return CombinedModuleParallel(load("seed001_ex3_module1"), load("seed001_ex3_module2"))


def seed003_ex1_simple_stack(load, params):
    m = seeds.MySimpleStack(10, 20, 5)
    copy_params(m.linear1, params, "linear1")
    copy_params(m.linear2, params, "y")
    return m


def seed003_ex2_sequential_stack(load, params):
    m = seeds.MySequentialStack(10, 20, 5)
    copy_params(m.layers[0], params, "y.fc0")
    copy_params(m.layers[2], params, "y.fc1")
    return m


def seed003_ex3_complex_stack(load, params):
    m = seeds.MyComplexStack(10, 15, 20, 5)
    copy_params(m.branch1[0], params, "branch1_linear")
    copy_params(m.branch2[0], params, "branch2_linear")
    copy_params(m.final_linear, params, "final_linear")
    return m


def seed004_ex1_preprocessor(load, params):
    # The artifact's scale/offset must start at the spec's values.
    assert float(params["preprocessor.scale"]) == 2.0
    assert float(params["preprocessor.offset"]) == 1.0
    m = WrappedModel(load("seed004_linear_classifier"), 2.0, 1.0)
    copy_params(m.preprocessor, params, "preprocessor")
    return m


def seed004_ex2_head_swap(load, params):
    custom = seeds.CustomClassifier(50, 5)
    copy_params(custom.fc1, params, "classifier.fc0")
    copy_params(custom.fc2, params, "classifier.fc1")
    return WrappedCNN(load("seed004_mockcnn"), custom)


def seed004_ex2_head_swap_file(load, params):
    return WrappedCNN(load("seed004_mockcnn"), load("seed004_custom_classifier"))


def seed004_ex3_two_streams(load, params):
    m = CombinedModel(load("seed004_stream1"), load("seed004_stream2"), 20, 15, 3)
    copy_params(m.classifier, params, "classifier")
    return m


HAND_BUILT = {f.__name__ + ".yaml": f for f in [
    seed000_ex1_chain, seed000_ex2_reshape, seed000_ex3_fixed,
    seed001_ex1_sequential, seed001_ex2_intermediary, seed001_ex3_parallel,
    seed003_ex1_simple_stack, seed003_ex2_sequential_stack, seed003_ex3_complex_stack,
    seed004_ex1_preprocessor, seed004_ex2_head_swap, seed004_ex2_head_swap_file,
    seed004_ex3_two_streams]}

GOOD_EXAMPLES = [s for s in example_specs() if s != BUGGY and s not in TESTED_ELSEWHERE]


def test_examples_tested_elsewhere_are_tested_there():
    here = Path(__file__).parent
    for spec, test_file in TESTED_ELSEWHERE.items():
        if (EXAMPLES / spec).exists():
            assert spec in (here / test_file).read_text(), f"{test_file} does not test {spec}"


def test_every_example_has_a_hand_built_twin():
    assert set(GOOD_EXAMPLES) == set(HAND_BUILT), (
        "add a hand-built PyTorch version to HAND_BUILT for each new example")


def test_examples_cover_the_seeds():
    names = example_specs()
    for seed in ("seed000", "seed001", "seed003", "seed004"):
        assert any(n.startswith(seed) for n in names), seed
    assert BUGGY in names and "seed000_ex3_fixed.yaml" in names


def test_examples_readme_lists_every_example():
    readme = (EXAMPLES / "README.md").read_text()
    for name in example_specs():
        assert name in readme, f"{name} is missing from examples/README.md"


# --- compose once per example, share across tests ----------------------------

@pytest.fixture(scope="module")
def composed(tmp_path_factory, run_stitch, example_models_dir):
    """spec name -> (workdir, spec path, artifact path, (code, out, err))."""
    cache = {}

    def get(spec_name):
        if spec_name not in cache:
            work = tmp_path_factory.mktemp(spec_name.replace(".yaml", ""))
            spec_path = copy_example_to(spec_name, work, example_models_dir)
            out = work / "out.pt"
            result = run_stitch("compose", spec_path, "-o", out)
            cache[spec_name] = (work, spec_path, out, result)
        return cache[spec_name]
    return get


def _hand_built(spec_name, work, artifact):
    def load(name):
        m = torch.jit.load(str(work / "models" / (name + ".pt")))
        m.eval()
        return m
    model = HAND_BUILT[spec_name](load, artifact_tensors(artifact))
    model.eval()
    return model


def _compose_ok(composed, spec_name):
    work, spec_path, out, (code, stdout, stderr) = composed(spec_name)
    assert code == 0, f"compose failed ({code}):\n{stdout}\n{stderr}"
    assert out.is_file()
    return work, spec_path, out


@pytest.mark.parametrize("spec_name", GOOD_EXAMPLES)
def test_compose_equals_hand_built(composed, spec_name):
    work, spec_path, out = _compose_ok(composed, spec_name)
    artifact = torch.jit.load(str(out))
    assert not artifact.training, "the artifact must be saved in eval() mode"
    reference = _hand_built(spec_name, work, artifact)
    with torch.no_grad():
        for batch in (1, 3):
            xs = make_inputs(spec_path, batch, seed=batch)
            got = artifact(*xs)
            want = reference(*xs)
            assert isinstance(got, torch.Tensor), type(got)
            assert got.shape == want.shape, (batch, got.shape, want.shape)
            assert torch.allclose(got, want, atol=ATOL), (
                f"batch {batch}: max diff {(got - want).abs().max().item()}")


@pytest.mark.parametrize("spec_name", GOOD_EXAMPLES)
def test_forward_arguments_are_the_spec_inputs(composed, spec_name):
    _, spec_path, out = _compose_ok(composed, spec_name)
    artifact = torch.jit.load(str(out))
    args = [a.name for a in artifact.forward.schema.arguments][1:]  # drop self
    assert args == [name for name, _, _ in spec_inputs(spec_path)]


@pytest.mark.parametrize("spec_name", GOOD_EXAMPLES)
def test_check_prints_every_node(run_stitch, composed, spec_name):
    _, spec_path, _ = _compose_ok(composed, spec_name)
    code, stdout, stderr = run_stitch("check", spec_path)
    assert code == 0, stderr
    spec = yaml.safe_load(spec_path.read_text())
    for line in spec["graph"]:
        name = line.split("=", 1)[0].strip()
        assert name in stdout, f"check does not show node {name!r}:\n{stdout}"
    assert re.search(r"float\[N, *\d", stdout), f"no shape like float[N, 5]:\n{stdout}"


@pytest.mark.parametrize("spec_name", GOOD_EXAMPLES)
def test_run_equals_python(run_stitch, composed, spec_name):
    work, spec_path, out = _compose_ok(composed, spec_name)
    artifact = torch.jit.load(str(out))
    xs = make_inputs(spec_path, 2, seed=7)
    args = []
    for (name, _, _), x in zip(spec_inputs(spec_path), xs):
        f = work / f"in_{name}.pt"
        torch.save(x, f)
        args += ["--input", f"{name}={f}"]
    y_file = work / "y.pt"
    code, stdout, stderr = run_stitch("run", out, *args, "-o", y_file)
    assert code == 0, f"run failed ({code}):\n{stdout}\n{stderr}"
    y = torch.load(str(y_file))
    with torch.no_grad():
        want = artifact(*xs)
    assert isinstance(y, torch.Tensor), type(y)
    assert torch.allclose(y, want, atol=ATOL)


def test_run_reads_and_writes_npy(run_stitch, composed, tmp_path):
    """A bare FILE for a single-input model; .npy in, .npy out."""
    _, spec_path, out = _compose_ok(composed, "seed000_ex1_chain.yaml")
    x = np.random.default_rng(3).standard_normal((4, 10)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, stdout, stderr = run_stitch("run", out, "--input", tmp_path / "x.npy",
                                      "-o", tmp_path / "y.npy")
    assert code == 0, stderr
    y = np.load(tmp_path / "y.npy")
    with torch.no_grad():
        want = torch.jit.load(str(out))(torch.from_numpy(x)).numpy()
    assert np.allclose(y, want, atol=ATOL)


def test_run_fixture_inputs(run_stitch, composed, fixtures_dir, tmp_path):
    """The inputs exported by make_fixtures.py (.pt and .npy)."""
    _, _, out = _compose_ok(composed, "seed000_ex1_chain.yaml")
    artifact = torch.jit.load(str(out))
    for name, x in [("x10.pt", torch.load(str(fixtures_dir / "inputs" / "x10.pt"))),
                    ("x10.npy", torch.from_numpy(np.load(fixtures_dir / "inputs" / "x10.npy")))]:
        y_file = tmp_path / f"y_{name}.pt"
        code, stdout, stderr = run_stitch("run", out, "--input",
                                          f"x={fixtures_dir / 'inputs' / name}", "-o", y_file)
        assert code == 0, stderr
        with torch.no_grad():
            assert torch.allclose(torch.load(str(y_file)), artifact(x), atol=ATOL)


def test_two_input_example_runs_on_a_dict_file(run_stitch, composed, fixtures_dir, tmp_path):
    """Seed 004's two-stream model fed from one .pt holding {x1, x2}."""
    _, _, out = _compose_ok(composed, "seed004_ex3_two_streams.yaml")
    artifact = torch.jit.load(str(out))
    pair = torch.load(str(fixtures_dir / "inputs" / "x1_x2.pt"))
    x1, x2 = tmp_path / "x1.pt", tmp_path / "x2.pt"
    torch.save(pair["x1"], x1)
    torch.save(pair["x2"], x2)
    code, stdout, stderr = run_stitch("run", out, "--input", f"x1={x1}",
                                      "--input", f"x2={x2}", "-o", tmp_path / "y.pt")
    assert code == 0, stderr
    with torch.no_grad():
        want = artifact(pair["x1"], pair["x2"])
    assert torch.allclose(torch.load(str(tmp_path / "y.pt")), want, atol=ATOL)


# --- the seed's shape bug ------------------------------------------------------

@pytest.mark.parametrize("command", ["check", "compose"])
def test_seed000_ex3_bug_is_refused(run_stitch, copy_example, tmp_path, command):
    spec = copy_example(BUGGY)
    before = files_in(tmp_path)
    args = [command, spec] + (["-o", tmp_path / "out.pt"] if command == "compose" else [])
    code, stdout, stderr = run_stitch(*args)
    assert_clean_error(code, stdout, stderr)
    assert "1936" in stderr and "2304" in stderr, stderr
    assert f"{BUGGY}:" in stderr, "the error should point into the spec"
    assert not (tmp_path / "out.pt").exists()
    assert files_in(tmp_path) == before, "stitch left files behind"


def test_seed000_ex3_bug_is_what_pytorch_rejects(example_models_dir):
    """The bug is real: running the seed's code as written fails in PyTorch."""
    m1 = torch.jit.load(str(example_models_dir / "seed000_ex3_model1.pt"))
    m2 = torch.jit.load(str(example_models_dir / "seed000_ex3_model2.pt"))
    with pytest.raises(RuntimeError):
        nn.Sequential(m1, m2)(torch.randn(1, 3, 24, 24))
