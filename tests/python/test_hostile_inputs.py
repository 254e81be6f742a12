"""Hostile inputs: whatever file stitch is handed, it refuses it cleanly (issue #6).

Each case copies files of the corpus in tests/bad_inputs/ (its README.md lists
every case, the door it goes through and the error it must give) into an empty
work folder and runs the real binary there. Every case must

- exit with status 1 within TIME_BOUND seconds, under an address-space limit
  of MEMORY_BOUND bytes, without an out-of-memory message: a refusal is a
  check, not running out of memory;
- print exactly one line starting with `error:` on stderr, the lines after it
  indented, and no crash marker;
- leave the work folder as it was: no new file (no temporary file either),
  every input and every earlier output with the same bytes and mtime.

A case marked xfail (strict) is a known failure in a file this test does not
own; the reason names it.
"""

import hashlib
import importlib.util
import os
import resource
import stat
import subprocess
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from conftest import CRASH_MARKERS, SOURCE

CORPUS = SOURCE / "tests" / "bad_inputs"
TIME_BOUND = 20  # seconds per case (a few on an idle machine)
XFAIL_TIME_BOUND = 5  # a known hang need not take the whole bound
MEMORY_BOUND = 4 << 30  # RLIMIT_AS; LibTorch itself needs about 1 GB of it
FILE_SIZE_BOUND = 256  # RLIMIT_FSIZE (bytes) of the `ulimit -f` cases
OUT_OF_MEMORY = ("bad_alloc", "out of memory", "can't allocate memory")

_spec = importlib.util.spec_from_file_location("make_bad_inputs", CORPUS / "make_bad_inputs.py")
make_bad_inputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_bad_inputs)


# --- how a case's files are made ------------------------------------------------

class Link(str):
    """A symlink to this path (a device, a FIFO beside it)."""


class Text(bytes):
    """A file with these bytes (an earlier output, say)."""


class Edited(tuple):
    """Edited(corpus name, old, new): a corpus text file with old replaced."""


DIR, FIFO = "<a directory>", "<a FIFO>"
EARLIER = Text(b"an earlier output, which must survive\n")
# The file the harmful models write (make_bad_inputs.VICTIM), as it must stay.
VICTIM = {make_bad_inputs.VICTIM: Text(b"12345678")}
FILE_OPS = "reads or writes files"
SHORT_PROBES = {"STITCH_PROBE_SECONDS": "2"}

# Where the tmpfs of a `mount` case goes, and what is done to it.
MOUNTS = {"full": "size=1m", "ro": "size=1m,ro"}

Case = namedtuple("Case", "id args files expect xfail limit_fsize mount env",
                  defaults=(None, False, None, None))

MODEL = {"model.pt": "model_ok.pt"}
SPEC_ON = lambda model: {"spec.yaml": "model.yaml", "model.pt": model}  # noqa: E731
TRAIN_ON = lambda data, name="data.pt": {  # noqa: E731
    "spec.yaml": Edited(("train.yaml", "data: data.pt", f"data: {name}")), name: data}
RUN_ON = lambda tensor, name="x.npy": ({**MODEL, name: tensor},  # noqa: E731
                                       ["run", "model.pt", "--input", name, "-o", "y.npy"])


def _run_case(files_and_args, **kw):
    files, args = files_and_args
    return dict(files=files, args=args, **kw)


