"""A section of BENCHMARKS.md that a benchmark of its own writes, between
two markers (<!-- begin:NAME --> ... <!-- end:NAME -->): bench/run.sh's
report keeps every such section it finds."""

from pathlib import Path


def markers(name):
    return f"<!-- begin:{name} -->", f"<!-- end:{name} -->"


def write_section(path, name, section):
    """Replaces section `name` of the Markdown file (or appends it);
    `section` includes its markers."""
    begin, end = markers(name)
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
