"""stitch refuses bad input cleanly.

Every case: exit status 1, stderr's first line starts with `error:`, no Python
traceback / `terminate called` / `Aborted` (stitch never ends by a signal or an
uncaught exception), and no output file left behind (nothing new in the folder).
Spec errors also point at the spec: `spec.yaml:LINE:COL`.
Bad command-line usage exits 2.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import assert_clean_error, files_in

# Each spec case: (id, spec text, models to copy in {name in tmp: fixture file},
#                  expected line(s) of the error or None, words stderr must contain)
# Line numbers are 1-based, counted in the spec text below.
SPEC_CASES = [
    ("bad_yaml_syntax",
     "inputs:\n"
     "  x: [N, 10\n"
     "graph:\n"
     "  - y = relu(x)\n"
     "outputs: [y]\n",
     {}, "any", []),
    ("unknown_op",
     "inputs:\n"
     "  x: [N, 10]\n"
     "graph:\n"
     "  - y = frobnicate(x)\n"
     "outputs: [y]\n",
     {}, [4], ["frobnicate"]),
    ("unknown_name",
     "inputs:\n"
     "  x: [N, 10]\n"
     "graph:\n"
     "  - y = relu(zz)\n"
     "outputs: [y]\n",
     {}, [4], ["zz"]),
    ("unknown_model_name",
     "inputs:\n"
     "  x: [N, 10]\n"
     "graph:\n"
     "  - y = nosuchmodel(x)\n"
     "outputs: [y]\n",
     {}, [4], ["nosuchmodel"]),
    ("name_assigned_twice",
     "inputs:\n"
     "  x: [N, 10]\n"
     "graph:\n"
     "  - y = relu(x)\n"
     "  - y = sigmoid(x)\n"
     "outputs: [y]\n",
     {}, [5], ["y"]),
    ("cycle_use_before_assignment",
     "inputs:\n"
     "  x: [N, 10]\n"
     "graph:\n"
     "  - a = relu(b)\n"
     "  - b = relu(a)\n"
     "outputs: [b]\n",
     {}, [4, 5], []),
    ("unknown_output",
     "inputs:\n"
     "  x: [N, 10]\n"
     "graph:\n"
     "  - y = relu(x)\n"
     "outputs: [nosuchoutput]\n",
     {}, [5], ["nosuchoutput"]),
    ("concat_rank_mismatch",
     "inputs:\n"
     "  a: [N, 5]\n"
     "  b: [N, 3, 2]\n"
     "graph:\n"
     "  - y = concat(a, b, dim=1)\n"
     "outputs: [y]\n",
     {}, [5], ["concat"]),
    ("model_input_does_not_fit",
     "inputs:\n"
     "  x: [N, 10]\n"
     "models:\n"
     "  m: {file: mlp_a.pt}\n"
     "graph:\n"
     "  - y = m(x)\n"
     "outputs: [y]\n",
     {"mlp_a.pt": "mlp_a.pt"}, [6], ["64", "10"]),
    ("linear_output_does_not_fit_model",
     "inputs:\n"
     "  x: [N, 10]\n"
     "models:\n"
     "  m: {file: mlp_a.pt}\n"
     "graph:\n"
     "  - y = m(linear(x, 32))\n"
     "outputs: [y]\n",
     {"mlp_a.pt": "mlp_a.pt"}, [6], ["64", "32"]),
    ("embedding_on_float_input",
     "inputs:\n"
     "  x: [N, 8]\n"
     "graph:\n"
     "  - y = embedding(x, 100, 16)\n"
     "outputs: [y]\n",
     {}, [4], ["float"]),
    ("unknown_model_key",
     "inputs:\n"
     "  x: [N, 100]\n"
     "models:\n"
     "  m: {file: seed004_mockcnn.pt, cutt: features}\n"
     "graph:\n"
     "  - y = m(x)\n"
     "outputs: [y]\n",
     {"seed004_mockcnn.pt": "seed004_mockcnn.pt"}, [4], ["cutt"]),
    ("cut_at_unknown_layer",
     "inputs:\n"
     "  x: [N, 100]\n"
     "models:\n"
     "  m: {file: seed004_mockcnn.pt, cut: featurez}\n"
     "graph:\n"
     "  - y = m(x)\n"
     "outputs: [y]\n",
     {"seed004_mockcnn.pt": "seed004_mockcnn.pt"}, None, ["featurez"]),
]

# Model files stitch must refuse: (id, how to make it from the fixtures dir).
BROKEN_MODELS = {
    "missing": None,
    "corrupt": lambda fx: Path(fx / "corrupt.pt").read_bytes(),
    "truncated": lambda fx: (lambda b: b[: len(b) // 2])(
        Path(fx / "seed000_ex1_model1.pt").read_bytes()),
    "empty": lambda fx: b"",
}

MODEL_SPEC = ("inputs:\n"
              "  x: [N, 10]\n"
              "models:\n"
              "  m: {file: model.pt}\n"
              "graph:\n"
              "  - y = m(x)\n"
              "outputs: [y]\n")


def _location_lines(stderr, spec_name="spec.yaml"):
    return [int(m.group(1)) for m in re.finditer(re.escape(spec_name) + r":(\d+):(\d+)", stderr)]


def _refused(run_stitch, tmp_path, *args):
    before = files_in(tmp_path)
    code, stdout, stderr = run_stitch(*args)
    assert_clean_error(code, stdout, stderr)
    assert files_in(tmp_path) == before, (
        f"stitch left files behind: {sorted(files_in(tmp_path) - before)}")
    return stderr


@pytest.mark.parametrize("command", ["compose", "check"])
@pytest.mark.parametrize("case", SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_bad_spec_is_refused(run_stitch, fixtures_dir, tmp_path, case, command):
    _, text, models, lines, words = case
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    for dst, src in models.items():
        shutil.copyfile(fixtures_dir / src, tmp_path / dst)
    args = [command, spec] + (["-o", tmp_path / "out.pt"] if command == "compose" else [])
    stderr = _refused(run_stitch, tmp_path, *args)
    for word in words:
        assert word in stderr, f"{word!r} not in:\n{stderr}"
    if lines is not None:
        found = _location_lines(stderr)
        assert found, f"no spec.yaml:LINE:COL in:\n{stderr}"
        if lines != "any":
            assert set(found) & set(lines), (
                f"expected the error at line {lines}, got {found}:\n{stderr}")


@pytest.mark.parametrize("kind", list(BROKEN_MODELS))
def test_bad_model_file_in_spec(run_stitch, fixtures_dir, tmp_path, kind):
    (tmp_path / "spec.yaml").write_text(MODEL_SPEC)
    make = BROKEN_MODELS[kind]
    if make is not None:
        (tmp_path / "model.pt").write_bytes(make(fixtures_dir))
    stderr = _refused(run_stitch, tmp_path, "compose", tmp_path / "spec.yaml",
                      "-o", tmp_path / "out.pt")
    assert "model.pt" in stderr, stderr


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "empty"])
def test_bad_model_file_in_chain(run_stitch, fixtures_dir, tmp_path, kind):
    (tmp_path / "a.pt").write_bytes(BROKEN_MODELS[kind](fixtures_dir))
    shutil.copyfile(fixtures_dir / "seed000_ex1_model2.pt", tmp_path / "b.pt")
    stderr = _refused(run_stitch, tmp_path, "chain", tmp_path / "a.pt", tmp_path / "b.pt",
                      "--input", "1x10", "-o", tmp_path / "out.pt")
    assert "a.pt" in stderr, stderr


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "empty"])
def test_bad_model_file_in_run(run_stitch, fixtures_dir, tmp_path, kind):
    (tmp_path / "m.pt").write_bytes(BROKEN_MODELS[kind](fixtures_dir))
    torch.save(torch.randn(2, 10), tmp_path / "x.pt")
    stderr = _refused(run_stitch, tmp_path, "run", tmp_path / "m.pt",
                      "--input", tmp_path / "x.pt", "-o", tmp_path / "y.pt")
    assert "m.pt" in stderr, stderr


def test_chain_shape_mismatch(run_stitch, fixtures_dir, tmp_path):
    """mlp_b expects 64 features; seed000_ex1_model1 gives 5."""
    for name in ("seed000_ex1_model1.pt", "mlp_b.pt"):
        shutil.copyfile(fixtures_dir / name, tmp_path / name)
    stderr = _refused(run_stitch, tmp_path, "chain", tmp_path / "seed000_ex1_model1.pt",
                      tmp_path / "mlp_b.pt", "--input", "1x10", "-o", tmp_path / "out.pt")
    assert "64" in stderr and "5" in stderr, stderr


def test_run_with_wrong_input_shape(run_stitch, fixtures_dir, tmp_path):
    shutil.copyfile(fixtures_dir / "seed000_ex1_model1.pt", tmp_path / "m.pt")
    torch.save(torch.randn(2, 7), tmp_path / "x.pt")
    _refused(run_stitch, tmp_path, "run", tmp_path / "m.pt", "--input", tmp_path / "x.pt",
             "-o", tmp_path / "y.pt")


RUN_ARTIFACT_CASES = {
    # name: (input tensors, extra args, the error line's text)
    "wrong_shape": ({"x": torch.randn(3, 7)}, [],
                    "error: input 'x': shape 3x7 does not fit the declared float[N, 10]"),
    "wrong_dtype": ({"x": torch.randn(3, 10).double()}, [],
                    "error: input 'x' holds float64 values; the model takes float[N, 10]"),
    "nan": ({"x": torch.tensor([[0.0] * 10, [float("nan")] + [0.0] * 9])}, [],
            "holds 1 NaN or Inf values (the first in sample 1)"),
    "zero_d_batched": ({"x": torch.tensor(1.0)}, ["--batch", "2"],
                       "error: input 'x': a single number (0-d) does not fit the declared float[N, 10]"),
}


@pytest.mark.parametrize("case", list(RUN_ARTIFACT_CASES), ids=list(RUN_ARTIFACT_CASES))
def test_run_checks_inputs_before_running(run_stitch, fixtures_dir, tmp_path, case):
    """An artifact's manifest declares its inputs: a tensor that does not fit
    is refused naming the input, not with LibTorch's text from inside."""
    tensors, extra, expected = RUN_ARTIFACT_CASES[case]
    code, _, err = run_stitch("chain", fixtures_dir / "seed000_ex1_model1.pt", "--input", "1x10",
                              "-o", tmp_path / "m.pt")
    assert code == 0, err
    torch.save(tensors["x"], tmp_path / "x.pt")
    stderr = _refused(run_stitch, tmp_path, "run", tmp_path / "m.pt",
                      "--input", tmp_path / "x.pt", "-o", tmp_path / "y.pt", *extra)
    assert expected in stderr, stderr