CASES = [
    # --- specs: nesting, long lines, odd bytes, odd numbers -----------------------
    Case("spec_deep_calls", ["check", "s.yaml"], {"s.yaml": "spec_deep_calls.yaml"},
         "nested too deeply"),
    Case("spec_deep_parens", ["compose", "s.yaml", "-o", "out.pt"],
         {"s.yaml": "spec_deep_parens.yaml", "out.pt": EARLIER}, "nested too deeply"),
    Case("spec_deep_lists", ["inspect", "s.yaml"], {"s.yaml": "spec_deep_lists.yaml"},
         "nested too deeply"),
    Case("spec_deep_yaml", ["graph", "s.yaml", "-o", "g.svg"], {"s.yaml": "spec_deep_yaml.yaml"},
         "s.yaml:1:"),
    Case("spec_deep_calls_train", ["train", "s.yaml"], {"s.yaml": "spec_deep_calls.yaml"},
         "nested too deeply"),
    Case("spec_long_name", ["check", "s.yaml"], {"s.yaml": "spec_long_name.yaml"},
         "unknown name"),
    Case("spec_long_comment", ["compose", "s.yaml", "-o", "out.pt"],
         {"s.yaml": "spec_long_comment.yaml"}, "frobnicate"),
    Case("spec_long_sum", ["check", "s.yaml"], {"s.yaml": "spec_long_sum.yaml"},
         "do not broadcast"),
    Case("spec_many_statements", ["check", "s.yaml"], {"s.yaml": "spec_many_statements.yaml"},
         "s.yaml:20004:"),
    Case("spec_invalid_utf8", ["check", "s.yaml"], {"s.yaml": "spec_invalid_utf8.yaml"},
         "s.yaml:4:"),
    Case("spec_nul_byte", ["inspect", "s.yaml"], {"s.yaml": "spec_nul_byte.yaml"}, "s.yaml:4:"),
    Case("dim_zero", ["compose", "s.yaml", "-o", "out.pt"], {"s.yaml": "dim_zero.yaml"},
         "must be positive"),
    Case("dim_negative", ["graph", "s.yaml", "-o", "g.dot"], {"s.yaml": "dim_negative.yaml"},
         "must be positive"),
    Case("dim_negative_verify", ["verify", "model.pt", "s.yaml"],
         {**MODEL, "s.yaml": "dim_negative.yaml"}, "must be positive"),
    Case("dim_huge_check", ["check", "s.yaml"], {"s.yaml": "dim_huge.yaml"}, "1099511627776"),
    Case("dim_huge", ["compose", "s.yaml", "-o", "out.pt"], {"s.yaml": "dim_huge.yaml"},
         "1099511627776"),
    Case("linear_huge", ["compose", "s.yaml", "-o", "out.pt"], {"s.yaml": "linear_huge.yaml"},
         "1099511627776"),
    Case("embedding_huge", ["compose", "s.yaml", "-o", "out.pt"],
         {"s.yaml": "embedding_huge.yaml"}, "1099511627776"),
    Case("reshape_huge", ["check", "s.yaml"], {"s.yaml": "reshape_huge.yaml"}, "too large"),
    Case("unicode_names", ["compose", "s.yaml", "-o", "out.pt"],
         {"s.yaml": "unicode_names.yaml"}, "not an identifier"),
    Case("unicode_model_file", ["check", "s.yaml"], {"s.yaml": "unicode_model_file.yaml"},
         "モデル 🙂.pt: no such file"),
    Case("inf_argument", ["compose", "s.yaml", "-o", "out.pt"], {"s.yaml": "nan_scale.yaml"},
         "too large"),
    Case("zero_std", ["check", "s.yaml"], {"s.yaml": "nan_normalize.yaml"}, "must not be 0"),
    Case("train_nan_lr", ["train", "s.yaml"], {"s.yaml": "train_nan_lr.yaml"},
         "train.lr: expected a finite number, got '.nan'"),
    Case("train_inf_lr", ["train", "s.yaml"], {"s.yaml": "train_inf_lr.yaml"},
         "train.lr: expected a finite number, got '-.inf'"),
    Case("train_nan_val_split", ["train", "s.yaml"],
         {"s.yaml": "train_nan_val_split.yaml", "data.pt": "train_data_ok.pt"},
         "train.val_split: expected a finite number"),
    Case("train_batch_zero", ["train", "s.yaml"], {"s.yaml": "train_batch_zero.yaml"}, "got 0"),
    Case("train_negative_epochs", ["train", "s.yaml"], {"s.yaml": "train_negative_epochs.yaml"},
         "got -5"),

    # --- TorchScript models: truncated, bit-flipped, lying about sizes ----------
    *[Case(f"{name}_inspect", ["inspect", "m.pt"], {"m.pt": f"{name}.pt"}, "m.pt")
      for name in ("model_empty", "model_text", "model_truncated_head", "model_truncated_half",
                   "model_bitflip_pickle", "model_bitflip_code", "model_overlapping_entries")],
    Case("model_truncated_half_chain", ["chain", "a.pt", "model.pt", "--input", "1x10", "-o",
                                        "out.pt"],
         {**MODEL, "a.pt": "model_truncated_half.pt", "out.pt": EARLIER}, "a.pt"),
    Case("model_bitflip_pickle_chain", ["chain", "model.pt", "b.pt", "--input", "1x10", "-o",
                                        "out.pt"],
         {**MODEL, "b.pt": "model_bitflip_pickle.pt"}, "b.pt"),
    Case("model_bitflip_central_run", ["run", "m.pt", "--input", "x.npy", "-o", "y.npy"],
         {"m.pt": "model_bitflip_central.pt", "x.npy": "x_ok.npy"}, "m.pt"),
    Case("model_truncated_tail_run", ["run", "m.pt", "--input", "x.npy", "-o", "y.npy"],
         {"m.pt": "model_truncated_tail.pt", "x.npy": "x_ok.npy", "y.npy": EARLIER}, "m.pt"),
    Case("model_huge_declared_size_graph", ["graph", "m.pt", "-o", "g.svg"],
         {"m.pt": "model_huge_declared_size.pt"}, "m.pt"),
    *[Case(f"model_deep_code_{cmd[0]}", cmd, files, "nests 10000 levels deep at line")
      for cmd, files in [(["inspect", "m.pt"], {"m.pt": "model_deep_code.pt"}),
                         (["check", "spec.yaml"], SPEC_ON("model_deep_code.pt")),
                         (["run", "m.pt", "--input", "x.npy", "-o", "y.npy"],
                          {"m.pt": "model_deep_code.pt", "x.npy": "x_ok.npy"})]],
    Case("model_huge_declared_code_inspect", ["inspect", "m.pt"],
         {"m.pt": "model_huge_declared_code.pt"}, "more than 64 times the file"),
    Case("model_zeros_graph", ["graph", "m.pt", "-o", "g.dot"], {"m.pt": "model_zeros.pt"},
         "m.pt"),
    Case("model_bitflip_code_compose", ["compose", "spec.yaml", "-o", "out.pt"],
         SPEC_ON("model_bitflip_code.pt"), "model.pt"),
    Case("model_overlapping_entries_compose", ["compose", "spec.yaml", "-o", "out.pt"],
         SPEC_ON("model_overlapping_entries.pt"), "model.pt"),
    Case("model_truncated_half_verify", ["verify", "a.pt", "spec.yaml"],
         {**SPEC_ON("model_ok.pt"), "a.pt": "model_truncated_half.pt"}, "a.pt"),

    # --- models whose code writes files or never returns (#21) -------------------------
    *[Case(f"{name}_{cmd[0]}", cmd, {**files, **VICTIM}, expect)
      for name, expect in [("model_from_file_on_load", "calls torch.from_file"),
                           ("model_from_file_forward", "calls torch.from_file"),
                           ("model_save_forward", "calls torch.save")]
      for cmd, files in [(["inspect", "m.pt"], {"m.pt": f"{name}.pt"}),
                         (["check", "spec.yaml"], SPEC_ON(f"{name}.pt")),
                         (["chain", "a.pt", "model.pt", "--input", "1x10", "-o", "out.pt"],
                          {**MODEL, "a.pt": f"{name}.pt"})]],
    Case("model_spins_forward_check", ["check", "spec.yaml"], SPEC_ON("model_spins_forward.pt"),
         "did not return within 2 s of a probe run", env=SHORT_PROBES),
    Case("model_spins_forward_inspect", ["inspect", "m.pt", "--input", "1x10"],
         {"m.pt": "model_spins_forward.pt"}, "did not return within 2 s", env=SHORT_PROBES),
    Case("model_spins_on_load_compose", ["compose", "spec.yaml", "-o", "out.pt"],
         SPEC_ON("model_spins_on_load.pt"), "did not end within 2 s", env=SHORT_PROBES),

    # --- artifacts whose stitch metadata is broken ----------------------------------
    Case("artifact_spec_not_yaml_graph", ["graph", "a.pt", "-o", "g.dot"],
         {"a.pt": "artifact_spec_not_yaml.pt"}, "invalid YAML"),
    Case("artifact_spec_huge_dims_graph", ["graph", "a.pt", "-o", "g.dot"],
         {"a.pt": "artifact_spec_huge_dims.pt", "model.pt": "model_ok.pt"}, "1099511627776"),

    # --- tensor files for `run` ---------------------------------------------------------
    *[Case(f"{name}_run", **_run_case(RUN_ON(name + ext, "x" + ext)), expect=expect)
      for name, ext, expect in [
          ("npy_truncated", ".npy", "declares 48 bytes"),
          ("npy_header_past_end", ".npy", "truncated"),
          ("npy_huge_shape", ".npy", "too large"),
          ("npy_size_overflow", ".npy", "too large"),
          ("npy_negative_shape", ".npy", "negative"),
          ("npy_object_dtype", ".npy", "unsupported dtype"),
          ("st_header_size_huge", ".safetensors", "9223372036854775808"),
          ("st_header_deep", ".safetensors", "x.safetensors"),
          ("st_offsets_overlap", ".safetensors", "overlap"),
          ("st_offsets_past_end", ".safetensors", "outside"),
          ("st_huge_shape", ".safetensors", "too large"),
          ("st_negative_shape", ".safetensors", "negative"),
          ("tensor_short_storage", ".pt", "declares 120 bytes"),
          ("tensor_truncated", ".pt", "x.pt"),
          ("tensor_not_a_tensor", ".pt", "not a tensor")]],

    # --- training data ------------------------------------------------------------------
    Case("train_data_inf", ["train", "spec.yaml"], TRAIN_ON("train_data_inf.pt"), "NaN or Inf"),
    Case("train_data_nan_npy_folder", ["train", "spec.yaml"],
         TRAIN_ON("train_data_nan", "data"), "NaN or Inf"),
    Case("train_data_zero_samples", ["train", "spec.yaml"],
         TRAIN_ON("train_data_zero_samples.pt"), "none to train on"),
    Case("train_data_zero_width", ["train", "spec.yaml"], TRAIN_ON("train_data_zero_width.pt"),
         "declared"),
    Case("train_data_huge_shape", ["train", "spec.yaml"],
         TRAIN_ON("st_huge_shape.safetensors", "data.safetensors"), "too large"),
    Case("train_data_truncated", ["train", "spec.yaml"],
         TRAIN_ON("tensor_truncated.pt"), "data.pt"),

    # --- directories, devices and FIFOs where a file should be ------------------------
    Case("dir_as_spec", ["check", "d.yaml"], {"d.yaml": DIR}, "d.yaml"),
    Case("dir_as_model", ["inspect", "d.pt"], {"d.pt": DIR}, "is a directory"),
    Case("dir_as_chain_model", ["chain", "d.pt", "model.pt", "--input", "1x10", "-o", "out.pt"],
         {**MODEL, "d.pt": DIR}, "is a directory"),
    Case("dir_as_input", **_run_case(RUN_ON(DIR, "d.npy")), expect="no .npy files"),
    Case("dir_as_artifact", ["verify", "d.pt", "spec.yaml"], {**SPEC_ON("model_ok.pt"),
                                                              "d.pt": DIR}, "is a directory"),
    Case("dev_null_as_spec", ["check", "n.yaml"], {"n.yaml": Link("/dev/null")}, "n.yaml"),
    Case("dev_null_as_model", ["inspect", "n.pt"], {"n.pt": Link("/dev/null")},
         "character device"),
    Case("dev_null_as_input", **_run_case(RUN_ON(Link("/dev/null"), "n.npy")),
         expect="character device"),
    Case("dev_zero_as_spec", ["check", "z.yaml"], {"z.yaml": Link("/dev/zero")}, "z.yaml"),
    Case("dev_zero_as_model", ["chain", "z.pt", "model.pt", "--input", "1x10", "-o", "out.pt"],
         {**MODEL, "z.pt": Link("/dev/zero")}, "character device"),
    Case("dev_zero_as_input", **_run_case(RUN_ON(Link("/dev/zero"), "z.safetensors")),
         expect="character device"),
    Case("dev_zero_as_train_data", ["train", "spec.yaml"], TRAIN_ON(Link("/dev/zero")),
         "character device"),
    Case("dev_zero_as_artifact", ["graph", "z.pt", "-o", "g.dot"], {"z.pt": Link("/dev/zero")},
         "character device"),
    Case("fifo_as_spec", ["check", "f.yaml"], {"f.yaml": FIFO}, "f.yaml"),
    Case("fifo_as_model", ["inspect", "f.pt"], {"f.pt": FIFO}, "FIFO"),
    Case("fifo_as_spec_model", ["compose", "spec.yaml", "-o", "out.pt"], SPEC_ON(FIFO), "FIFO"),
    Case("fifo_as_input", **_run_case(RUN_ON(FIFO, "f.npy")), expect="FIFO"),
    Case("fifo_as_train_data", ["train", "spec.yaml"], TRAIN_ON(FIFO), "FIFO"),

    # --- outputs that cannot be written -----------------------------------------------
    Case("output_is_dir", ["compose", "spec.yaml", "-o", "out.pt"],
         {**SPEC_ON("model_ok.pt"), "out.pt": DIR}, "is a directory"),
    Case("output_dev_full", ["compose", "spec.yaml", "-o", "full.pt"],
         {**SPEC_ON("model_ok.pt"), "full.pt": Link("/dev/full")}, "character device"),
    Case("output_dev_full_run", ["run", "model.pt", "--input", "x.npy", "-o", "full.npy"],
         {**MODEL, "x.npy": "x_ok.npy", "full.npy": Link("/dev/full")}, "character device"),
    Case("output_dev_full_graph", ["graph", "spec.yaml", "-o", "full.dot"],
         {**SPEC_ON("model_ok.pt"), "full.dot": Link("/dev/full")}, "character device"),
    Case("output_stdout", ["compose", "spec.yaml", "-o", "/dev/stdout"],
         SPEC_ON("model_ok.pt"), "FIFO"),
    Case("output_under_a_file", ["compose", "spec.yaml", "-o", "model.pt/out.pt"],
         SPEC_ON("model_ok.pt"), "not a folder"),
    Case("output_under_a_file_run", ["run", "model.pt", "--input", "x.npy", "-o", "x.npy/y.npy"],
         {**MODEL, "x.npy": "x_ok.npy"}, "not a folder"),
    Case("output_under_a_file_train", ["train", "s.yaml"],
         {"s.yaml": "train_out_under_file.yaml", "data.pt": "train_data_ok.pt"},
         "cannot create the output folder"),
    Case("output_in_proc", ["compose", "spec.yaml", "-o", "/proc/stitch-out.pt"],
         SPEC_ON("model_ok.pt"), "/proc/stitch-out.pt"),
    Case("output_read_only_folder", ["compose", "spec.yaml", "-o", "ro/out.pt"],
         SPEC_ON("model_ok.pt"), "Read-only file system", mount="ro"),
    Case("output_full_disk", ["compose", "spec.yaml", "-o", "full/out.pt"],
         {**SPEC_ON("model_ok.pt"), "full/out.pt": EARLIER}, "is full", mount="full"),
    Case("output_full_disk_run", ["run", "model.pt", "--input", "x.npy", "-o", "full/y.npy"],
         {**MODEL, "x.npy": "x_big.npy", "full/y.npy": EARLIER}, "is full", mount="full"),
    Case("output_full_disk_graph", ["graph", "spec.yaml", "-o", "full/g.dot"],
         {**SPEC_ON("model_ok.pt"), "full/g.dot": EARLIER}, "is full", mount="full"),
    Case("output_file_size_limit", ["compose", "spec.yaml", "-o", "out.pt"],
         {**SPEC_ON("model_ok.pt"), "out.pt": EARLIER}, "ulimit -f", limit_fsize=True),
    Case("output_file_size_limit_run", ["run", "model.pt", "--input", "x.npy", "-o", "y.npy"],
         {**MODEL, "x.npy": "x_big.npy", "y.npy": EARLIER}, "ulimit -f", limit_fsize=True),
    Case("output_file_size_limit_graph", ["graph", "spec.yaml", "-o", "g.dot"],
         {**SPEC_ON("model_ok.pt"), "g.dot": EARLIER}, "ulimit -f", limit_fsize=True),
]


