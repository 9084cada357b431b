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
* :func:`window_global_graph`: the window plus ``g`` global tokens (the first ``g`` of each
  sentence) that every token hears and that hear every token (Longformer-like).
* :func:`random_graph`: each token hears itself and random others of its sentence, as many as
  in the window graph (same in-degrees, random wiring).
* :func:`span_graph`: a BP-Transformer-like hierarchy. Extra *span nodes* (a binary tree over
  each sentence) summarise pieces of it; a token hears its window and, at every scale, the
  span of the other half, so any two tokens are at most two edges apart. Span nodes come after
  all the batch's tokens (node ids ``sum(L) ...``).
* :class:`LearnedGraph`: a graph per sentence read from a file (the strongest edges of a
  trained model, frozen; written by ``repro/learned_graph.py``).
* :func:`encoder_graph_builder` turns a config string (``"complete"``, ``"window:4"``,
  ``"window_global:4:1"``, ``"random:4"``, ``"hierarchy:2"``, ``"learned:4"``) into one of
  these builders.

Self-attention graphs are homogeneous DGL graphs; the cross graph is a unidirectional bipartite
graph (source node type ``src``, destination type ``dst``), so one attention routine handles all.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable, Sequence

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


def _from_mask(lengths: Tensor, mask: Tensor, device: torch.device | None) -> dgl.DGLGraph:
    """The graph whose edges ``j -> i`` of sentence ``b`` are ``mask[b, i, j]`` (a padded
    ``[B, L, L]`` mask; only ``i, j < lengths[b]`` may be set), sorted by destination."""
    b, i, j = mask.nonzero(as_tuple=True)  # row-major: sorted by sentence, then destination
    first = offsets(lengths)[b]
    return _homogeneous(first + j, first + i, int(lengths.sum()), device)


def _padded_positions(lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Query and key positions ``[1, L, 1]``, ``[1, 1, L]`` and the valid pairs ``[B, L, L]``."""
    pos = torch.arange(int(lengths.max()))
    real = pos[None, :] < lengths[:, None]
    return pos[None, :, None], pos[None, None, :], real[:, :, None] & real[:, None, :]


def window_global_graph(
    lengths: Lengths, window: int, n_global: int, device: torch.device | None = None
) -> dgl.DGLGraph:
    """The window graph plus global tokens: the first ``n_global`` tokens of each sentence hear
    every token of it and are heard by every token of it."""
    if window < 0 or n_global < 0:
        raise ValueError(f"window and n_global must be >= 0, got {window}, {n_global}")
    lens = as_lengths(lengths)
    i, j, real = _padded_positions(lens)
    mask = ((i - j).abs() <= window) | (i < n_global) | (j < n_global)
    return _from_mask(lens, mask & real, device)


@functools.cache
def _random_wiring(n: int, window: int, seed: int) -> tuple[Tensor, Tensor]:
    """Edges ``(src, dst)`` of one sentence of ``n`` tokens in :func:`random_graph`, sorted by
    destination. The draw depends on ``(seed, n)`` only (an arithmetic seed, not ``hash``)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + n)
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    degree = torch.minimum(i + window, torch.tensor(n - 1)) - (i - window).clamp(min=0) + 1
    score = torch.where(i == j, 2.0, torch.rand(n, n, generator=gen))  # self first, then random
    rank = score.argsort(-1, descending=True).argsort(-1)  # rank of each key in its row
    dst, src = (rank < degree).nonzero(as_tuple=True)  # row-major: sorted by destination
    return src, dst


def random_graph(
    lengths: Lengths, window: int, seed: int = 0, device: torch.device | None = None
) -> dgl.DGLGraph:
    """Each token hears itself and ``d - 1`` other tokens of its sentence drawn at random, where
    ``d`` is its in-degree in :func:`window_graph` (same edge count, random wiring). A
    sentence's wiring depends only on ``seed`` and its own length, so it is the same in every
    batch, alone or beside any other sentences, in training and in decoding."""
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    lens = as_lengths(lengths)
    parts = [_random_wiring(n, window, seed) for n in lens.tolist()]
    first = offsets(lens).tolist()
    src = torch.cat([s + f for (s, _), f in zip(parts, first, strict=True)])
    dst = torch.cat([d + f for (_, d), f in zip(parts, first, strict=True)])
    return _homogeneous(src, dst, int(lens.sum()), device)