def test_run_in_batches_needs_inputs_of_one_length(run_stitch, fixtures_dir, tmp_path):
    torch.jit.script(TwoInputs()).save(str(tmp_path / "two.pt"))
    torch.save({"a": torch.randn(6, 3), "b": torch.randn(4, 3)}, tmp_path / "ab.pt")
    stderr = _refused(run_stitch, tmp_path, "run", tmp_path / "two.pt",
                      "--input", f"a={tmp_path / 'ab.pt'}", "--input", f"b={tmp_path / 'ab.pt'}",
                      "-o", tmp_path / "y.pt", "--batch", "2")
    assert ("error: --batch splits the inputs along dim 0, but input 'a' has 6 samples and "
            "input 'b' has 4") in stderr, stderr


class SumOfAll(torch.nn.Module):
    def forward(self, x):
        return x.sum()


def test_run_in_batches_refuses_a_0d_output_after_the_first_batch(run_stitch, tmp_path):
    """#20: a 0-d output cannot be joined; said after one batch, not after all."""
    torch.jit.script(SumOfAll()).save(str(tmp_path / "sum.pt"))
    torch.save(torch.randn(4000, 3), tmp_path / "x.pt")
    stderr = _refused(run_stitch, tmp_path, "run", tmp_path / "sum.pt", "--input",
                      tmp_path / "x.pt", "-o", tmp_path / "y.pt", "--batch", "2")
    assert ("--batch joins the outputs along dim 0, but output 'output' is a single number (0-d)"
            in stderr), stderr
    assert "fix: run without --batch" in stderr
    assert "batch 2/" not in stderr  # the progress never got past the first