# --- the corpus and the work folder ---------------------------------------------------

@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """name -> path: the committed specs and the generated files."""
    out = tmp_path_factory.mktemp("bad_inputs")
    make_bad_inputs.write_all(out)
    np.save(out / "x_ok.npy", np.ones((2, 10), dtype=np.float32))
    np.save(out / "x_big.npy", np.ones((4096, 10), dtype=np.float32))  # y: 80 KB
    files = {p.name: p for p in out.iterdir()}
    files.update({p.name: p for p in (CORPUS / "specs").glob("*.yaml")})
    return files


def place(path, source, corpus):
    path.parent.mkdir(parents=True, exist_ok=True)
    if source is DIR:
        path.mkdir()
    elif source is FIFO:
        os.mkfifo(path)
    elif isinstance(source, Link):
        path.symlink_to(source)
    elif isinstance(source, Text):
        path.write_bytes(source)
    elif isinstance(source, Edited):
        name, old, new = source
        path.write_text(corpus[name].read_text().replace(old, new))
    elif corpus[source].is_dir():
        path.mkdir()
        for item in corpus[source].iterdir():
            (path / item.name).write_bytes(item.read_bytes())
    else:
        path.write_bytes(corpus[source].read_bytes())


def snapshot(folder):
    """Every entry under `folder`: kind, and for files their bytes' hash and
    mtime. Symlinks and FIFOs are not followed or opened."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            st = path.lstat()
            entry = (stat.S_IFMT(st.st_mode),)
            if stat.S_ISREG(st.st_mode):
                entry += (hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns)
            elif stat.S_ISLNK(st.st_mode):
                entry += (os.readlink(path),)
            out[str(path.relative_to(folder))] = entry
    return out


def mount_tmpfs(folder, kind):
    folder.mkdir(exist_ok=True)
    options = MOUNTS[kind].replace(",ro", "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}): "
                    "needs root and mount permission")


def fill_or_seal(folder, kind):
    """After the case's files are in: fill the disk, or make it read-only."""
    if kind == "full":
        fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, bytes(4096)) > 0:
                pass
        except OSError:  # the disk is full
            pass
        finally:
            os.close(fd)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def limits(fsize):
    def apply():
        if "ASAN_OPTIONS" not in os.environ:  # ASan reserves terabytes of address space
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BOUND, MEMORY_BOUND))
        if fsize:
            resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_BOUND, FILE_SIZE_BOUND))
    return apply


