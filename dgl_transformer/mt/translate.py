"""``dgl-transformer translate`` (also ``python -m dgl_transformer.mt.translate``): plain text
in, translations out, with a trained checkpoint.

    dgl-transformer translate --checkpoint runs/default/final.pt < in.txt > out.txt
    dgl-transformer translate --checkpoint ... --input in.txt --output out.txt --beam 5
    dgl-transformer translate --checkpoint ... --nbest 3 < in.txt     # scored n-best lists

Exactly one output line per input line: input is split on ``\\n`` only (``\\r``, U+2028,
U+0085 and other separators stay inside their line), an empty or whitespace-only line gives an
empty line, and a line longer than the model's ``max_len`` (in subwords) is translated in
consecutive pieces whose translations are joined (a warning on stderr names the line).
Invalid UTF-8 bytes become U+FFFD; characters the subword model never saw are byte-encoded,
never an error. Output is UTF-8 with all whitespace runs (line separators included) turned
into single spaces. With ``--nbest K`` (the beam must be at least K), K lines per input line,
tab-separated: line number (from 1), rank (from 1), length-penalised score, log-probability,
translation; an empty line, or one translated in pieces, has one line. A damaged
checkpoint, or one whose vocabulary does not match its model, exits non-zero with a one-line
message naming the file. The library's translator is
:class:`dgl_transformer.mt.generate.Translator`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import BinaryIO

from .checkpoint import CheckpointError
from .command import main as run_command
from .command import positive_int
from .configs import ConfigError
from .data import DataError
from .generate import add_translator_arguments, translator_from_args

HELP = "translate plain text with a checkpoint"
ERRORS = (ConfigError, DataError, CheckpointError)


def read_lines(stream: BinaryIO) -> list[str]:
    """Lines split on ``\\n`` only (never on other Unicode separators), undecodable bytes
    replaced; a final newline does not add an empty line."""
    text = stream.read().decode("utf-8", errors="replace")
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def read_file(path: str) -> list[str]:
    """:func:`read_lines` of a file; a file that cannot be read is a one-line DataError."""
    try:
        with open(path, "rb") as f:
            return read_lines(f)
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``dgl-transformer translate``'s options."""
    add_translator_arguments(parser)
    parser.add_argument("--input", help="one sentence per line (default: standard input)")
    parser.add_argument("--output", help="translations, one per line (default: standard output)")
    parser.add_argument("--nbest", type=positive_int,
                        help="write the N best translations of each line, with their scores")


def command(args: argparse.Namespace) -> int:
    """``dgl-transformer translate``."""
    translator = translator_from_args(args)
    lines = read_file(args.input) if args.input else read_lines(sys.stdin.buffer)
    options = {"beam_size": args.beam, "length_penalty": args.length_penalty}
    if args.nbest:
        rows = [f"{n}\t{rank}\t{h.score:.4f}\t{h.logprob:.4f}\t{h.text}"
                for n, hyps in enumerate(translator.nbest(lines, args.nbest, **options), 1)
                for rank, h in enumerate(hyps, 1)]
    else:
        rows = translator.translate(lines, batch_size=args.batch_size, **options)
    for n, length in translator.long_lines:
        print(f"warning: line {n + 1} has {length} subwords (max_len "
              f"{translator.model.cfg.max_len}); translated in pieces", file=sys.stderr)
    out = "".join(row + "\n" for row in rows).encode("utf-8")
    if args.output:
        try:
            Path(args.output).write_bytes(out)
        except OSError as err:
            raise DataError(f"{args.output}: cannot write ({err.strerror})") from None
    else:
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m dgl_transformer.mt.translate``: ``dgl-transformer translate``."""
    return run_command("python -m dgl_transformer.mt.translate", HELP, add_arguments, command,
                       ERRORS, argv)


if __name__ == "__main__":
    sys.exit(main())
