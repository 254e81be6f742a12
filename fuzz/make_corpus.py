#!/usr/bin/python3
"""Writes the fuzz targets' seed corpus into fuzz/corpus/<target>/.

Real files, small: .npy written by numpy, .pt by torch.save, artifacts by
torch.jit.save with stitch's metadata files, specs from examples/ plus
model-free ones. .safetensors files are written here byte by byte as the
reference writer lays them out (8-byte little-endian header size, JSON header
padded with spaces to 8 bytes, data), since Debian has no safetensors package.
A few edge cases sit beside the valid files. The committed corpus is what CI
fuzzes from; rerun this only to change the seeds:
    /usr/bin/python3 fuzz/make_corpus.py
"""

import io
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import torch

FUZZ = Path(__file__).resolve().parent
CORPUS = FUZZ / "corpus"
EXAMPLES = FUZZ.parent / "examples"


def target(name):
    folder = CORPUS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def npy_bytes(array):
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def write_npy():
    out = target("fuzz_npy")
    seeds = {
        "float32_2x3": np.arange(6, dtype=np.float32).reshape(2, 3),
        "int64_scalar": np.array(7, dtype=np.int64),
        "bool_4": np.array([True, False, True, True]),
        "float16_empty_0x3": np.zeros((0, 3), dtype=np.float16),
        "uint8_1x1x2": np.array([[[1, 255]]], dtype=np.uint8),
        "float64_fortran": np.asfortranarray(np.ones((2, 2))),
        "big_endian_int32": np.array([1, 2], dtype=">i4"),
    }
    for name, array in seeds.items():
        (out / f"{name}.npy").write_bytes(npy_bytes(array))
    # Version 2.0 (4-byte header length), as numpy writes huge headers.
    v2 = io.BytesIO()
    np.lib.format.write_array(v2, np.arange(3, dtype=np.int16), version=(2, 0))
    (out / "int16_version2.npy").write_bytes(v2.getvalue())
    # A header that declares far more data than the file holds.
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    (out / "declares_40GB.npy").write_bytes(
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 16)


