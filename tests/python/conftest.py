"""Shared fixtures for stitch's Python tests.

The tests run the real `stitch` binary and compare what it builds with the same
combination written by hand in PyTorch. Environment (set by ctest, see
tests/CMakeLists.txt):

  STITCH_BIN       the stitch binary (default: $STITCH_BUILD/stitch)
  STITCH_FIXTURES  models exported by tests/fixtures/make_fixtures.py at build
                   time (default: exported once per session into a temp dir)
  STITCH_SOURCE    the repository root (default: two folders up from here)
  STITCH_BUILD     the build folder (default: $STITCH_SOURCE/build)
  STITCH_TESTS_ASAN_OPTIONS  ASAN_OPTIONS for the stitch runs (scripts/sanitize.sh)

Run by hand:  /usr/bin/python3 -m pytest -q tests/python
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

# Debian 13's PyTorch 2.6 hangs in TorchScript's TensorExpr fuser when a
# scripted module (any, not only stitch's) trains on the CPU: the third
# forward+backward never returns. The tests' reference loops in Python turn
# it off; stitch's own training is not affected (docs/compatibility.md).
if int(torch.__version__.split(".")[0]) >= 2:
    torch._C._jit_set_texpr_fuser_enabled(False)

# The sanitized build's lighter settings for the many stitch runs of these
# tests (scripts/sanitize.sh says which checks they keep).
if os.environ.get("STITCH_TESTS_ASAN_OPTIONS"):
    os.environ["ASAN_OPTIONS"] = os.environ["STITCH_TESTS_ASAN_OPTIONS"]

SOURCE = Path(os.environ.get("STITCH_SOURCE") or Path(__file__).resolve().parents[2])
BUILD = Path(os.environ.get("STITCH_BUILD") or SOURCE / "build")
EXAMPLES = SOURCE / "examples"

# Things that must never appear on stderr: stitch ends with an `error:` line,
# never by a signal, an uncaught exception or (in the sanitized build of
# scripts/sanitize.sh, where a report exits 86) a sanitizer report.
CRASH_MARKERS = ("Traceback", "terminate called", "Aborted", "Segmentation fault",
                 "core dumped", "Exception raised from", "c10::Error",
                 "AddressSanitizer", "runtime error:", "LeakSanitizer")


def _stitch_path():
    env = os.environ.get("STITCH_BIN")
    return Path(env) if env else BUILD / "stitch"


@pytest.fixture(scope="session")
def stitch_bin():
    path = _stitch_path()
    if not path.is_file():
        if os.environ.get("STITCH_BIN"):
            pytest.fail(f"STITCH_BIN={path} does not exist")
        pytest.skip(f"no stitch binary at {path} (build it or set STITCH_BIN)")
    return path


def run_stitch_with(binary, *args, cwd=None, timeout=300):
    """Runs stitch; returns (exit code, stdout, stderr)."""
    proc = subprocess.run([str(binary), *[str(a) for a in args]], cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, errors="replace", timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="session")
def run_stitch(stitch_bin):
    """run_stitch(*args, cwd=None) -> (code, stdout, stderr)."""
    def run(*args, cwd=None, timeout=300):
        return run_stitch_with(stitch_bin, *args, cwd=cwd, timeout=timeout)
    return run


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory):
    """Folder of exported models (see tests/fixtures/README.md)."""
    env = os.environ.get("STITCH_FIXTURES")
    if env and (Path(env) / "fixtures.json").is_file():
        return Path(env)
    out = tmp_path_factory.mktemp("fixtures")
    subprocess.run([sys.executable, str(SOURCE / "tests" / "fixtures" / "make_fixtures.py"),
                    str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


@pytest.fixture(scope="session")
def example_models_dir(tmp_path_factory):
    """The model files of examples/, exported once per session."""
    out = tmp_path_factory.mktemp("example_models")
    subprocess.run([sys.executable, str(EXAMPLES / "make_models.py"), str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def example_specs():
    """Every example spec (file names), sorted."""
    return sorted(p.name for p in EXAMPLES.glob("*.yaml"))


def copy_example_to(spec_name, dest, models_dir):
    """Copies examples/<spec_name> into `dest` with the model files it names
    (same relative paths, taken from `models_dir`); returns the spec's path."""
    dest = Path(dest)
    src = EXAMPLES / spec_name
    spec = yaml.safe_load(src.read_text())
    for model in (spec.get("models") or {}).values():
        rel = Path(model["file"])
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(models_dir) / rel.name, target)
    shutil.copyfile(src, dest / spec_name)
    return dest / spec_name


@pytest.fixture
def copy_example(tmp_path, example_models_dir):
    """copy_example("seed000_ex1_chain.yaml") -> path of the spec copied into
    the test's temp dir, with the model files it names beside it."""
    def copy(spec_name, dest=None):
        return copy_example_to(spec_name, dest or tmp_path, example_models_dir)
    return copy


