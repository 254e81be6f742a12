#!/usr/bin/python3
"""Writes the generated half of stitch's hostile-input corpus.

    /usr/bin/python3 tests/bad_inputs/make_bad_inputs.py OUTDIR

The committed half (small, readable specs) is in specs/ beside this script;
this script makes the binary files and the big or deep ones, so that nothing
big is committed. Every file is deterministic (fixed seeds, fixed offsets).
README.md beside this script lists every case, the command it goes through
and the error it must give. Takes about a second.
"""

import io
import json
import struct
import sys
import zipfile
from pathlib import Path
from typing import Tuple

import numpy as np
import torch
import torch.nn as nn

HUGE = 2 ** 40  # a "dimension" or size no file here could hold


# --- TorchScript models and torch.save tensors ------------------------------

def good_model_bytes():
    """A small TorchScript model: Linear(10, 5), the shape the specs expect."""
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(nn.Linear(10, 5).eval()), buffer)
    return buffer.getvalue()


def artifact_bytes(spec_yaml, manifest_json):
    """A TorchScript model carrying stitch's metadata files, as compose writes
    them (any text: the point is to break them)."""
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(nn.Linear(10, 5).eval()), buffer,
                   _extra_files={"stitch/spec.yaml": spec_yaml,
                                 "stitch/manifest.json": manifest_json})
    return buffer.getvalue()


def zip_entries(data):
    """name -> (offset of its local header, offset of its central record)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        infos = z.infolist()
    central = data.rfind(b"PK\x05\x06")
    cd_offset = struct.unpack_from("<I", data, central + 16)[0]
    out, pos = {}, cd_offset
    for info in infos:
        assert data[pos:pos + 4] == b"PK\x01\x02"
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        out[info.filename] = (info.header_offset, pos, info)
        pos += 46 + name_len + extra_len + comment_len
    return out


def entry(data, suffix):
    """The (local offset, central offset, ZipInfo) of the entry ending in suffix."""
    for name, value in zip_entries(data).items():
        if name.endswith(suffix):
            return value
    raise KeyError(suffix)


def flip(data, pos, bit=0):
    out = bytearray(data)
    out[pos] ^= 1 << bit
    return bytes(out)


def patch_u32(data, pos, value):
    out = bytearray(data)
    struct.pack_into("<I", out, pos, value)
    return bytes(out)


def payload_offset(data, local):
    name_len, extra_len = struct.unpack_from("<HH", data, local + 26)
    return local + 30 + name_len + extra_len


def with_code(data, transform):
    """The archive with each TorchScript code entry (.py) replaced by
    transform(its text), rewritten by zipfile with the same compression."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith(".py") and "/code/" in info.filename:
                body = transform(body.decode()).encode()
            dst.writestr(info, body, compress_type=info.compress_type)
    return out.getvalue()


def deep_forward(code, depth=10000):
    """Linear's forward returning its input inside `depth` parentheses."""
    head, _, _ = code.partition("    return ")
    return head + "    return " + "(" * depth + "input" + ")" * depth + "\n"


