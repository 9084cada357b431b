"""Translate plain text with a trained checkpoint, one sentence per line.

    python -m dgl_transformer.mt.translate --checkpoint runs/default/final.pt < in.txt > out.txt

Exactly one output line per input line: input is split on ``\\n`` only (``\\r``, U+2028,
U+0085 and other separators stay inside their line), an empty or whitespace-only line gives an
empty line, and a line longer than the model's ``max_len`` (in subwords) is translated in
consecutive pieces whose translations are joined (a warning on stderr names the line).
Invalid UTF-8 bytes become U+FFFD; characters the subword model never saw are byte-encoded,
never an error. Output is UTF-8 with all whitespace runs (line separators included) turned
into single spaces. A damaged checkpoint, or one whose vocabulary does not match its model,
exits non-zero with a one-line message naming the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..nn.config import TransformerConfig
from ..nn.model import GraphTransformer
from .checkpoint import CheckpointError, TrainedModel
from .configs import RunConfig
from .evaluate import translate_ids
from .text import TextPipeline


def load_translator(path: str | Path) -> tuple[GraphTransformer, TextPipeline, RunConfig]:
    """Model (eval mode), text pipeline and (validated) run configuration of a checkpoint.

    Anything wrong with the checkpoint raises a one-line :class:`CheckpointError`.
    """
    state = TrainedModel.load(path)
    try:
        pipeline = TextPipeline.from_state(state.pipeline)
        cfg = TransformerConfig.from_dict(state.model_config)
        run_cfg = RunConfig.from_dict(state.run_config, "run_config")
        model = GraphTransformer(cfg)
        model.load_state_dict(state.model)
    except KeyError as err:
        raise CheckpointError(f"{path}: checkpoint lacks {err}") from None
    except Exception as err:  # a damaged state can raise almost any type
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: unusable checkpoint ({reason})") from None
    vocab = pipeline.tokenizer.vocab_size
    if (cfg.src_vocab, cfg.tgt_vocab) != (vocab, vocab):
        raise CheckpointError(
            f"{path}: vocabulary mismatch: the model expects {cfg.src_vocab}/{cfg.tgt_vocab} "
            f"ids, its subword model has {vocab}"
        )
    return model.eval(), pipeline, run_cfg


def read_lines(stream) -> list[str]:
    """Lines split on ``\\n`` only (never on other Unicode separators), undecodable bytes
    replaced; a final newline does not add an empty line."""
    text = stream.read().decode("utf-8", errors="replace")
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def pieces(ids: list[int], limit: int) -> list[list[int]]:
    """``ids`` cut into consecutive runs of at most ``limit``."""
    return [ids[i : i + limit] for i in range(0, len(ids), limit)] or [[]]


def translate_lines(
    model: GraphTransformer, pipeline: TextPipeline, lines: list[str], **decode
) -> list[str]:
    """One plain-text translation per line, long lines translated piece by piece."""
    limit = model.cfg.max_len
    chunks: list[list[int]] = []
    owner: list[int] = []
    for n, line in enumerate(lines):
        ids = pipeline.encode_src(line) if line.strip() else []
        if len(ids) > limit:
            print(f"warning: line {n + 1} has {len(ids)} subwords (max_len {limit}); "
                  "translated in pieces", file=sys.stderr)
        for chunk in pieces(ids, limit):
            chunks.append(chunk)
            owner.append(n)
    out: list[list[str]] = [[] for _ in lines]
    for n, hyp in zip(owner, translate_ids(model, chunks, **decode), strict=True):
        text = pipeline.decode_tgt(hyp, plain=True) if hyp else ""
        out[n].append(" ".join(text.split()))  # no newline can leak into the output
    return [" ".join(p for p in parts if p) for parts in out]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dgl_transformer.mt.translate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--beam-size", type=_positive_int, default=None)
    parser.add_argument("--length-penalty", type=_non_negative_float, default=None)
    parser.add_argument("--threads", type=_positive_int, default=None)
    args = parser.parse_args(argv)
    try:
        model, pipeline, run_cfg = load_translator(args.checkpoint)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    decode = dict(vars(run_cfg.eval))
    for key, value in (("beam_size", args.beam_size), ("length_penalty", args.length_penalty)):
        if value is not None:
            decode[key] = value
    lines = read_lines(sys.stdin.buffer)
    out = "".join(line + "\n" for line in translate_lines(model, pipeline, lines, **decode))
    sys.stdout.buffer.write(out.encode("utf-8"))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
