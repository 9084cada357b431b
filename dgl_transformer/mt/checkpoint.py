"""Checkpoints that survive a crash at any instant, and say so when they are damaged.

A checkpoint is ``torch.save`` output followed by a trailer holding the SHA-256 of everything
before it, so truncation and flipped bytes anywhere are detected on load (``torch.load``
alone misses damage inside tensor data); plain ``torch.load`` still reads the file. It is
written to a temporary file in the same directory, flushed and fsync'ed, then renamed over
the target (``os.replace`` is atomic on POSIX), and the directory is fsync'ed.

A run directory keeps ``last.pt`` and the one before it, ``prev.pt``; :func:`load_latest`
falls back to ``prev.pt`` when ``last.pt`` is missing or damaged, and says so on stderr.

Every file carries ``format`` (:data:`FORMAT`, whose number is the schema version); a file of
another version is refused with one line naming both versions. A trained model (``final.pt``)
has one schema, :class:`TrainedModel`, with :meth:`TrainedModel.save` and
:meth:`TrainedModel.load`; ``translate``, ``repro/run.py`` and the tests all go through it.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..nn.graphs import CUSTOM as CUSTOM_GRAPH

FORMAT = "dgl-transformer-checkpoint/3"
TRAILER_TAG = b"\ndgl-transformer-sha256:"
TRAILER_LEN = len(TRAILER_TAG) + 64  # the tag, then the digest as 64 hex digits


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used; the message is one line naming the file."""


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
    digest = hashlib.sha256(buffer.getbuffer()).hexdigest().encode("ascii")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.write(TRAILER_TAG + digest)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


#: What ``torch.load`` raises for a file that is not a loadable torch file (damaged zip or
#: pickle data, a disallowed global under ``weights_only``); anything else is a bug.
TORCH_LOAD_ERRORS = (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError)


def _first_sentence(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text.split(". ")[0]


def load(path: str | Path) -> dict[str, Any]:
    """Read and verify a checkpoint; any damage becomes a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read ({err.strerror})") from None
    body, trailer = data[:-TRAILER_LEN], data[-TRAILER_LEN:]
    if len(data) < TRAILER_LEN or not trailer.startswith(TRAILER_TAG):
        raise CheckpointError(
            f"{path}: truncated, or not a dgl-transformer checkpoint (no checksum trailer)"
        )
    if hashlib.sha256(body).hexdigest().encode("ascii") != trailer[len(TRAILER_TAG) :]:
        raise CheckpointError(f"{path}: corrupt checkpoint (SHA-256 mismatch)")
    try:
        obj = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as err:
        raise CheckpointError(f"{path}: unreadable checkpoint ({_first_sentence(err)})") from None
    found = obj.get("format") if isinstance(obj, dict) else None
    if found != FORMAT:
        raise CheckpointError(f"{path}: checkpoint version {found!r}, but this code reads "
                              f"{FORMAT!r}: retrain, or translate with the release that wrote it")
    return obj


def _remove_stale_temporaries(run_dir: Path) -> None:
    """Temporary files a killed writer left behind (``save_atomic`` names them ``.*.tmp``)."""
    for tmp in run_dir.glob(".*.pt.*.tmp"):
        tmp.unlink(missing_ok=True)


def rotate_and_save(obj: dict[str, Any], run_dir: str | Path) -> Path:
    """Save as ``run_dir/last.pt``, keeping the previous one as ``prev.pt``.

    A crash between the two renames leaves no ``last.pt`` but a good ``prev.pt`` (and a
    complete ``next.pt``, overwritten by the next save), which :func:`load_latest` uses.
    """
    run_dir = Path(run_dir)
    _remove_stale_temporaries(run_dir)
    last, prev, tmp = run_dir / "last.pt", run_dir / "prev.pt", run_dir / "next.pt"
    save_atomic(obj, tmp)
    if last.exists():
        os.replace(last, prev)
    os.replace(tmp, last)
    _fsync_dir(run_dir)
    return last


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a rotating checkpoint (good or not)."""
    return any((Path(run_dir) / name).exists() for name in ("last.pt", "prev.pt"))


def load_latest(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The path and content of the newest usable checkpoint of a run (``last.pt``, else
    ``prev.pt``), or None if the directory has neither. Falling back prints one warning line
    per unusable file."""
    if not has_checkpoint(run_dir):
        return None
    errors = []
    for path in (Path(run_dir) / "last.pt", Path(run_dir) / "prev.pt"):
        try:
            obj = load(path)
        except CheckpointError as err:
            errors.append(str(err))
            continue
        for e in errors:
            print(f"warning: {e}; resuming from {path} instead", file=sys.stderr)
        return path, obj
    raise CheckpointError("; ".join(errors) + ": no usable checkpoint to resume from")


@dataclass
class TrainedModel:
    """The schema of ``final.pt``: everything ``translate`` needs, and the run's record.

    ``run_config``, ``model_config`` and ``pipeline`` are the plain-dict forms of
    :class:`~dgl_transformer.mt.configs.RunConfig`, :class:`~dgl_transformer.TransformerConfig`
    and :class:`~dgl_transformer.mt.text.TextPipeline`; ``model`` is the state dict of the
    chosen weights (``chosen``: ``last`` or ``average_last_N``), ``candidates`` their
    validation scores, ``history`` the per-epoch records.
    """

    run_config: dict[str, Any]
    model_config: dict[str, Any]
    pipeline: dict[str, Any]
    model: dict[str, Any]
    chosen: str = "last"
    candidates: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None
    train_seconds: float = 0.0
    steps: int = 0

    def save(self, path: str | Path) -> None:
        """Write atomically, with the checksum trailer. A model whose encoder graph came from
        a builder in code (``encoder_graph="custom"``) is refused: the file could not say
        which graph its weights were trained on."""
        if self.model_config.get("encoder_graph") == CUSTOM_GRAPH:
            raise CheckpointError(
                f"{path}: the model's encoder graph comes from a custom builder, which a "
                "checkpoint cannot record: name a registered graph in the config "
                "(model.encoder_graph), or save the weights with torch.save")
        save_atomic({"kind": "trained_model", **{f.name: getattr(self, f.name)
                                                 for f in fields(self)}}, path)

    @classmethod
    def load(cls, path: str | Path) -> TrainedModel:
        """Read and verify ``path``; a missing field is a one-line :class:`CheckpointError`."""
        obj = load(path)
        if obj.get("kind") != "trained_model":
            raise CheckpointError(f"{path}: not a trained model (final.pt) checkpoint")
        names = [f.name for f in fields(cls)]
        missing = [n for n in ("run_config", "model_config", "pipeline", "model") if n not in obj]
        if missing:
            raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
        return cls(**{n: obj[n] for n in names if n in obj})