def test_an_output_that_is_a_folder_gets_a_fix(run_stitch, tmp_path):
    torch.jit.script(SumOfAll()).save(str(tmp_path / "sum.pt"))
    (tmp_path / "out").mkdir()
    stderr = _refused(run_stitch, tmp_path, "chain", tmp_path / "sum.pt", "--input", "2x3",
                      "-o", tmp_path / "out")
    assert f"fix: name a file in it, like {tmp_path / 'out' / 'model.pt'}" in stderr, stderr


class TwoInputs(torch.nn.Module):
    def forward(self, a, b):
        return a[:2] + b[:2]


def test_run_with_corrupt_input_file(run_stitch, fixtures_dir, tmp_path):
    shutil.copyfile(fixtures_dir / "seed000_ex1_model1.pt", tmp_path / "m.pt")
    (tmp_path / "x.pt").write_bytes((fixtures_dir / "corrupt.pt").read_bytes())
    stderr = _refused(run_stitch, tmp_path, "run", tmp_path / "m.pt",
                      "--input", tmp_path / "x.pt", "-o", tmp_path / "y.pt")
    assert "x.pt" in stderr, stderr


def test_output_in_missing_folder(run_stitch, fixtures_dir, tmp_path):
    shutil.copyfile(fixtures_dir / "seed000_ex1_model1.pt", tmp_path / "model.pt")
    (tmp_path / "spec.yaml").write_text(MODEL_SPEC)
    _refused(run_stitch, tmp_path, "compose", tmp_path / "spec.yaml",
             "-o", tmp_path / "no" / "such" / "dir" / "out.pt")