def run_bounded(stitch_bin, args, cwd, fsize=False, bound=TIME_BOUND, env=None):
    """(exit code, stdout, stderr, seconds); fails the test past `bound` seconds."""
    start = time.monotonic()
    try:
        proc = subprocess.run([str(stitch_bin), *args], cwd=cwd, stdin=subprocess.DEVNULL,
                              env={**os.environ, **(env or {})},
                              capture_output=True, text=True, errors="replace",
                              timeout=bound, preexec_fn=limits(fsize))
    except subprocess.TimeoutExpired:
        pytest.fail(f"stitch {' '.join(args)} did not finish within {bound} s")
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


def assert_one_error(code, stdout, stderr, command):
    """Exit 1, one `error:` line, indented detail after it, no crash, no OOM."""
    assert code == 1, f"exit status {code}, expected 1\nstdout:\n{stdout}\nstderr:\n{stderr}"
    for marker in CRASH_MARKERS + OUT_OF_MEMORY:
        assert marker not in stderr and marker not in stdout, f"{marker!r} in:\n{stderr}"
    lines = stderr.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1, f"expected one 'error:' line:\n{stderr}"
    # train logs progress before an error; every other command starts with it.
    assert errors[0] == 0 or command == "train", f"'error:' is not the first line:\n{stderr}"
    for line in lines[errors[0] + 1:]:
        assert line.startswith((" ", "\t")), f"detail line not indented: {line!r}\n{stderr}"


