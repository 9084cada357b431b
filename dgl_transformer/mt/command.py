"""What every command of the pipeline shares: a parser, and one-line errors.

Each command module (``mt/data.py``, ``mt/train.py``, ``mt/translate.py``, ``mt/evaluate.py``)
defines ``add_arguments(parser)``, ``command(args) -> exit status`` and ``ERRORS``, the
exceptions that mean bad input (a file, a config, a checkpoint) rather than a bug. This module
runs such a command: an expected error becomes ``error: ...`` on stderr and exit status 1;
anything else keeps its traceback. ``dgl_transformer.cli`` gathers the commands under one
``dgl-transformer``; each module's ``main`` runs it alone (``python -m ...``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Command = Callable[[argparse.Namespace], int]


def execute(args: argparse.Namespace, command: Command,
            errors: tuple[type[BaseException], ...]) -> int:
    """Run ``command``; an error of ``errors`` is one line on stderr and status 1."""
    try:
        return command(args)
    except errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(prog: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
         command: Command, errors: tuple[type[BaseException], ...],
         argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's) for one command and run it."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    return execute(parser.parse_args(argv), command, errors)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value
