// The Python side of `stitch bench --compare-python`, run as
// `python3 -c SCRIPT`. Embedded in the library so that it works the same from
// the build tree and from an installed tree.
//
// Protocol: one JSON object per line each way, one reply per request, on
// stdin/stdout (a socket pair). Every failure is a reply {"error": "..."};
// end of input ends the process.
//   {"cmd": "load", "model": PATH, "threads": T, "seed": S, "eager": bool,
//    "inputs": [{"shape": [1, 3, 224, 224], "dtype": "float"}, ...]}
//     (an integer input of one value has "fill": VALUE)
//     -> {"torch": VERSION, "eager": bool, "eager_note": WHY_NOT}
//   {"cmd": "warmup", "side": "python"|"eager", "runs": K} -> {"ok": true}
//   {"cmd": "time", "side": "python"|"eager", "runs": K}
//     -> {"times_ms": [...], "peak_bytes": B, "peak_since_start": bool}

#include "bench/bench_python.h"

namespace stitch::bench_detail {

const char* const kWorkerScript = R"PY(
import json
import sys
import time
import types
import typing

torch = None
state = {}


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_input(spec, generator):
    dtype = getattr(torch, spec["dtype"])
    if dtype.is_floating_point:
        return torch.randn(spec["shape"], generator=generator).to(dtype)
    if "fill" in spec:
        return torch.full(spec["shape"], spec["fill"], dtype=dtype)
    return torch.randint(0, 2, spec["shape"], generator=generator).to(dtype)


class PrintedTorch:
    """`torch.NAME` in printed TorchScript: torch's Python API where it has
    NAME, else the ATen operator of that name."""

    def __getattr__(self, name):
        if name == "wait":
            return torch.jit._wait
        for namespace in (torch, torch._C._nn):
            if hasattr(namespace, name):
                return getattr(namespace, name)
        return getattr(torch.ops.aten, name)


def eager_forward(module):
    """The module's forward source (module.code) run by the Python
    interpreter; the submodules it calls are the artifact's own."""
    code, constants = module.code_with_constants
    namespace = {
        "torch": PrintedTorch(), "Tensor": torch.Tensor, "Dict": typing.Dict,
        "List": typing.List, "Tuple": typing.Tuple, "Optional": typing.Optional,
        "fork": torch.jit._fork, "annotate": lambda _type, value: value,
        "CONSTANTS": types.SimpleNamespace(**constants.const_mapping),
    }
    exec(code, namespace)
    forward = namespace["forward"]
    return lambda *inputs: forward(module, *inputs)


def same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def load(req):
    global torch
    import torch as imported
    torch = imported
    torch.set_num_threads(req["threads"])
    module = torch.jit.load(req["model"])
    module.eval()
    generator = torch.Generator().manual_seed(req["seed"])
    state["inputs"] = [make_input(spec, generator) for spec in req["inputs"]]
    state["python"] = module
    note = ""
    if req["eager"]:
        try:
            forward = eager_forward(module)
            with torch.no_grad():
                if not same(module(*state["inputs"]), forward(*state["inputs"])):
                    raise ValueError("its outputs differ from the artifact's")
            state["eager"] = forward
        except Exception as e:
            note = "the combined forward does not run as Python code: " + message(e)
    return {"torch": torch.__version__, "eager": "eager" in state, "eager_note": note}


def run(side, runs):
    fn, inputs, times = state[side], state["inputs"], []
    with torch.no_grad():
        for _ in range(runs):
            start = time.perf_counter()
            fn(*inputs)
            times.append((time.perf_counter() - start) * 1e3)
    return times


def handle(req):
    cmd = req["cmd"]
    if cmd == "load":
        return load(req)
    if cmd == "warmup":
        run(req["side"], req["runs"])
        return {"ok": True}
    if cmd == "time":
        if "peak_reset" not in state:
            state["peak_reset"] = reset_peak()
        times = run(req["side"], req["runs"])
        return {"times_ms": times, "peak_bytes": peak_bytes(),
                "peak_since_start": not state["peak_reset"]}
    raise ValueError("unknown command " + cmd)


def message(e):
    """One line: the exception's first, or for an error raised inside
    TorchScript (a header, a TorchScript traceback, then the error) its last."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("The following operation failed"):
        return lines[-1]
    return type(e).__name__ + (": " + lines[0] if lines else "")


while True:
    line = sys.stdin.readline()
    if not line:
        break
    try:
        reply(handle(json.loads(line)))
    except Exception as e:
        reply({"error": message(e)})
)PY";

}  // namespace stitch::bench_detail