def _marks(case):
    return [pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_marks(c)) for c in CASES])
def test_hostile_input_is_refused_cleanly(stitch_bin, corpus, tmp_path, case):
    work = tmp_path / "work"
    work.mkdir()
    mounted = None
    if case.mount:
        mounted = work / case.mount
        mount_tmpfs(mounted, case.mount)
    try:
        for name, source in case.files.items():
            place(work / name, source, corpus)
        if mounted:
            fill_or_seal(mounted, case.mount)
        before = snapshot(work)
        code, stdout, stderr, _ = run_bounded(stitch_bin, case.args, work, case.limit_fsize,
                                              XFAIL_TIME_BOUND if case.xfail else TIME_BOUND,
                                              case.env)
        assert_one_error(code, stdout, stderr, case.args[0])
        assert case.expect in stderr, f"{case.expect!r} not in:\n{stderr}"
        after = snapshot(work)
    finally:
        if mounted:
            subprocess.run(["umount", str(mounted)], check=True)
    assert after == before, (
        f"the work folder changed: new {sorted(set(after) - set(before))}, "
        f"gone {sorted(set(before) - set(after))}, "
        f"changed {sorted(k for k in before if k in after and before[k] != after[k])}")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode), "/dev/full is no longer a device"


def test_readme_lists_every_case():
    readme = (CORPUS / "README.md").read_text()
    missing = [c.id for c in CASES if f"`{c.id}`" not in readme]
    assert not missing, f"tests/bad_inputs/README.md does not list: {missing}"


