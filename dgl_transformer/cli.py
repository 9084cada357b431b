"""``dgl-transformer``: one command for the translation pipeline.

    dgl-transformer data [--dest data/multi30k]                     fetch and verify Multi30k
    dgl-transformer train --config repro/configs/default.yaml [--resume] [--set k=v ...]
    dgl-transformer translate --checkpoint runs/default/final.pt [--input F] [--output F]
    dgl-transformer evaluate --checkpoint runs/default/final.pt [--split S | --src F --ref F]

``python -m dgl_transformer`` is the same command, and ``python -m dgl_transformer.mt.data``
(``.train``, ``.translate``, ``.evaluate``) runs one subcommand. Each subcommand lives in its
module (``add_arguments``, ``command``, ``ERRORS``: see :mod:`dgl_transformer.mt.command`);
bad input is one ``error: ...`` line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from . import __version__

#: Each subcommand's module (imported when the command runs: the network alone, without the
#: ``mt`` extra, installs this script too).
COMMANDS = {name: f"dgl_transformer.mt.{name}" for name in ("data", "train", "translate",
                                                             "evaluate")}


def _modules() -> dict[str, ModuleType]:
    return {name: importlib.import_module(path) for name, path in COMMANDS.items()}


def parser(modules: dict[str, ModuleType], prog: str = "dgl-transformer"
           ) -> argparse.ArgumentParser:
    """The top-level parser, one subparser per command."""
    top = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0].replace("``", ""))
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in modules.items():
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return top


def main(argv: Sequence[str] | None = None, prog: str = "dgl-transformer") -> int:
    """``dgl-transformer [COMMAND] ...``; returns the exit status."""
    try:
        modules = _modules()
    except ImportError as err:
        print(f"error: the dgl-transformer command needs the translation pipeline's packages "
              f"({err.name} is missing): pip install 'dgl-transformer[mt]'", file=sys.stderr)
        return 1
    from .mt.command import execute

    args = parser(modules, prog).parse_args(argv)
    module = modules[args.command]
    return execute(args, module.command, module.ERRORS)


if __name__ == "__main__":
    sys.exit(main())
