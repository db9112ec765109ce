"""BENCHMARKS.md, one section per benchmark script: a script owns the body under its heading and
leaves the rest of the file as it is (``--write``)."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace the body under ``heading`` (up to the next ``## `` heading) with ``body``, or
    append the section when the file has no such heading."""
    text = path.read_text(encoding="utf-8")
    if heading in text:
        start = text.index(heading) + len(heading)
        nxt = text.find("\n## ", start)
        end = len(text) if nxt < 0 else nxt
        text = text[:start] + "\n\n" + body + "\n" + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + heading + "\n\n" + body + "\n"
    path.write_text(text, encoding="utf-8")
