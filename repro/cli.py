"""What the analysis commands share: reading one trained model, one-line errors, and result
files that are either complete or absent (``make experiments`` skips what exists)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dgl_transformer.mt.checkpoint import CheckpointError
from dgl_transformer.mt.data import DataError


def checkpoint_parser(prog: str, doc: str, out_help: str) -> argparse.ArgumentParser:
    """A parser with ``--checkpoint`` (a ``final.pt``), ``--out`` and ``--root``."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help=out_help)
    parser.add_argument("--root", type=Path, default=None,
                        help="data root (default: the checkpoint's data.root)")
    return parser


def exit_status(call: Callable[[], str]) -> int:
    """Run ``call``; print what it returns and give 0, or one ``error: ...`` line and 1."""
    try:
        message = call()
    except (CheckpointError, DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(message, file=sys.stderr)
    return 0


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; moved onto ``path`` only when the block
    succeeds, so an interrupted write never leaves a partial file under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, record: dict) -> None:
    """``record`` as indented JSON at ``path``, written atomically (see :func:`replacing`)."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