# --- inputs stitch accepts, or may: never a crash or a hang ----------------------------

def _alias_bomb(levels=9, width=7):
    """A spec whose train: holds maps of aliases of maps: under 1 KB, 7^9
    maps when every alias is followed (#21: this hung check)."""
    keys = "klmnopq"[:width]
    lines = ["inputs:", "  x: [N, 4]", "graph:", "  - y = relu(x)", "outputs: [y]", "train:",
             "  a0: &a0 {" + ", ".join(f"{k}: 1" for k in keys) + "}"]
    for level in range(1, levels + 1):
        items = ", ".join(f"{k}: *a{level - 1}" for k in keys)
        lines.append(f"  a{level}: &a{level} {{{items}}}")
    return Text(("\n".join(lines) + "\n").encode())


TOLERATED = [
    # Nested aliases in train: are walked once each (check does not read train:).
    ("yaml_alias_bomb_in_train", ["check", "spec.yaml"], {"spec.yaml": _alias_bomb()}),
    # A bit flip in parts LibTorch does not check (no CRC check on load).
    ("model_bitflip_end", ["inspect", "m.pt"], {"m.pt": "model_bitflip_end.pt"}),
    ("model_bitflip_name", ["inspect", "m.pt"], {"m.pt": "model_bitflip_name.pt"}),
    # verify compares numbers; an unreadable manifest only loses the sha256 check.
    ("artifact_manifest_not_json", ["verify", "a.pt", "spec.yaml"],
     {**SPEC_ON("model_ok.pt"), "a.pt": "artifact_manifest_not_json.pt"}),
    ("artifact_manifest_wrong_types", ["verify", "a.pt", "spec.yaml"],
     {**SPEC_ON("model_ok.pt"), "a.pt": "artifact_manifest_wrong_types.pt"}),
    ("artifact_manifest_deep", ["verify", "a.pt", "spec.yaml"],
     {**SPEC_ON("model_ok.pt"), "a.pt": "artifact_manifest_deep.pt"}),
]