def spec_inputs(spec_path):
    """[(name, shape list, dtype string)] in declared order."""
    spec = yaml.safe_load(Path(spec_path).read_text())
    out = []
    for name, decl in spec["inputs"].items():
        if isinstance(decl, dict):
            out.append((name, decl["shape"], decl.get("dtype", "float")))
        else:
            out.append((name, decl, "float"))
    return out


def make_inputs(spec_path, batch, seed=0):
    """Random inputs for a spec, dynamic dims (identifiers) set to `batch`."""
    g = torch.Generator().manual_seed(seed)
    tensors = []
    for _, shape, dtype in spec_inputs(spec_path):
        dims = [batch if isinstance(d, str) else int(d) for d in shape]
        if dtype in ("int64", "long"):
            tensors.append(torch.randint(0, 10, dims, generator=g))
        else:
            tensors.append(torch.randn(*dims, generator=g))
    return tensors


def files_in(folder):
    """Every file under `folder`, relative, as a set of strings."""
    folder = Path(folder)
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def assert_clean_error(code, stdout, stderr, expected_code=1):
    """stitch refused cleanly: the exit status, an `error:` first line, no crash."""
    assert code == expected_code, (
        f"exit status {code}, expected {expected_code}\nstdout:\n{stdout}\nstderr:\n{stderr}")
    for marker in CRASH_MARKERS:
        assert marker not in stderr, f"{marker!r} on stderr:\n{stderr}"
        assert marker not in stdout, f"{marker!r} on stdout:\n{stdout}"
    if expected_code in (1, 2):
        lines = stderr.splitlines()
        assert lines and lines[0].startswith("error:"), (
            f"stderr's first line should start with 'error:':\n{stderr}")
        # PRODUCT.md: one error line, plus indented detail and fix: lines.
        loose = [line for line in lines[1:] if line and not line.startswith(" ")]
        assert not loose, f"unindented lines after the error line:\n{stderr}"


def copy_params(layer, params, prefix):
    """Copies the artifact's tensors `prefix.<name>` into `layer` (parameters
    and buffers), checking that the names and shapes match."""
    own = dict(layer.named_parameters())
    own.update(dict(layer.named_buffers()))
    with torch.no_grad():
        for name, tensor in own.items():
            key = f"{prefix}.{name}"
            assert key in params, (
                f"artifact has no {key!r}; it has: {sorted(params)}")
            assert params[key].shape == tensor.shape, (
                f"{key}: artifact shape {tuple(params[key].shape)}, "
                f"expected {tuple(tensor.shape)}")
            tensor.copy_(params[key])


def artifact_tensors(module):
    """name -> tensor for every parameter and buffer of a loaded artifact."""
    out = dict(module.named_parameters())
    out.update(dict(module.named_buffers()))
    return out


# --- models saved by a real PyTorch 2.x ----------------------------------------

DEBIAN13_ROOT = Path(os.environ.get("STITCH_DEBIAN13_ROOT", "/var/cache/stitch/debian13"))


def torch_major():
    return int(torch.__version__.split(".")[0])


def torch2_python():
    """The command that runs a PyTorch 2.x Python: this interpreter when its
    torch is 2.x (Debian 13), else Debian 13's inside the root that
    scripts/debian13.sh makes; None when neither is there."""
    if torch_major() >= 2:
        return [sys.executable]
    if (DEBIAN13_ROOT / ".stitch-debootstrap-done").is_file() and os.geteuid() == 0:
        return ["bash", str(SOURCE / "scripts" / "debian13.sh"), "python"]
    return None


def run_torch2(*args, timeout=600):
    """Runs a PyTorch 2.x Python on `args` (a script and its arguments);
    returns its stdout. Fails the test with its stderr when it fails."""
    command = torch2_python()
    assert command, "no PyTorch 2.x here (bash scripts/debian13.sh root makes one)"
    proc = subprocess.run([*command, *[str(a) for a in args]], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="session")
def torch2_models():
    """Folder of models saved by PyTorch 2.6 with 2.6's outputs for them
    (tests/fixtures/make_torch2_models.py), made once per build folder."""
    if torch2_python() is None:
        if os.environ.get("CI"):
            pytest.fail("no PyTorch 2.x for the compatibility tests: scripts/test.sh makes "
                        "the Debian 13 root first")
        pytest.skip("no PyTorch 2.x: run `bash scripts/debian13.sh root` (as root) first")
    out = BUILD / "torch2_models"
    script = SOURCE / "tests" / "fixtures" / "make_torch2_models.py"
    stamp = out / "torch2_models.json"
    if not stamp.is_file() or stamp.stat().st_mtime < script.stat().st_mtime:
        run_torch2(script, out)
    return out


@pytest.fixture(scope="session")
def compat_library():
    """libstitch_compat.so: loaded into this Python (torch.ops.load_library),
    it lets LibTorch 1.13 read the 2.x models too."""
    path = BUILD / "src" / "libstitch_compat.so"
    assert path.is_file(), f"{path} was not built"
    torch.ops.load_library(str(path))
    return path
