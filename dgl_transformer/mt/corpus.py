"""The corpus a run trains and validates on: Multi30k fetched, read, encoded into id tensors.

* :func:`ensure_data`: the data root of a run, fetched if absent (``mt/data.py``).
* :func:`load_splits`: the training pairs (blank and over-long ones dropped) and the
  validation pairs, encoded with the run's :class:`~dgl_transformer.mt.text.TextPipeline`.
* :class:`Split`: encoded pairs and the references BLEU is scored against.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from ..nn.batch import PackedBatch
from .configs import RunConfig
from .data import fetch, filter_pairs, read_split
from .text import TextPipeline


@dataclass
class Split:
    src: list[Tensor]
    tgt: list[Tensor]
    refs_raw: list[str]  # cased raw target side, for BLEU
    refs_tok: list[str]  # official lowercased tokenised target side, for BLEU

    def lengths(self) -> tuple[list[int], list[int]]:
        """Token-budget lengths of every pair: source tokens, decoder positions."""
        return PackedBatch.pair_lengths(self.src, self.tgt)


def ensure_data(cfg: RunConfig) -> Path:
    """The data root, fetched (from ``MULTI30K_DIR`` or the canonical URLs) if absent."""
    root = Path(cfg.data.root)
    langs = (cfg.data.src_lang, cfg.data.tgt_lang)
    report = fetch(root, langs=langs)
    if report.fetched:
        print(report.summary(), file=sys.stderr)
    return root


def encode_split(
    pipeline: TextPipeline, src: list[str], tgt: list[str], refs_raw: list[str],
    refs_tok: list[str],
) -> Split:
    def as_tensor(text: str, lang: str) -> Tensor:
        return torch.tensor(pipeline.encode(text, lang), dtype=torch.int64)

    return Split([as_tensor(s, pipeline.src_lang) for s in src],
                 [as_tensor(t, pipeline.tgt_lang) for t in tgt], refs_raw, refs_tok)


def load_splits(
    cfg: RunConfig, pipeline: TextPipeline, root: Path
) -> tuple[Split, Split, str]:
    """Training pairs (blank and over-long ones dropped), val, and a one-line report.

    ``data.train_limit`` and ``data.val_limit`` keep only the first pairs (0: all). A val pair
    with a side longer than ``data.max_len`` subwords is left out too (the model could not
    score it), and the report counts it: validation never loses a pair silently.
    """
    src, tgt = pipeline.read(root, "train")
    if cfg.data.train_limit:
        src, tgt = src[: cfg.data.train_limit], tgt[: cfg.data.train_limit]

    def length(lang: str) -> Callable[[str], int]:
        return lru_cache(maxsize=None)(lambda text: len(pipeline.encode(text, lang)))

    src_len, tgt_len = length(pipeline.src_lang), length(pipeline.tgt_lang)
    src, tgt, report = filter_pairs(src, tgt, cfg.data.max_len, src_len, tgt_len)
    val_src, val_tgt = pipeline.read(root, "val")
    refs_raw = read_split(root, "val", pipeline.tgt_lang, "raw")
    refs_tok = read_split(root, "val", pipeline.tgt_lang, "tok")
    n = cfg.data.val_limit or len(val_src)
    keep = [i for i in range(min(n, len(val_src)))
            if max(src_len(val_src[i]), tgt_len(val_tgt[i])) <= cfg.data.max_len]
    dropped = min(n, len(val_src)) - len(keep)
    val_report = (f"; val: {dropped} pair(s) longer than data.max_len={cfg.data.max_len} "
                  "subwords left out" if dropped else "")
    return (
        encode_split(pipeline, src, tgt, [], []),
        encode_split(pipeline, [val_src[i] for i in keep], [val_tgt[i] for i in keep],
                     [refs_raw[i] for i in keep], [refs_tok[i] for i in keep]),
        f"train: {report}{val_report}",
    )
