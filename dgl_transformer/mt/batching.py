"""Token-budget batching of variable-length sentence pairs (no padding for the graph model).

Two ways to measure a batch against ``max_tokens`` (:data:`RULES`):

* ``"tokens"``: its number of real tokens, ``sum(src_len + tgt_len)`` over its pairs, the node
  count of the batched graph (a padded dense batch costs ``n * max`` instead; with length
  bucketing the two are close). Pass the lengths as the model sees them, e.g. with BOS/EOS.
* ``"fairseq"``: fairseq's rule, sentences x the longest side in the batch (``max(src, tgt)``
  of its longest pair), cut to a multiple of 8 sentences when a batch is full as fairseq's
  ``--required-batch-size-multiple 8`` does. Pairs are ordered by source, then target length,
  as fairseq orders them. Pass the lengths fairseq counts (both sides with EOS) to build its
  batches.

:func:`group_updates` then joins consecutive batches into one update, as fairseq's data
parallelism (one batch per GPU) or ``--update-freq`` does.

Orders are drawn from ``numpy.random.default_rng([seed, epoch])``, so the batches of an epoch
can be rebuilt exactly, and training resumed at batch ``k`` with ``make_batches(...)[k:]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: How a batch is measured against ``max_tokens`` (see the module docstring).
RULES = ("tokens", "fairseq")
#: fairseq's ``--required-batch-size-multiple`` default.
FAIRSEQ_MULTIPLE = 8


def make_batches(
    src_lens: Sequence[int], tgt_lens: Sequence[int], max_tokens: int, *, shuffle: bool,
    seed: int = 0, epoch: int = 0, bucketed: bool = True, rule: str = "tokens",
) -> list[list[int]]:
    """Split pair indices into batches of at most ``max_tokens`` by ``rule`` (:data:`RULES`).

    Bucketed: pairs sorted (``"tokens"``: by total, then source length; ``"fairseq"``: by
    source, then target length), ties broken at random when ``shuffle``, cut
    greedily, then the batch order shuffled. Not bucketed: pairs in random order (index order
    without ``shuffle``), cut greedily. A pair over ``max_tokens`` gets a batch of its own.
    Every index appears in exactly one batch.
    """
    if rule not in RULES:
        raise ValueError(f"make_batches: rule must be one of {', '.join(RULES)}, got {rule!r}")
    src = np.asarray(src_lens, dtype=np.int64)
    tgt = np.asarray(tgt_lens, dtype=np.int64)
    if src.shape != tgt.shape or src.ndim != 1:
        raise ValueError(f"make_batches: {src.shape} source lengths but {tgt.shape} target lengths")
    if len(src) and min(src.min(), tgt.min()) < 0:
        raise ValueError("make_batches: lengths must be >= 0")
    if max_tokens < 1:
        raise ValueError(f"make_batches: max_tokens must be >= 1, got {max_tokens}")
    rng = np.random.default_rng([seed, epoch])
    size = src + tgt if rule == "tokens" else np.maximum(src, tgt)
    if bucketed:
        tie_break = rng.permutation(len(src)) if shuffle else np.arange(len(src))
        keys = (tie_break, src, size) if rule == "tokens" else (tie_break, tgt, src)
        order = np.lexsort(keys)
    else:
        order = rng.permutation(len(src)) if shuffle else np.arange(len(src))
    cut = _cut if rule == "tokens" else _cut_fairseq
    batches = cut(order.tolist(), size.tolist(), max_tokens)
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


def _cut_fairseq(order: list[int], sizes: list[int], max_tokens: int) -> list[list[int]]:
    """Group ``order`` so that sentences x largest size <= ``max_tokens``; a full batch keeps
    the largest multiple of :data:`FAIRSEQ_MULTIPLE` sentences (or all, if fewer) and passes
    the rest on, as fairseq's ``batch_by_size`` does."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        longest_with = max(longest, sizes[i])
        if current and longest_with * (len(current) + 1) > max_tokens:
            keep = max(FAIRSEQ_MULTIPLE * (len(current) // FAIRSEQ_MULTIPLE),
                       len(current) % FAIRSEQ_MULTIPLE)
            batches.append(current[:keep])
            current = current[keep:]
            longest = max((sizes[j] for j in current), default=0)
            longest_with = max(longest, sizes[i])
        current.append(i)
        longest = longest_with
    if current:
        batches.append(current)
    return batches


def group_updates(batches: list[list[int]], per_update: int) -> list[list[int]]:
    """Join every ``per_update`` consecutive batches into one update (the last update may
    join fewer): the sentences that ``per_update`` GPUs, or ``--update-freq``, would see in
    one optimiser step."""
    if per_update < 1:
        raise ValueError(f"group_updates: per_update must be >= 1, got {per_update}")
    return [[i for batch in batches[k : k + per_update] for i in batch]
            for k in range(0, len(batches), per_update)]