@functools.cache
def _span_tree(n: int, window: int) -> tuple[Tensor, Tensor]:
    """Edges ``(src, dst)`` of one sentence of ``n`` tokens in :func:`span_graph`, sorted by
    destination: tokens are nodes ``0..n-1``, the ``n - 1`` span nodes ``n..2n-2``."""
    edges = {(j, i) for i in range(n) for j in range(max(0, i - window), min(n, i + window + 1))}
    next_span = n
    stack = [(0, n)]  # pieces [lo, hi) still to split; a piece of >= 2 tokens is a span node
    node_of: dict[tuple[int, int], int] = {}
    while stack:  # spans numbered in pre-order, left half first
        lo, hi = stack.pop()
        if hi - lo == 1:
            node_of[lo, hi] = lo
            continue
        node_of[lo, hi] = next_span
        next_span += 1
        stack += [((lo + hi) // 2, hi), (lo, (lo + hi) // 2)]
    for (lo, hi), node in node_of.items():
        if node < n:
            continue
        mid = (lo + hi) // 2
        left, right = node_of[lo, mid], node_of[mid, hi]
        edges.update((right, t) for t in range(lo, mid))  # far context: the other half
        edges.update((left, t) for t in range(mid, hi))
        edges.update((t, node) for t in range(lo, hi))  # a span hears the tokens it covers
        edges.add((node, node))
    src, dst = torch.tensor(sorted(edges, key=lambda e: (e[1], e[0]))).reshape(-1, 2).T
    return src, dst


def span_graph(lengths: Lengths, window: int, device: torch.device | None = None) -> dgl.DGLGraph:
    """A BP-Transformer-like hierarchy (Ye et al., 2019) over each sentence.

    Each sentence of ``n`` tokens is split in halves, each half in halves, and so on; every
    piece of two or more tokens is a *span node* (``n - 1`` per sentence). A token hears the
    tokens within ``window`` and, at every level of the tree, the node of the sibling piece
    (the other half): single tokens nearby, large spans far away, ``O(log n)`` edges that cover
    the rest of the sentence exactly once. A span node hears itself and the tokens it covers.
    Token nodes are packed as everywhere (``0 .. sum(L)-1``); the span nodes of sentence ``b``
    follow all tokens, in sentence order. :meth:`GraphTransformer.encode` starts each span
    node as the mean of its tokens' embeddings.
    """
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    lens = as_lengths(lengths)
    n_tokens = int(lens.sum())
    token_start = offsets(lens).tolist()
    span_start = (n_tokens + torch.cumsum(lens - 1, 0) - (lens - 1)).tolist()
    srcs, dsts = [], []
    for n, first_token, first_span in zip(lens.tolist(), token_start, span_start, strict=True):
        src, dst = _span_tree(n, window)
        srcs.append(torch.where(src < n, first_token + src, first_span + src - n))
        dsts.append(torch.where(dst < n, first_token + dst, first_span + dst - n))
    src, dst = torch.cat(srcs), torch.cat(dsts)
    order = torch.sort(dst, stable=True).indices  # tokens and spans interleave across sentences
    return _homogeneous(src[order], dst[order], n_tokens + int((lens - 1).sum()), device)


#: Format string of the files :class:`LearnedGraph` reads.
LEARNED_GRAPH_FORMAT = "dgl-transformer-learned-graph/1"


class LearnedGraph:
    """Encoder graphs read from a file: one fixed graph per source sentence.

    The file (``repro/learned_graph.py`` writes it) maps each sentence's source ids to its
    local edges ``[2, E]`` (``src``, ``dst`` within the sentence, sorted by destination); with
    ``window`` W it holds, per token, its self-loop and its strongest other senders in a trained
    complete-graph model, as many as the token's in-degree in ``window_graph(W)``. A builder
    that reads tokens: :meth:`PackedBatch.collate` passes the packed source ids.
    """

    reads_tokens = True

    def __init__(self, path: str, window: int) -> None:
        try:
            saved = torch.load(path, weights_only=True)
        except FileNotFoundError:
            raise ValueError(f"learned graph file {path} does not exist (repro/learned_graph.py "
                             "writes it from a trained model)") from None
        # truncated or not a torch file: one line, not a traceback (the errors torch.load
        # raises for such files; anything else is a bug and keeps its traceback)
        except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError) as err:
            raise ValueError(f"{path} is not a readable {LEARNED_GRAPH_FORMAT} file "
                             f"({type(err).__name__})") from None
        if not isinstance(saved, dict) or saved.get("format") != LEARNED_GRAPH_FORMAT:
            raise ValueError(f"{path} is not a {LEARNED_GRAPH_FORMAT} file")
        if saved["window"] != window:
            raise ValueError(f"{path} holds learned graphs for window {saved['window']}, "
                             f"not {window}")
        self.path, self.window = path, window
        self.edges: dict[tuple[int, ...], Tensor] = saved["edges"]

    def __call__(self, lengths: Lengths, device: torch.device | None = None, *,
                 tokens: Tensor) -> dgl.DGLGraph:
        lens = as_lengths(lengths)
        parts = []
        for b, (sentence, first) in enumerate(zip(tokens.cpu().split(lens.tolist()),
                                                  offsets(lens).tolist(), strict=True)):
            local = self.edges.get(tuple(sentence.tolist()))
            if local is None:
                raise ValueError(f"source sentence {b} ({len(sentence)} tokens) is not in the "
                                 f"learned graph file {self.path}")
            parts.append(local + first)
        src, dst = torch.cat(parts, 1)
        return _homogeneous(src, dst, int(lens.sum()), device)


GraphBuilder = Callable[..., dgl.DGLGraph]
#: Encoder graphs by config name, with the integer parameters each takes after a colon.
ENCODER_GRAPHS: dict[str, tuple[GraphBuilder, tuple[str, ...]]] = {
    "complete": (complete_graph, ()),
    "window": (window_graph, ("window",)),
    "window_global": (window_global_graph, ("window", "n_global")),
    "random": (random_graph, ("window",)),
    "hierarchy": (span_graph, ("window",)),
    "learned": (LearnedGraph, ("window",)),
}


#: The config's name for a graph built by a builder given in code
#: (``GraphTransformer(cfg, encoder_graph=...)``): a config cannot rebuild it.
CUSTOM = "custom"


def parse_encoder_graph(spec: str, graph_file: str = "") -> tuple[str, dict[str, int]]:
    """``spec`` checked and split: ``NAME`` or ``NAME:P1:P2`` with integer parameters, e.g.
    ``"window:4"``; ``"learned:W"`` also needs ``graph_file``; :data:`CUSTOM` records a builder
    given in code. Reads no file."""
    if spec == CUSTOM and not graph_file:
        return CUSTOM, {}
    name, *params = spec.split(":")
    if name not in ENCODER_GRAPHS:
        raise ValueError(f"unknown encoder graph {spec!r} (known: {', '.join(ENCODER_GRAPHS)})")
    names = ENCODER_GRAPHS[name][1]
    if len(params) != len(names) or not all(p.isdigit() for p in params):
        wanted = ":".join([name, *(f"<{n}>" for n in names)])
        raise ValueError(f"encoder graph {spec!r} must be written {wanted} (integers >= 0)")
    if (name == "learned") != bool(graph_file):
        raise ValueError(f"encoder graph {spec!r}: graph_file {graph_file!r} is needed by "
                         "'learned:W' and only by it")
    return name, {n: int(p) for n, p in zip(names, params, strict=True)}


@functools.cache
def encoder_graph_builder(spec: str, graph_file: str = "") -> GraphBuilder:
    """The builder named by ``spec`` (see :func:`parse_encoder_graph`); the same object for the
    same spec (a batch records its builder)."""
    name, params = parse_encoder_graph(spec, graph_file)
    if name == CUSTOM:
        raise ValueError("encoder graph 'custom' was built by code, not named in the config: "
                         "pass the same builder again (GraphTransformer(cfg, encoder_graph=...))")
    builder = ENCODER_GRAPHS[name][0]
    if name == "learned":
        return LearnedGraph(graph_file, **params)
    return functools.partial(builder, **params) if params else builder
