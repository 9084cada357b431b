"""Attention graphs for a batch of variable-length sequences, with no padding anywhere.

A batch of sentences is *packed*: the tokens of sentence 0 get node ids ``0 .. L0-1``, the tokens
of sentence 1 the next ``L1`` ids, and so on, so sentence ``b`` is the slice
``offsets[b] : offsets[b] + lengths[b]`` of any node tensor. Every graph here has its edges
sorted by destination, and an edge ``j -> i`` means "token ``i`` attends to token ``j``".

* :func:`complete_graph`: encoder self-attention, every token to every token of its sentence
  (self-loops included); ``sum(L**2)`` edges instead of ``B * max(L)**2`` padded scores.
* :func:`causal_graph`: decoder self-attention, ``j -> i`` only when ``j <= i``.
* :func:`cross_graph`: encoder-decoder attention, a bipartite graph from the source tokens of
  pair ``b`` to the target tokens of the same pair.
* :func:`window_graph`: a sparse encoder graph, ``j -> i`` when ``|i - j| <= w``.

Self-attention graphs are homogeneous DGL graphs; the cross graph is a unidirectional bipartite
graph (source node type ``src``, destination type ``dst``), so one attention routine handles all.
"""

from __future__ import annotations

from collections.abc import Sequence

import dgl
import torch
from torch import Tensor

Lengths = Sequence[int] | Tensor


def as_lengths(lengths: Lengths) -> Tensor:
    """Lengths as a 1-D int64 CPU tensor, each >= 1."""
    out = torch.as_tensor(lengths, dtype=torch.int64).reshape(-1).cpu()
    if out.numel() and int(out.min()) < 1:
        raise ValueError(f"every sequence length must be >= 1, got {out.tolist()}")
    return out


def offsets(lengths: Lengths) -> Tensor:
    """Node id of the first token of each sentence: ``[0, L0, L0+L1, ...]`` (length B)."""
    lens = as_lengths(lengths)
    return torch.cumsum(lens, 0) - lens


def positions(lengths: Lengths) -> Tensor:
    """Position of every packed token inside its own sentence: ``[0..L0-1, 0..L1-1, ...]``."""
    lens = as_lengths(lengths)
    return torch.arange(int(lens.sum())) - torch.repeat_interleave(offsets(lens), lens)


def sentence_ids(lengths: Lengths) -> Tensor:
    """Index of the sentence each packed token belongs to."""
    lens = as_lengths(lengths)
    return torch.repeat_interleave(torch.arange(len(lens)), lens)


def _ranges(first: Tensor, count: Tensor) -> tuple[Tensor, Tensor]:
    """Edges into destination ``i`` from the ``count[i]`` consecutive sources ``first[i]...``."""
    dst = torch.repeat_interleave(torch.arange(len(count)), count)
    start_of_block = torch.cumsum(count, 0) - count
    src = torch.repeat_interleave(first - start_of_block, count) + torch.arange(int(count.sum()))
    return src, dst


def _homogeneous(
    src: Tensor, dst: Tensor, num_nodes: int, device: torch.device | None
) -> dgl.DGLGraph:
    return dgl.graph((src, dst), num_nodes=num_nodes, device=device or "cpu")


def complete_graph(lengths: Lengths, device: torch.device | None = None) -> dgl.DGLGraph:
    """Encoder self-attention: each token receives from every token of its sentence."""
    lens = as_lengths(lengths)
    sent = sentence_ids(lens)
    src, dst = _ranges(offsets(lens)[sent], lens[sent])
    return _homogeneous(src, dst, int(lens.sum()), device)


def causal_graph(lengths: Lengths, device: torch.device | None = None) -> dgl.DGLGraph:
    """Decoder self-attention: token ``i`` receives from tokens ``0..i`` of its sentence."""
    lens = as_lengths(lengths)
    sent = sentence_ids(lens)
    src, dst = _ranges(offsets(lens)[sent], positions(lens) + 1)
    return _homogeneous(src, dst, int(lens.sum()), device)


def window_graph(lengths: Lengths, window: int, device: torch.device | None = None) -> dgl.DGLGraph:
    """Local self-attention: token ``i`` receives from tokens ``j`` with ``|i - j| <= window``."""
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    lens = as_lengths(lengths)
    sent = sentence_ids(lens)
    pos = positions(lens)
    lo = (pos - window).clamp(min=0)
    hi = torch.minimum(pos + window, lens[sent] - 1)
    src, dst = _ranges(offsets(lens)[sent] + lo, hi - lo + 1)
    return _homogeneous(src, dst, int(lens.sum()), device)


def cross_graph(
    src_lengths: Lengths,
    tgt_lengths: Lengths,
    src_of_tgt_sentence: Tensor | None = None,
    device: torch.device | None = None,
) -> dgl.DGLGraph:
    """Encoder -> decoder attention: target tokens of pair ``b`` receive from its source tokens.

    ``src_of_tgt_sentence[b]`` says which source sentence target sentence ``b`` reads (by
    default target ``b`` reads source ``b``); beam search uses it to let ``k`` hypotheses share
    one encoded source without copying it.
    """
    slens, tlens = as_lengths(src_lengths), as_lengths(tgt_lengths)
    which = torch.arange(len(tlens)) if src_of_tgt_sentence is None else src_of_tgt_sentence.cpu()
    if src_of_tgt_sentence is None and len(slens) != len(tlens):
        raise ValueError(f"cross_graph: {len(slens)} source vs {len(tlens)} target sentences")
    per_token = torch.repeat_interleave(which, tlens)
    src, dst = _ranges(offsets(slens)[per_token], slens[per_token])
    return dgl.heterograph(
        {("src", "attends", "dst"): (src, dst)},
        num_nodes_dict={"src": int(slens.sum()), "dst": int(tlens.sum())},
        device=device or "cpu",
    )