@pytest.mark.parametrize("name,args,files", TOLERATED, ids=[t[0] for t in TOLERATED])
def test_tolerated_input_never_crashes(stitch_bin, corpus, tmp_path, name, args, files):
    for dest, source in files.items():
        place(tmp_path / dest, source, corpus)
    before = snapshot(tmp_path)
    code, stdout, stderr, _ = run_bounded(stitch_bin, args, tmp_path)
    if code != 0:
        assert_one_error(code, stdout, stderr, args[0])
    assert snapshot(tmp_path) == before


# --- a failed train leaves an earlier run's files as they were -----------------------

TRAIN_FAILURES = {
    # (files put in the work folder, limit the file size, words of the error)
    "bad_data": ({"data.pt": "tensor_truncated.pt"}, False, "data.pt"),
    "file_size_limit": ({}, True, "ulimit -f"),
    "nan_loss_in_first_epoch": ({"spec.yaml": Edited(("train.yaml", "lr: 0.01", "lr: 1.0e+30")),
                                 "data.pt": "train_data_large.pt"}, False,
                                "no checkpoint of this run was written yet"),
}


@pytest.mark.parametrize("failure", list(TRAIN_FAILURES))
def test_failed_train_leaves_the_earlier_run_as_it_was(stitch_bin, corpus, tmp_path, failure):
    place(tmp_path / "spec.yaml", "train.yaml", corpus)
    place(tmp_path / "data.pt", "train_data_ok.pt", corpus)
    code, _, stderr, _ = run_bounded(stitch_bin, ["train", "spec.yaml"], tmp_path)
    assert code == 0, stderr
    earlier = snapshot(tmp_path / "run")
    assert {"model.pt", "metrics.csv"} <= set(earlier) and any(
        name.startswith("checkpoints/step_") for name in earlier), earlier

    files, fsize, words = TRAIN_FAILURES[failure]
    for name, source in files.items():
        (tmp_path / name).unlink()
        place(tmp_path / name, source, corpus)
    code, stdout, stderr, _ = run_bounded(stitch_bin, ["train", "spec.yaml", "--overwrite"],
                                          tmp_path, fsize)
    assert_one_error(code, stdout, stderr, "train")
    assert words in stderr, stderr
    assert snapshot(tmp_path / "run") == earlier