def safetensors_bytes(tensors, metadata=None):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write_safetensors():
    out = target("fuzz_safetensors")
    f32 = np.arange(6, dtype=np.float32).tobytes()
    seeds = {
        "one_f32": {"weight": ("F32", [2, 3], f32)},
        "two_tensors_metadata": ({"a": ("I64", [2], np.array([1, 2], np.int64).tobytes()),
                                  "b": ("BF16", [1], b"\x80\x3f")}, {"format": "pt"}),
        "bool_and_u8": {"m": ("BOOL", [3], b"\x01\x00\x01"), "u": ("U8", [2, 1], b"\x07\x08")},
        "empty_tensor": {"e": ("F16", [0, 4], b"")},
        "scalar_f64": {"s": ("F64", [], np.array(1.5).tobytes())},
    }
    for name, seed in seeds.items():
        tensors, metadata = seed if isinstance(seed, tuple) else (seed, None)
        (out / f"{name}.safetensors").write_bytes(safetensors_bytes(tensors, metadata))
    # Two entries claiming the same bytes; a shape far larger than the data.
    header = {"a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]},
              "b": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}
    text = json.dumps(header).encode()
    (out / "overlapping.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + f32)
    header = {"big": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 24]}}
    text = json.dumps(header).encode()
    (out / "declares_40GB.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + f32)


def torch_save_bytes(obj):
    out = io.BytesIO()
    torch.save(obj, out)
    return out.getvalue()


def write_pt():
    out = target("fuzz_pt")
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    seeds = {
        "tensor_2x3": torch.ones(2, 3),
        "dict_of_tensors": {"a": torch.zeros(2, dtype=torch.int64), "b": torch.tensor([True, False])},
        "state_dict_linear": torch.nn.Linear(3, 2).state_dict(),
        "one_entry_dict": {"x": torch.tensor(1.5, dtype=torch.float64)},
        "view_of_slice": base[1:, ::2],
        "shared_storage": {"whole": base, "row": base[0]},
        "half_empty": torch.zeros(0, 3, dtype=torch.float16),
        "not_a_tensor": {"lr": 0.1, "names": ["a", "b"]},
    }
    for name, obj in seeds.items():
        (out / f"{name}.pt").write_bytes(torch_save_bytes(obj))
    # A broadcast view: one storage element seen as a million.
    view = torch.ones(1).expand(1000, 1000)
    (out / "broadcast_view.pt").write_bytes(torch_save_bytes(view))


def artifact_bytes(spec_yaml, manifest):
    module = torch.jit.script(torch.nn.ReLU())
    out = io.BytesIO()
    extra = {}
    if spec_yaml is not None:
        extra["stitch/spec.yaml"] = spec_yaml
    if manifest is not None:
        extra["stitch/manifest.json"] = manifest
    torch.jit.save(module, out, _extra_files=extra)
    return out.getvalue()


def write_manifest():
    out = target("fuzz_manifest")
    spec = "inputs:\n  x: [N, 10]\ngraph:\n  - y = relu(x)\noutputs: [y]\n"
    manifest = json.dumps({
        "stitch_version": "0.1.0", "libtorch_version": "1.13.0",
        "components": [{"name": "vision", "file": "resnet18.pt", "sha256": "ab" * 32,
                        "method": "forward", "parameters": 10, "frozen_parameters": 0}],
        "inputs": [{"name": "x", "shape": ["N", 10], "dtype": "float"}],
        "outputs": [{"name": "y", "shape": ["N", 10], "dtype": "float"}]}, indent=2)
    (out / "artifact.pt").write_bytes(artifact_bytes(spec, manifest))
    (out / "artifact_no_metadata.pt").write_bytes(artifact_bytes(None, None))
    (out / "manifest_components_not_a_list.pt").write_bytes(
        artifact_bytes(spec, json.dumps({"components": {"name": 3}})))


MODEL_FREE_SPECS = {
    "mlp_head": """inputs:
  x: [N, 10]
  tokens: {shape: [N, 6], dtype: int64}
graph:
  - e = mean(embedding(tokens, 100, 8), dim=1)
  - h = concat(x, e, dim=1)
  - y = mlp(h, [16, 4], act="gelu", dropout=0.1)
outputs: [y]
seed: 3
""",
    "shapes": """inputs:
  image: [N, 3, 16, 16]
  seq: [N, T, 8]
graph:
  - f = flatten(pool(conv(image, 4, kernel=3, padding=1), kind="max"))
  - g = adapt(seq, to=[N, 8])
  - s = softmax(linear(f, 8) + g * 0.5, dim=1)
  - r = reshape(permute(seq, [0, 2, 1]), [-1, 8])
outputs: [s, r]
""",
    "train_section": """inputs:
  x: [N, 4]
graph:
  - y = l2norm(scale_offset(normalize(unsqueeze(x, 1), [0.5], [0.25]), scale=2.0))
outputs: y
train:
  loss: mse
  epochs: 1
""",
}


def write_spec():
    out = target("fuzz_spec")
    for path in sorted(EXAMPLES.glob("*.yaml")):
        shutil.copy(path, out / path.name)
    for name, text in MODEL_FREE_SPECS.items():
        (out / f"{name}.yaml").write_text(text)


EXPRESSIONS = [
    "linear(flatten(image), 5)",
    "concat(a, linear(a, 3), dim=1)",
    "a + a * 2 - 1",
    "adapt(b, to=[N, 10])",
    'mlp(a, [16, 8], act="gelu", dropout=0.5)',
    "mean(embedding(ids, 50, 4), dim=1)",
    "stack(a, a, dim=0)[0]",
    "select(reshape(image, [-1, 3, 64]), 1, 2)",
    "softmax(squeeze(unsqueeze(a, 2), 2), dim=-1)",
    'pool(relu(conv(image, 8, kernel=3, stride=2, padding=1)), kind="avg")',
    'adapt(a, like="b")',
    "normalize(image, [0.5, 0.5, 0.5], [0.2, 0.2, 0.2])",
    "resize(image, [4, 4])",
    "((((a))))",
]


def write_expression():
    out = target("fuzz_expression")
    for i, text in enumerate(EXPRESSIONS):
        (out / f"expr{i:02d}.txt").write_text(text)


def write_shapes():
    out = target("fuzz_shapes")
    rng = np.random.default_rng(0)
    for i in range(8):
        (out / f"random{i}.bin").write_bytes(rng.integers(0, 256, 48 + 16 * i, dtype=np.uint8).tobytes())


if __name__ == "__main__":
    write_npy()
    write_safetensors()
    write_pt()
    write_manifest()
    write_spec()
    write_expression()
    write_shapes()
    for folder in sorted(CORPUS.iterdir()):
        files = list(folder.iterdir())
        print(f"{folder.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")
