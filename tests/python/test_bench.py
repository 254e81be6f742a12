"""`stitch bench` through the real binary: the table, --json, a spec composed
in memory, --compare-python (python and eager sides, interleaved rounds, no
temporary file left behind) and clean errors."""

import json
import os
import subprocess

import pytest
import torch

from conftest import assert_clean_error

FAST = ("--runs", "4", "--warmup", "1", "--rounds", "2")


def run_with_env(stitch_bin, *args, **env):
    proc = subprocess.run([str(stitch_bin), *[str(a) for a in args]],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          errors="replace", timeout=300, env={**os.environ, **env})
    return proc.returncode, proc.stdout, proc.stderr


def bench_json(run_stitch, *args):
    code, stdout, stderr = run_stitch("bench", *args, *FAST, "--json")
    assert code == 0, stderr
    return json.loads(stdout)


def assert_consistent(side, runs, batch):
    assert side["runs"] == runs == len(side["times_ms"])
    assert side["min_ms"] <= side["q1_ms"] <= side["median_ms"] <= side["q3_ms"] <= side["max_ms"]
    assert side["min_ms"] == min(side["times_ms"]) and side["max_ms"] == max(side["times_ms"])
    assert side["batch"] == batch
    assert side["samples_per_s"] == pytest.approx(batch * 1000 / side["median_ms"])


def test_json_numbers_are_consistent(run_stitch, fixtures_dir):
    report = bench_json(run_stitch, fixtures_dir / "mlp_a.pt", "--input", "4x64")
    assert report["inputs"] == [{"name": "input", "type": "float[4, 64]"}]
    assert (report["runs"], report["warmup"], report["rounds"]) == (4, 1, 2)
    assert_consistent(report["stitch"], runs=4, batch=4)
    assert report["stitch"]["peak_mib"] > 1
    assert "python" not in report


def test_table_and_plain_progress_lines(run_stitch, fixtures_dir):
    code, stdout, stderr = run_stitch("bench", fixtures_dir / "mlp_a.pt", "--input",
                                      "input=2x64", *FAST)
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith("stitch bench ") and "input=float[2, 64]" in lines[0]
    assert lines[1].startswith("stitch ") and " ms  (min " in lines[1] and "; 4 runs)" in lines[1]
    assert "samples/s" in lines[1] and "MiB" in lines[1]
    # Not a terminal: one plain line per round on stderr, no redraws.
    assert [l.split(":")[0] for l in stderr.splitlines()] == ["round 1/2", "round 2/2"]
    assert "\r" not in stderr


def test_spec_is_composed_in_memory_with_declared_shapes(run_stitch, copy_example, tmp_path):
    spec = copy_example("seed001_ex3_parallel.yaml")
    report = bench_json(run_stitch, spec)
    assert report["inputs"] == [{"name": "x", "type": "float[1, 10]"}]  # N = 1
    report = bench_json(run_stitch, spec, "--input", "x=3x10")
    assert_consistent(report["stitch"], runs=4, batch=3)
    assert not list(tmp_path.glob("*.pt"))  # nothing written


def test_compare_python_on_a_spec_has_python_and_eager_sides(stitch_bin, copy_example,
                                                             tmp_path):
    spec = copy_example("seed001_ex3_parallel.yaml")
    temp = tmp_path / "tmp"
    temp.mkdir()
    code, stdout, stderr = run_with_env(stitch_bin, "bench", spec, *FAST, "--compare-python",
                                        "--json", TMPDIR=str(temp))
    assert code == 0, stderr
    report = json.loads(stdout)
    for side in ("stitch", "python", "eager"):
        assert_consistent(report[side], runs=4, batch=1)
    assert report["stitch_over_python"] == pytest.approx(
        report["stitch"]["median_ms"] / report["python"]["median_ms"])
    assert report["stitch_over_eager"] > 0
    assert report["python"]["peak_mib"] > 1
    assert report["python_torch"] == torch.__version__
    assert "eager_note" not in report
    # Rounds interleaved: each round's line has every side at the same count.
    assert "round 1/2: stitch 2/4 runs" in stderr and "python 2/4 runs" in stderr
    assert list(temp.iterdir()) == []  # the temporary artifact is removed


