"""Generated sections of a markdown file: the text between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` belongs to the code that writes section ``NAME``, nothing else."""

from __future__ import annotations

import re
from pathlib import Path


def markers(section: str) -> tuple[str, str]:
    """The begin and end markers of ``section``."""
    return f"<!-- {section}:begin -->", f"<!-- {section}:end -->"


def _marked(path: Path, section: str) -> str:
    """The content of ``path``; a one-line error if it lacks ``section``'s markers."""
    content = path.read_text(encoding="utf-8")
    begin, end = markers(section)
    if begin not in content or end not in content:
        raise SystemExit(f"error: {path}: missing {begin} / {end} markers")
    return content


def read_section(path: Path, section: str) -> str:
    """The text between ``section``'s markers in ``path``, without the newlines around it."""
    begin, end = markers(section)
    return _marked(path, section).split(begin, 1)[1].split(end, 1)[0].strip("\n")


def write_section(path: Path, section: str, text: str) -> None:
    """Replace what stands between ``section``'s markers in ``path`` with ``text``."""
    content = _marked(path, section)
    begin, end = markers(section)
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    path.write_text(pattern.sub(lambda _: f"{begin}\n{text}\n{end}", content), encoding="utf-8")
