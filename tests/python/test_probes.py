"""Shape probes on models with integer inputs: stitch learns a model's output
shape by running it on example inputs, and those must be values the model
accepts. A lengths input (torchaudio's Conformer takes `(input, lengths)`)
gets the sequence length; any other integer input gets the spec's `probe:`
value, and when it has none and the test run fails, the error shows the
inputs stitch made and suggests `probe:`.

Every artifact is compared with PyTorch running the same model by hand, in
Python (torch.jit.load) and in C++ (`stitch run`).
"""

import re
import textwrap

import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from conftest import assert_clean_error

ATOL = 1e-4


class Packed(nn.Module):
    """A GRU over padded sequences, as speech and text models run one: the
    integer input `frames` (not named *len*) says how many frames of each
    sample are real, and must be at least 2."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(80, 32, batch_first=True)

    def forward(self, x, frames):
        torch._assert(bool((frames >= 2).all()), "every sample needs at least 2 frames")
        packed = pack_padded_sequence(x, frames, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        y, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return y


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import torchaudio
    out = tmp_path_factory.mktemp("probe_models")
    torch.manual_seed(0)
    conformer = torchaudio.models.Conformer(input_dim=80, num_heads=4, ffn_dim=128,
                                            num_layers=2, depthwise_conv_kernel_size=31)
    torch.jit.script(conformer.eval()).save(str(out / "conformer.pt"))
    torch.jit.script(Packed().eval()).save(str(out / "packed.pt"))
    return out


def write_spec(tmp_path, text):
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(text))
    return spec


def compose(run_stitch, tmp_path, text):
    """Composes the spec and checks the artifact with `stitch verify`, whose
    random inputs follow the same rules as check's probes."""
    spec = write_spec(tmp_path, text)
    out = tmp_path / "out.pt"
    code, stdout, stderr = run_stitch("compose", spec, "-o", out)
    assert code == 0, f"compose failed ({code}):\n{stdout}\n{stderr}"
    code, stdout, stderr = run_stitch("verify", out, spec)
    assert code == 0, f"verify failed ({code}):\n{stdout}\n{stderr}"
    return out


def run_in_cpp(run_stitch, tmp_path, artifact, **inputs):
    args = []
    for name, tensor in inputs.items():
        torch.save(tensor, tmp_path / f"{name}.pt")
        args += ["--input", f"{name}={tmp_path / f'{name}.pt'}"]
    code, _, stderr = run_stitch("run", artifact, *args, "-o", tmp_path / "y.pt")
    assert code == 0, stderr
    outputs = torch.load(str(tmp_path / "y.pt"))
    return outputs if isinstance(outputs, dict) else {"y": outputs}


def close(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=ATOL), (a - b).abs().max().item()


CONFORMER = """
    inputs:
      feats: [N, T, 80]
      lengths: {{shape: [N], dtype: int64}}
    models:
      c: {{file: {file}}}
    graph:
      - encoded = c(feats, lengths)
      - y = linear(encoded[0], 10)
      - out_lengths = encoded[1]
    outputs: [y, out_lengths]
"""


def test_check_learns_a_conformers_shapes_from_its_lengths(run_stitch, models, tmp_path):
    spec = write_spec(tmp_path, CONFORMER.format(file=models / "conformer.pt"))
    code, stdout, stderr = run_stitch("check", spec)
    assert code == 0, stderr
    assert "(float[N, T, 80], int64[N])" in stdout, stdout
    assert re.search(r"^y +linear\(encoded\[0\], 10\) +float\[N, T, 10\]", stdout, re.M), stdout


def test_a_conformer_in_a_graph_equals_pytorch_in_python_and_cpp(run_stitch, models, tmp_path):
    out = compose(run_stitch, tmp_path, CONFORMER.format(file=models / "conformer.pt"))
    art = torch.jit.load(str(out))
    conformer = torch.jit.load(str(models / "conformer.pt"))
    head = dict(art.named_parameters())
    weight = next(v for k, v in head.items() if k.endswith("weight") and v.shape == (10, 80))
    bias = next(v for k, v in head.items() if k.endswith("bias") and v.shape == (10,))
    feats = torch.randn(3, 20, 80)
    lengths = torch.tensor([20, 13, 7])
    with torch.no_grad():
        encoded, want_lengths = conformer(feats, lengths)
        want = encoded @ weight.T + bias
        got = art(feats, lengths)
    close(got["y"], want)
    assert torch.equal(got["out_lengths"], want_lengths)
    from_cpp = run_in_cpp(run_stitch, tmp_path, out, feats=feats, lengths=lengths)
    close(from_cpp["y"], want)
    assert torch.equal(from_cpp["out_lengths"], want_lengths)


PACKED = """
    inputs:
      x: [N, T, 80]
      frames: {{shape: [N], dtype: int64{probe}}}
    models:
      rnn: {{file: {file}}}
    graph:
      - y = rnn(x, frames)
    outputs: [y]
"""


def test_an_integer_input_the_test_run_cannot_guess_is_explained(run_stitch, models, tmp_path):
    spec = write_spec(tmp_path, PACKED.format(file=models / "packed.pt", probe=""))
    code, stdout, stderr = run_stitch("check", spec)
    assert_clean_error(code, stdout, stderr)
    assert "fails in the test run stitch makes to learn its output shape" in stderr, stderr
    assert "frames: int64[2] random ids 0-1" in stderr, stderr  # the inputs it made
    assert "every sample needs at least 2 frames" in stderr, stderr  # the model's own error
    assert "probe:" in stderr, stderr  # the fix


def test_probe_gives_an_integer_input_its_value_and_the_numbers_match(run_stitch, models,
                                                                      tmp_path):
    out = compose(run_stitch, tmp_path,
                  PACKED.format(file=models / "packed.pt", probe=", probe: T"))
    packed = torch.jit.load(str(models / "packed.pt"))
    x = torch.randn(3, 12, 80)
    frames = torch.tensor([12, 5, 9])
    with torch.no_grad():
        want = packed(x, frames)
        close(torch.jit.load(str(out))(x, frames), want)
    close(run_in_cpp(run_stitch, tmp_path, out, x=x, frames=frames)["y"], want)


@pytest.mark.parametrize("inputs, expected", [
    ("{x: {shape: [N, T, 80], probe: 3}, frames: {shape: [N], dtype: int64}}",
     "input 'x': probe: sets the value of integer inputs; float inputs are random"),
    ("{x: [N, T, 80], frames: {shape: [N], dtype: int64, probe: S}}",
     "input 'frames': probe: S uses 'S', which no input's shape has"),
    ("{x: [N, T, 80], frames: {shape: [N], dtype: int64, probe: [T]}}",
     "probe: of input 'frames' must be an integer or a name like N, got a list"),
])
def test_a_bad_probe_is_refused(run_stitch, models, tmp_path, inputs, expected):
    spec = write_spec(tmp_path, f"""
        inputs: {inputs}
        models:
          rnn: {{file: {models / "packed.pt"}}}
        graph:
          - y = rnn(x, frames)
        outputs: [y]
    """)
    code, stdout, stderr = run_stitch("check", spec)
    assert_clean_error(code, stdout, stderr)
    assert expected in stderr, stderr
