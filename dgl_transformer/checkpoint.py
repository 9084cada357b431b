"""Checkpoints that survive a crash at any instant.

A checkpoint is written to a temporary file in the same directory, flushed and fsync'ed, then
renamed over the target (``os.replace`` is atomic on POSIX), and the directory is fsync'ed.
The run directory keeps ``last.pt`` and the one before it, ``prev.pt``; a reader that finds
``last.pt`` truncated or corrupt falls back to ``prev.pt`` and says so.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "dgl-transformer-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_atomic(obj: dict[str, Any], path: str | Path) -> None:
    """Write ``obj`` to ``path`` so that ``path`` is always either the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **obj}, buffer)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint; any damage becomes a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for damaged zip/pickle data
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({reason})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a dgl-transformer checkpoint")
    return obj


def rotate_and_save(obj: dict[str, Any], run_dir: str | Path) -> Path:
    """Save as ``run_dir/last.pt``, keeping the previous good one as ``prev.pt``."""
    run_dir = Path(run_dir)
    last, prev = run_dir / "last.pt", run_dir / "prev.pt"
    tmp = run_dir / "next.pt"
    save_atomic(obj, tmp)
    if last.exists():
        os.replace(last, prev)
    os.replace(tmp, last)
    _fsync_dir(run_dir)
    return last


def load_latest(run_dir: str | Path) -> dict[str, Any] | None:
    """The newest usable checkpoint of a run (``last.pt``, else ``prev.pt``), or None."""
    run_dir = Path(run_dir)
    candidates = [p for p in (run_dir / "last.pt", run_dir / "prev.pt") if p.exists()]
    errors = []
    for path in candidates:
        try:
            obj = load(path)
        except CheckpointError as err:
            errors.append(str(err))
            continue
        for e in errors:
            print(f"warning: {e}; resuming from {path} instead", file=sys.stderr)
        return obj
    if errors:
        raise CheckpointError("; ".join(errors) + ": no usable checkpoint to resume from")
    return None
