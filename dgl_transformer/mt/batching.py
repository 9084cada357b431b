"""Token-budget batching of variable-length sentence pairs (no padding for the graph model).

A batch's size is its number of real tokens, ``sum(src_len + tgt_len)`` over its pairs: the
node count of the batched graph. (A padded dense batch costs ``n * max`` instead; with length
bucketing the two are close.) Pass the lengths as the model sees them, e.g. with BOS/EOS.

Orders are drawn from ``numpy.random.default_rng([seed, epoch])``, so the batches of an epoch
can be rebuilt exactly, and training resumed at batch ``k`` with ``make_batches(...)[k:]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def make_batches(
    src_lens: Sequence[int], tgt_lens: Sequence[int], max_tokens: int, *, shuffle: bool,
    seed: int = 0, epoch: int = 0, bucketed: bool = True,
) -> list[list[int]]:
    """Split pair indices into batches of at most ``max_tokens`` real tokens.

    Bucketed: pairs sorted by total then source length (ties broken at random when
    ``shuffle``), cut greedily, then the batch order shuffled. Not bucketed: pairs in random
    order (index order without ``shuffle``), cut greedily. A pair longer than ``max_tokens``
    gets a batch of its own. Every index appears in exactly one batch.
    """
    src = np.asarray(src_lens, dtype=np.int64)
    tgt = np.asarray(tgt_lens, dtype=np.int64)
    if src.shape != tgt.shape or src.ndim != 1:
        raise ValueError(f"make_batches: {src.shape} source lengths but {tgt.shape} target lengths")
    if len(src) and min(src.min(), tgt.min()) < 0:
        raise ValueError("make_batches: lengths must be >= 0")
    if max_tokens < 1:
        raise ValueError(f"make_batches: max_tokens must be >= 1, got {max_tokens}")
    rng = np.random.default_rng([seed, epoch])
    total = src + tgt
    if bucketed:
        tie_break = rng.permutation(len(src)) if shuffle else np.arange(len(src))
        order = np.lexsort((tie_break, src, total))
    else:
        order = rng.permutation(len(src)) if shuffle else np.arange(len(src))
    batches = _cut(order.tolist(), total.tolist(), max_tokens)
    if bucketed and shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _cut(order: list[int], sizes: list[int], max_tokens: int) -> list[list[int]]:
    """Greedily group ``order`` into runs whose ``sizes`` sum to at most ``max_tokens``."""
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        if current and used + sizes[i] > max_tokens:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += sizes[i]
    if current:
        batches.append(current)
    return batches