# --- models whose code does harm: what stitch lets you do with them -------------------

def test_archive_inspect_runs_none_of_the_code(stitch_bin, corpus, tmp_path):
    """#21: inspect --archive shows a model's code and tensors without running
    it: the file its __setstate__ writes keeps its bytes, the one that never
    returns is read at once, and the file operator is named."""
    for name, call in [("model_from_file_on_load", "torch.from_file"),
                       ("model_spins_on_load", None), ("model_save_forward", "torch.save")]:
        work = tmp_path / name
        work.mkdir()
        place(work / "m.pt", f"{name}.pt", corpus)
        place(work / make_bad_inputs.VICTIM, VICTIM[make_bad_inputs.VICTIM], corpus)
        before = snapshot(work)
        code, stdout, stderr, _ = run_bounded(stitch_bin, ["inspect", "m.pt", "--archive"], work)
        assert code == 0, stderr
        assert snapshot(work) == before
        assert "read without running any of its code" in stdout
        assert "  def forward" in stdout, stdout
        if name.endswith("on_load"):
            assert "  def __setstate__" in stdout, stdout
        if call:
            assert f"calls {call}, line" in stdout, stdout


def test_file_operators_run_when_allowed(stitch_bin, corpus, tmp_path):
    """#21: STITCH_ALLOW_FILE_OPS=1 is the way to use a trusted model that
    touches files: it loads, and its forward does write."""
    place(tmp_path / "m.pt", "model_from_file_forward.pt", corpus)
    place(tmp_path / make_bad_inputs.VICTIM, VICTIM[make_bad_inputs.VICTIM], corpus)
    code, stdout, stderr, _ = run_bounded(stitch_bin, ["inspect", "m.pt", "--input", "1x10"],
                                          tmp_path, env={"STITCH_ALLOW_FILE_OPS": "1"})
    assert code == 0, stderr
    assert "float[1, 5]" in stdout, stdout
    assert (tmp_path / make_bad_inputs.VICTIM).read_bytes() == b"X" * 8
