"""Toy seq2seq tasks on digit strings (copy, reverse, sort) and a small trainer for them.

Vocabulary: the four special ids of :mod:`dgl_transformer.tokens`, then the digits, so digit
``d`` is token ``NUM_SPECIALS + d``. Used by the tests and the notebooks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .nn.config import TransformerConfig
from .nn.decoding import translate
from .nn.model import GraphTransformer
from .tokens import NUM_SPECIALS
from .training import build_optimizer, train_step

TASKS = ("copy", "reverse", "sort")
VOCAB = NUM_SPECIALS + 10


def make_task(
    task: str, n: int, min_len: int = 1, max_len: int = 10, seed: int = 0
) -> tuple[list[Tensor], list[Tensor]]:
    """``n`` random digit strings and their targets under ``task``."""
    if task not in TASKS:
        raise ValueError(f"unknown toy task {task!r}; choose one of {TASKS}")
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=gen).tolist()
    src = [torch.randint(NUM_SPECIALS, VOCAB, (n_tok,), generator=gen) for n_tok in lengths]
    if task == "copy":
        return src, [s.clone() for s in src]
    if task == "reverse":
        return src, [s.flip(0) for s in src]
    return src, [s.sort().values for s in src]


def toy_config(**overrides: object) -> TransformerConfig:
    """A model small enough to learn the toy tasks in well under a minute on a CPU."""
    base = dict(
        src_vocab=VOCAB, tgt_vocab=VOCAB, d_model=64, n_heads=4, d_ff=128, n_enc_layers=2,
        n_dec_layers=2, dropout=0.0, max_len=32, share_embeddings=True,
    )
    return TransformerConfig(**{**base, **overrides})


def train_toy(
    model: GraphTransformer,
    src: Sequence[Tensor],
    tgt: Sequence[Tensor],
    steps: int = 600,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[float]:
    """Adam with linear warm-up then inverse-sqrt decay, via :func:`train_step`; returns the
    loss of every step."""
    gen = torch.Generator().manual_seed(seed)
    opt, sched = build_optimizer(model.parameters(), lr=lr, warmup_steps=max(1, steps // 10))
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(src), (batch_size,), generator=gen).tolist()
        batch = model.collate([src[i] for i in idx], [tgt[i] for i in idx])
        losses.append(train_step(model, batch, opt, sched, clip_norm=1.0).loss)
    model.eval()
    return losses


def exact_match(
    model: GraphTransformer, src: Sequence[Tensor], tgt: Sequence[Tensor], beam_size: int = 1
) -> float:
    """Fraction of sources whose decoded output equals the target exactly."""
    out = translate(model, list(src), beam_size=beam_size, max_len=model.cfg.max_len)
    return sum(torch.equal(o, t) for o, t in zip(out, tgt, strict=True)) / len(src)