def broken_models():
    good = good_model_bytes()
    # Linear's code: linear.py, or ___torch_mangle_N.py once torch has scripted it before
    code_name = next(n for n in zip_entries(good) if n.endswith(".py") and "/code/" in n)
    code_local, code_central, _ = entry(good, code_name)
    pkl_local, pkl_central, pkl = entry(good, "/data.pkl")
    eocd = good.rfind(b"PK\x05\x06")
    pkl_data = payload_offset(good, pkl_local)
    return {
        "model_empty.pt": b"",
        "model_zeros.pt": bytes(4096),
        "model_text.pt": b"this is not a TorchScript archive\n" * 10,
        "model_truncated_head.pt": good[:30],
        "model_truncated_half.pt": good[:len(good) // 2],
        "model_truncated_tail.pt": good[:-10],
        # A bit flipped in the pickle of the module (its opcodes), in the
        # deflated TorchScript code, in a local header's name, in the central
        # directory's offset, in the end record's entry count.
        "model_bitflip_pickle.pt": flip(good, pkl_data + 2, 6),
        "model_bitflip_code.pt": flip(good, payload_offset(good, code_local) + 5, 3),
        "model_bitflip_name.pt": flip(good, pkl_local + 31, 1),
        "model_bitflip_central.pt": flip(good, pkl_central + 43, 4),
        "model_bitflip_end.pt": flip(good, eocd + 10, 0),
        # data.pkl declares 2 GB (the archive holds a few hundred bytes).
        "model_huge_declared_size.pt": patch_u32(
            patch_u32(good, pkl_central + 24, 0x7FFFFFF0), pkl_local + 22, 0x7FFFFFF0),
        # A forward nested 10 000 parentheses deep (1.4 KB deflated): LibTorch's
        # parser overflows its stack on it (#21).
        "model_deep_code.pt": with_code(good, deep_forward),
        # The deflated code declares 2 GB inflated (LibTorch allocates that).
        "model_huge_declared_code.pt": patch_u32(
            patch_u32(good, code_central + 24, 0x7FFFFFF0), code_local + 22, 0x7FFFFFF0),
        # Two entries start at the same offset: the pickle's central record
        # points at the weights' local header.
        "model_overlapping_entries.pt": patch_u32(
            good, pkl_central + 42, entry(good, "/data/0")[0]),
    }


# --- models whose code does harm: touches files, never returns (#21) -----------

VICTIM = "victim.bin"  # relative: the file in the folder stitch runs in


class _Touch(nn.Module):
    """No parameters; its __setstate__ (run by torch.jit.load) does `harm`."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.seen = torch.zeros(8, dtype=torch.uint8)  # keeps what from_file wrote alive

    def forward(self, x):
        return x


class _FromFileOnLoad(_Touch):
    @torch.jit.export
    def __getstate__(self):
        return (self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]):
        self.path = state[0]
        self.training = state[1]
        self.seen = torch.from_file(self.path, True, 8, dtype=torch.uint8).fill_(88)


class _SpinsOnLoad(_Touch):
    @torch.jit.export
    def __getstate__(self):
        return (self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]):
        self.path = state[0]
        self.training = state[1]
        n = 0
        while n >= 0:
            n = n + 1


class _Harmful(nn.Module):
    """Linear(10, 5) (the shape the specs expect) and a part that does harm."""

    def __init__(self, touch):
        super().__init__()
        self.linear = nn.Linear(10, 5)
        self.touch = touch
        self.path = VICTIM


class _FromFileForward(_Harmful):
    def forward(self, x):
        seen = torch.from_file(self.path, True, 8, dtype=torch.uint8).fill_(88)
        return self.linear(self.touch(x)) + 0 * seen[0]


class _SaveForward(_Harmful):
    def forward(self, x):
        torch.save(x, self.path)
        return self.linear(self.touch(x))


class _SpinsForward(_Harmful):
    def forward(self, x):
        n = 0
        while n >= 0:
            n = n + 1
        return self.linear(self.touch(x))


class _Plain(_Harmful):
    def forward(self, x):
        return self.linear(self.touch(x))


def harmful_models():
    """TorchScript models that write VICTIM, or never return, when loaded or
    run (torch.jit.load in Python does exactly that to them)."""
    torch.manual_seed(0)
    made = {
        "model_from_file_on_load.pt": _Plain(_FromFileOnLoad(VICTIM)),
        "model_from_file_forward.pt": _FromFileForward(_Touch(VICTIM)),
        "model_save_forward.pt": _SaveForward(_Touch(VICTIM)),
        "model_spins_forward.pt": _SpinsForward(_Touch(VICTIM)),
        "model_spins_on_load.pt": _Plain(_SpinsOnLoad(VICTIM)),
    }
    out = {}
    for name, module in made.items():
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.script(module.eval()), buffer)
        out[name] = buffer.getvalue()
    return out


def broken_artifacts():
    spec = ("inputs:\n  x: [N, 10]\nmodels:\n  m: {file: m.pt}\n"
            "graph:\n  - y = m(x)\noutputs: [y]\n")
    manifest = json.dumps({"stitch_version": "0", "components": [
        {"name": "m", "file": "m.pt", "sha256": "0" * 64}],
        "inputs": [{"name": "x", "shape": ["N", 10], "dtype": "float"}],
        "outputs": [{"name": "y", "shape": ["N", 5], "dtype": "float"}]})
    return {
        "artifact_manifest_not_json.pt": artifact_bytes(spec, "{not json"),
        "artifact_manifest_wrong_types.pt": artifact_bytes(
            spec, json.dumps({"components": 5, "inputs": "x", "outputs": [7]})),
        "artifact_manifest_deep.pt": artifact_bytes(spec, "[" * 100000 + "]" * 100000),
        "artifact_spec_not_yaml.pt": artifact_bytes("inputs: [x\n  - : :\n", manifest),
        "artifact_spec_huge_dims.pt": artifact_bytes(spec.replace("[N, 10]", f"[N, {HUGE}]"),
                                                     manifest),
    }


def broken_torch_tensors():
    buffer = io.BytesIO()
    torch.save({"x": torch.randn(3, 10)}, buffer)
    good = buffer.getvalue()
    storage_local, _, storage = entry(good, "/data/0")
    # The storage entry rewritten with 8 of its 120 bytes: the pickle still
    # says 30 floats.
    short = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, \
            zipfile.ZipFile(short, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, body[:8] if info.filename.endswith("/data/0") else body)
    return {
        "tensor_truncated.pt": good[:len(good) // 2],
        "tensor_bitflip_pickle.pt": flip(good, payload_offset(good, entry(good, "data.pkl")[0])
                                         + 3, 5),
        "tensor_short_storage.pt": short.getvalue(),
        "tensor_not_a_tensor.pt": pickle_zip({"x": "a string, not a tensor"}),
    }


def pickle_zip(value):
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


# --- .npy ---------------------------------------------------------------------

def npy(header, data=b""):
    """A version 1.0 .npy file with `header` (a Python dict literal) as is."""
    text = header + " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + data


def broken_npy():
    good = io.BytesIO()
    np.save(good, np.arange(12, dtype=np.float32).reshape(3, 4))
    good = good.getvalue()
    return {
        "npy_truncated.npy": good[:-8],
        "npy_bad_magic.npy": b"\x93NUMPZ" + good[6:],
        "npy_header_past_end.npy": b"\x93NUMPY\x01\x00" + struct.pack("<H", 0xFFFF) + b"{}",
        "npy_huge_shape.npy": npy(f"{{'descr': '<f4', 'fortran_order': False, "
                                  f"'shape': ({HUGE}, {HUGE}), }}", bytes(16)),
        "npy_size_overflow.npy": npy("{'descr': '<f4', 'fortran_order': False, "
                                     "'shape': (4294967296, 4294967296, 4294967296), }"),
        "npy_negative_shape.npy": npy("{'descr': '<f4', 'fortran_order': False, "
                                      "'shape': (-3, 4), }", bytes(48)),
        "npy_object_dtype.npy": npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
                                    b"\x80\x02N."),
        "npy_unknown_dtype.npy": npy("{'descr': '<c32', 'fortran_order': False, "
                                     "'shape': (1,), }", bytes(32)),
        "npy_fortran_order.npy": npy("{'descr': '<f4', 'fortran_order': True, "
                                     "'shape': (3, 4), }", bytes(48)),
        "npy_deep_header.npy": npy("{'descr': '<f4', 'fortran_order': False, 'shape': "
                                   + "(" * 20000 + ")" * 20000 + ", }"),
    }


# --- .safetensors -------------------------------------------------------------

def safetensors(header, data=b""):
    text = header if isinstance(header, (bytes, str)) else json.dumps(header)
    text = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(text)) + text + data


def broken_safetensors():
    f32 = lambda shape, begin, end: {"dtype": "F32", "shape": shape,
                                     "data_offsets": [begin, end]}
    return {
        "st_empty.safetensors": b"",
        "st_header_size_huge.safetensors": struct.pack("<Q", 2 ** 63) + b"{}",
        "st_header_past_end.safetensors": struct.pack("<Q", 4096) + b"{}",
        "st_header_not_json.safetensors": safetensors("{not json"),
        "st_header_deep.safetensors": safetensors("[" * 100000 + "]" * 100000),
        "st_offsets_past_end.safetensors": safetensors({"x": f32([2, 2], 0, 1 << 30)},
                                                       bytes(16)),
        "st_offsets_reversed.safetensors": safetensors({"x": f32([2, 2], 16, 0)}, bytes(16)),
        "st_offsets_overlap.safetensors": safetensors(
            {"x": f32([2, 2], 0, 16), "y": f32([2, 2], 8, 24)}, bytes(24)),
        "st_shape_mismatch.safetensors": safetensors({"x": f32([2, 3], 0, 16)}, bytes(16)),
        "st_huge_shape.safetensors": safetensors({"x": f32([HUGE, HUGE], 0, 16)}, bytes(16)),
        "st_negative_shape.safetensors": safetensors({"x": f32([-4, 1], 0, 16)}, bytes(16)),
        "st_unknown_dtype.safetensors": safetensors(
            {"x": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, bytes(16)),
        "st_wrong_field_types.safetensors": safetensors(
            {"x": {"dtype": 7, "shape": "big", "data_offsets": {"a": 1}}}, bytes(16)),
    }


# --- training data (NaN, Inf, no samples) ------------------------------------

def training_data():
    """Data for specs/train.yaml (x: [N, 10], y: [N, 5]), spoiled one way each."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 10, generator=g), torch.randn(8, 5, generator=g)
    x_inf = x.clone()
    x_inf[3, 2] = float("inf")
    y_nan = y.clone()
    y_nan[5, 0] = float("nan")
    out = {"train_data_ok.pt": pickle_zip({"x": x, "y": y}),
           # With lr 1e30, the loss overflows at the second step of epoch 1.
           "train_data_large.pt": pickle_zip({"x": x * 1e3, "y": y}),
           "train_data_inf.pt": pickle_zip({"x": x_inf, "y": y}),
           "train_data_zero_samples.pt": pickle_zip({"x": x[:0], "y": y[:0]}),
           "train_data_zero_width.pt": pickle_zip({"x": x[:, :0], "y": y})}
    buffer = io.BytesIO()
    np.save(buffer, y_nan.numpy())
    out["train_data_nan/y.npy"] = buffer.getvalue()
    buffer = io.BytesIO()
    np.save(buffer, x.numpy())
    out["train_data_nan/x.npy"] = buffer.getvalue()
    return out


# --- specs too big or too deep to commit ---------------------------------------

SPEC_HEAD = "inputs:\n  x: [N, 10]\ngraph:\n"
SPEC_TAIL = "outputs: [y]\n"


def big_specs():
    depth = 100000
    return {
        "spec_deep_calls.yaml": SPEC_HEAD + "  - y = " + "relu(" * depth + "x" + ")" * depth
        + "\n" + SPEC_TAIL,
        "spec_deep_parens.yaml": SPEC_HEAD + "  - y = " + "(" * depth + "x" + ")" * depth
        + "\n" + SPEC_TAIL,
        "spec_deep_lists.yaml": SPEC_HEAD + "  - y = reshape(x, " + "[" * depth + "]" * depth
        + ")\n" + SPEC_TAIL,
        "spec_deep_yaml.yaml": "inputs: " + "[" * depth + "]" * depth + "\n",
        # Valid until the last statement: the checker walks the whole sum first.
        "spec_long_sum.yaml": SPEC_HEAD + "  - s = " + " + ".join(["x"] * 200000) + "\n"
        + "  - y = linear(s, 5) + x\n" + SPEC_TAIL,
        "spec_long_name.yaml": SPEC_HEAD + "  - y = relu(" + "a" * (1 << 20) + ")\n" + SPEC_TAIL,
        "spec_long_comment.yaml": SPEC_HEAD + "  - y = relu(x) # " + "#" * (1 << 20)
        + "\n  - z = frobnicate(y)\n" + SPEC_TAIL,
        "spec_many_statements.yaml": SPEC_HEAD
        + "  - v0 = relu(x)\n"
        + "".join(f"  - v{i} = relu(v{i - 1})\n" for i in range(1, 20000))
        + "  - y = linear(v19999, 5) + x\n" + SPEC_TAIL,
        "spec_invalid_utf8.yaml": (SPEC_HEAD + "  - y = relu(\xff\xfe)\n" + SPEC_TAIL)
        .encode("latin-1"),
        "spec_nul_byte.yaml": (SPEC_HEAD + "  - y = relu(x\x00)\n" + SPEC_TAIL).encode(),
    }


def write_all(outdir):
    outdir = Path(outdir)
    files = {}
    for make in (broken_models, harmful_models, broken_artifacts, broken_torch_tensors, broken_npy,
                 broken_safetensors, training_data, big_specs):
        files.update(make())
    files["model_ok.pt"] = good_model_bytes()
    for name, content in files.items():
        path = outdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return sorted(files)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    names = write_all(sys.argv[1])
    print(f"wrote {len(names)} files to {sys.argv[1]}")