def test_failed_compose_keeps_an_earlier_output(run_stitch, tmp_path):
    """A failure never touches an earlier file at -o."""
    out = tmp_path / "out.pt"
    out.write_bytes(b"earlier artifact")
    (tmp_path / "spec.yaml").write_text(SPEC_CASES[1][1])  # unknown op
    _refused(run_stitch, tmp_path, "compose", tmp_path / "spec.yaml", "-o", out)
    assert out.read_bytes() == b"earlier artifact"


USAGE_CASES = {
    "unknown_command": ["frobnicate"],
    "unknown_option": ["check", "spec.yaml", "--no-such-option"],
    "compose_without_spec": ["compose"],
    "compose_without_output": ["compose", "spec.yaml"],
    "chain_without_output": ["chain", "a.pt", "b.pt", "--input", "1x10"],
    "run_without_model": ["run"],
    "no_command": [],
    "batch_zero": ["run", "a.pt", "--input", "x.pt", "-o", "y.pt", "--batch", "0"],
    "batch_not_a_number": ["run", "a.pt", "--input", "x.pt", "-o", "y.pt", "--batch", "abc"],
    "negative_threads": ["--threads", "-1", "check", "spec.yaml"],
    "input_without_a_name": ["run", "a.pt", "--input", "=x.pt", "-o", "y.pt"],
    "input_given_twice": ["run", "a.pt", "--input", "x=x.pt", "--input", "x=x.pt", "-o", "y.pt"],
}


@pytest.mark.parametrize("args", list(USAGE_CASES.values()), ids=list(USAGE_CASES))
def test_bad_usage_exits_2(run_stitch, fixtures_dir, tmp_path, args):
    (tmp_path / "spec.yaml").write_text("inputs:\n  x: [N, 10]\ngraph:\n"
                                        "  - y = relu(x)\noutputs: [y]\n")
    shutil.copyfile(fixtures_dir / "seed000_ex1_model1.pt", tmp_path / "a.pt")
    shutil.copyfile(fixtures_dir / "seed000_ex1_model2.pt", tmp_path / "b.pt")
    before = files_in(tmp_path)
    code, stdout, stderr = run_stitch(*args, cwd=tmp_path)
    assert_clean_error(code, stdout, stderr, expected_code=2)
    assert stderr.strip(), "a usage error should say what is wrong on stderr"
    assert files_in(tmp_path) == before


def test_usage_errors_say_what_is_wrong_in_words(run_stitch):
    code, out, err = run_stitch("frobnicate")
    assert err.startswith("error: unknown command 'frobnicate'; the commands are compose, "), err
    code, out, err = run_stitch("run", "a.pt", "--input", "x.pt", "-o", "y.pt", "--batch", "0")
    assert err.splitlines() == ["error: --batch: must be a whole number >= 1, got '0'",
                                "  see 'stitch run --help'"], err


