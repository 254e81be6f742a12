#!/usr/bin/python3
"""Fails when a stage of the library includes a later one.

src/ has one folder per stage of the pipeline, in this order; a file may
include its own stage's headers and earlier stages' (and the public headers
of those stages, include/stitch/), never a later stage's. docs/architecture.md
says what each stage holds.

    /usr/bin/python3 scripts/check_layers.py      (from the repository root)
"""

import pathlib
import re
import sys

STAGES = ["compat", "core", "util", "io", "ops", "spec", "load", "check", "artifact",
          "merge", "build", "inspect", "train", "bench"]

# The stage of each public header (include/stitch/NAME.h).
PUBLIC = {
    "compat": "compat", "error": "core", "shape": "core", "graph": "core",
    "runtime": "core", "bind_inputs": "core", "archive_report": "load", "tensor_io": "io", "spec": "spec", "ops": "ops",
    "check": "check", "artifact": "artifact", "merge": "merge", "merge_options": "core", "build": "build", "verify": "inspect",
    "inspect": "inspect", "graph_picture": "inspect", "train": "train", "bench": "bench",
    "stitch": None,  # the umbrella header: every stage, for users only
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def stage_of_include(path):
    """The stage an include path belongs to, or '' for a file outside the library."""
    parts = path.split("/")
    if parts[0] == "stitch":
        name = parts[-1].removesuffix(".h")
        if parts[1:2] == ["detail"]:
            return "core"
        if name not in PUBLIC:
            raise KeyError(f"public header {path} has no stage in scripts/check_layers.py")
        return PUBLIC[name]
    if len(parts) == 2 and parts[0] in STAGES:
        return parts[0]
    return ""


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    files = [(p, p.parent.name) for p in (root / "src").glob("*/*") if p.suffix in (".h", ".cpp")]
    files += [(p, PUBLIC[p.stem]) for p in (root / "include/stitch").glob("*.h")]
    problems = []
    for path, stage in files:
        if stage not in STAGES:
            if stage is None:
                continue
            problems.append(f"{path.relative_to(root)}: folder '{stage}' is not a stage")
            continue
        for included in INCLUDE.findall(path.read_text()):
            try:
                other = stage_of_include(included)
            except KeyError as e:
                problems.append(f"{path.relative_to(root)}: {e.args[0]}")
                continue
            if other and other is not None and STAGES.index(other) > STAGES.index(stage):
                problems.append(f"{path.relative_to(root)} ({stage}) includes {included} "
                                f"({other}), a later stage")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if problems:
        print(f"check_layers: {len(problems)} includes run backwards; stages, first to last: "
              f"{', '.join(STAGES)}", file=sys.stderr)
        return 1
    print(f"check_layers: {len(files)} files, every include in stage order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