def test_compare_python_table_on_a_plain_model_has_no_eager_column(run_stitch, fixtures_dir):
    code, stdout, stderr = run_stitch("bench", fixtures_dir / "mlp_b.pt", "--input", "2x64",
                                      *FAST, "--compare-python")
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[1].startswith("stitch ")
    assert lines[2].startswith("python ") and "stitch/python " in lines[2]
    assert not any(l.startswith("eager") for l in lines)
    assert "not a stitch artifact" in stdout


@pytest.mark.parametrize("args, expected", [
    (("missing.pt", "--input", "1x64"), "missing.pt"),
    (("{fixtures}/mlp_a.pt", "--input", "1x65"), "running the model on input: float[1, 65]"),
    (("{fixtures}/mlp_a.pt", "--input", "image=1x64"), "has no input 'image'"),
    (("{fixtures}/mlp_a.pt",), "missing input 'input'"),
    (("{fixtures}/mlp_a.pt", "--input", "1x64", "--runs", "0"), "runs must be at least 1"),
    (("{fixtures}/corrupt.pt", "--input", "1x64"), "corrupt.pt"),
])
def test_bad_input_is_one_error_line(run_stitch, fixtures_dir, args, expected):
    args = [a.format(fixtures=fixtures_dir) for a in args]
    if "--runs" not in args:
        args += ["--runs", "1"]
    code, stdout, stderr = run_stitch("bench", *args)
    assert_clean_error(code, stdout, stderr)
    assert expected in stderr.splitlines()[0]


def test_spec_input_that_contradicts_the_spec_is_refused(run_stitch, copy_example):
    spec = copy_example("seed001_ex3_parallel.yaml")
    code, stdout, stderr = run_stitch("bench", spec, "--input", "x=2x11")
    assert_clean_error(code, stdout, stderr)
    assert "shape 2x11 does not fit the declared float[N, 10]" in stderr


def test_malformed_shape_is_a_usage_error(run_stitch, fixtures_dir):
    code, stdout, stderr = run_stitch("bench", fixtures_dir / "mlp_a.pt", "--input", "4xx")
    assert_clean_error(code, stdout, stderr, expected_code=2)


def test_missing_python_is_one_error_line(stitch_bin, fixtures_dir):
    code, stdout, stderr = run_with_env(stitch_bin, "bench", fixtures_dir / "mlp_b.pt",
                                        "--input", "1x64", "--compare-python", "--runs", "1",
                                        STITCH_PYTHON="/nonexistent/python3")
    assert_clean_error(code, stdout, stderr)
    assert "cannot run /nonexistent/python3" in stderr


def test_python_without_torch_is_one_error_line(stitch_bin, fixtures_dir, tmp_path):
    # A Python that cannot import torch: site packages switched off.
    shim = tmp_path / "python_without_torch"
    shim.write_text("#!/bin/sh\nexec /usr/bin/python3 -S -s \"$@\"\n")
    shim.chmod(0o755)
    code, stdout, stderr = run_with_env(stitch_bin, "bench", fixtures_dir / "mlp_b.pt",
                                        "--input", "1x64", "--compare-python", "--runs", "1",
                                        STITCH_PYTHON=str(shim))
    assert_clean_error(code, stdout, stderr)
    assert "cannot import torch" in stderr.splitlines()[0]
    assert "fix:" in stderr


def test_threads_is_taken_after_the_command_too(run_stitch, fixtures_dir):
    code, out, err = run_stitch("bench", fixtures_dir / "mlp_a.pt", "--input", "1x64",
                                "--runs", "3", "--threads", "1")
    assert code == 0, err
    assert "threads 1" in out, out