def test_a_closed_stdout_is_an_error_not_a_signal(stitch_bin, tmp_path):
    # PRODUCT.md: stitch never ends by a signal (here SIGPIPE).
    (tmp_path / "spec.yaml").write_text("inputs:\n  x: [N, 10]\ngraph:\n"
                                        "  - y = relu(x)\noutputs: [y]\n")
    proc = subprocess.Popen([str(stitch_bin), "check", str(tmp_path / "spec.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before stitch writes a byte
    stderr = proc.stderr.read().decode()
    code = proc.wait()
    assert code == 1, (code, stderr)
    assert stderr.startswith("error: could not write to standard output"), stderr


def test_a_model_with_an_operator_libtorch_lacks_names_it(run_stitch, tmp_path):
    """A model from a newer PyTorch can use an operator this LibTorch does
    not have: the error names the file, the operator and the version, and
    says how to re-export. Made here by renaming an operator in the saved
    code, as a newer exporter would write it."""
    import zipfile
    torch.jit.script(torch.nn.ReLU()).save(str(tmp_path / "relu.pt"))
    newer = tmp_path / "newer.pt"
    with zipfile.ZipFile(tmp_path / "relu.pt") as src, zipfile.ZipFile(newer, "w") as dst:
        renamed = False
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith(".py") and b"torch.relu(" in data:
                data = data.replace(b"torch.relu(", b"torch.fancy_new_relu(")
                renamed = True
            dst.writestr(item, data)
        assert renamed
    for args in (["inspect", newer], ["chain", newer, "--input", "1x4", "-o", tmp_path / "o.pt"]):
        code, out, err = run_stitch(*args)
        assert_clean_error(code, out, err)
        version = torch.__version__.split("a")[0].split("+")[0]
        assert (f"cannot load {newer}: it calls the operator aten::fancy_new_relu, which "
                f"LibTorch {version} does not have and stitch does not add") in err, err
        assert "fix: re-script the model in Python without that operator" in err, err
        assert not (tmp_path / "o.pt").exists()


class _DictHead(torch.nn.Module):
    def forward(self, x):
        return {"out": x * 2, "aux": x}


def test_a_dict_output_fix_names_its_real_key(run_stitch, tmp_path):
    torch.jit.script(_DictHead()).save(str(tmp_path / "high.pt"))
    spec = tmp_path / "spec.yaml"
    spec.write_text("inputs: {x: [N, 4]}\nmodels:\n  high: {file: high.pt}\n"
                    "graph:\n  - y = high(x)\noutputs: [y]\n")
    code, out, err = run_stitch("check", spec)
    assert_clean_error(code, out, err)
    assert "fix: pick one element, e.g. y[\"aux\"]" in err or \
        "fix: pick one element, e.g. y[\"out\"]" in err, err


def test_bytes_from_a_file_reach_the_terminal_escaped(stitch_bin, tmp_path):
    """A .safetensors header with a terminal escape and a byte that is not
    UTF-8: stderr stays valid UTF-8 and carries neither raw."""
    import struct
    import subprocess
    torch.jit.script(torch.nn.Linear(4, 2)).save(str(tmp_path / "m.pt"))
    header = b'{"\xff\xfeevil\x1b[2J": {"dtype": "F32", "shape": [1, 4], "data_offsets": [0, 16]}}'
    (tmp_path / "x.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    proc = subprocess.run([str(stitch_bin), "run", tmp_path / "m.pt", "--input",
                           f"input={tmp_path / 'x.safetensors'}", "-o", tmp_path / "y.pt"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr.decode("utf-8")  # raises if a raw non-UTF-8 byte got through
    assert err.startswith("error: ") and "\x1b" not in err, err


def test_a_spec_with_a_second_yaml_document_is_refused(tmp_path, run_stitch):
    """PRODUCT.md: a spec is one YAML file; a second document was ignored."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("inputs: {x: [N, 4]}\ngraph:\n  - y = relu(x)\noutputs: [y]\n"
                    "---\ngraph:\n  - z = relu(x)\n")
    code, out, err = run_stitch("check", spec)
    assert_clean_error(code, out, err)
    assert "spec.yaml:6:1: a second YAML document" in err, err
    # A trailing '---' with nothing after it is still one spec.
    spec.write_text("inputs: {x: [N, 4]}\ngraph:\n  - y = relu(x)\noutputs: [y]\n---\n")
    code, out, err = run_stitch("check", spec)
    assert code == 0, err


def test_version_names_the_libtorch_it_was_built_with(run_stitch):
    code, out, err = run_stitch("--version")
    assert code == 0, err
    libtorch = torch.__version__.split("a")[0].split("+")[0]  # 1.13.0a0 -> 1.13.0
    assert out.startswith("stitch ") and f"(LibTorch {libtorch})" in out, out


@pytest.mark.parametrize("command", ["bench", "run", "train", "compose"])
def test_every_command_help_names_threads(run_stitch, command):
    """#20: `bench --help` did not show --threads, an option of stitch itself."""
    code, out, err = run_stitch(command, "--help")
    assert code == 0, err
    assert "--threads INT" in out, out


def test_a_huge_unknown_name_is_quoted_in_part(tmp_path, run_stitch):
    """#21: a 100 MB unknown name printed 100 MB to stderr; quotes are capped
    and say how much was left out."""
    spec = tmp_path / "spec.yaml"
    name = "a" * (10 << 20)
    spec.write_text(f"inputs:\n  x: [N, 4]\ngraph:\n  - y = {name}(x)\noutputs: [y]\n")
    code, out, err = run_stitch("check", spec)
    assert_clean_error(code, out, err)
    assert len(err) < 25000, len(err)
    assert "more bytes left out)" in err, err[-300:]
