"""Greedy and beam-search decoding for any model that follows :class:`Seq2Seq`.

This module never imports the model: it needs only the small :class:`Seq2Seq` protocol
(``as_batch``, ``encode``, ``memory_kv``, ``decode``, ``generator``), which
:class:`~dgl_transformer.nn.model.GraphTransformer` implements. Decoding grows the decoder graph
one node per live hypothesis per step. Every step goes through the model's own
:meth:`~dgl_transformer.nn.model.GraphTransformer.decode`; two states say what a step feeds it,
with one interface (constructor, ``step``, ``select``):

* :class:`IncrementalCache` (fairseq's incremental state): the keys and values of every token
  ever decoded stay in one append-only buffer per layer, and each hypothesis keeps its *path*,
  the buffer rows of its own tokens. A step feeds only the new tokens: the self-attention graph
  of a new node has an edge from each row on its hypothesis' path (and from itself), and
  cross-attention reads encoder keys/values projected once per source. Hypotheses that share a
  prefix share its rows, so reordering or repeating hypotheses copies row indices, never keys
  and values.
* :class:`PrefixState`, the naive reference: every step feeds each hypothesis' whole prefix
  (the encoder still runs once). The cache must reproduce it exactly.

Neither state ever proposes PAD, BOS or UNK: their logits are masked before any choice.
Decoding is inference: it runs without gradients and in eval mode (no dropout) whatever mode
the model is in, and gives the model its mode back afterwards. ``max_len`` counts decoding
steps and never exceeds the model's own ``cfg.max_len`` (its position table).
All decoders return target ids without BOS and EOS, one tensor per source, in input order;
:func:`beam_search` with ``nbest`` returns scored :class:`Hypothesis` lists instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import dgl
import torch
from torch import Tensor, nn

from ..tokens import BOS, EOS, PAD, UNK
from . import graphs
from .attention import Attend
from .batch import DecoderInput, PackedBatch
from .config import TransformerConfig


class Seq2Seq(Protocol):
    """What decoding needs of a model (``GraphTransformer`` has it): an ``nn.Module`` (for
    ``training``, ``eval`` and ``train``) with the methods below, its ``cfg`` (``n_heads``,
    ``head_dim``, ``n_dec_layers``, ``max_len``) and ``device``."""

    cfg: TransformerConfig
    generator: nn.Module  # decoder output -> logits
    training: bool

    def train(self, mode: bool = True) -> Seq2Seq: ...

    @property
    def device(self) -> torch.device: ...

    def as_batch(self, batch: Sequence[Tensor]) -> PackedBatch:
        """Sources packed (with the model's encoder graph), checked, on the model's device."""

    def encode(self, batch: PackedBatch) -> Tensor:
        """Encoder output, packed like ``batch.src``."""

    def memory_kv(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Each decoder layer's cross-attention keys and values of the encoder output."""

    def decode(self, inp: DecoderInput, memory: Tensor | None,
               cache: IncrementalCache | None = None) -> Tensor:
        """Decoder output of ``inp`` (teacher-forced on ``memory``, or one step on ``cache``)."""


@dataclass(frozen=True)
class Hypothesis:
    """One output of a search: target ids (no BOS/EOS), the sum of their log-probabilities
    (EOS included when the output ended with it) and the length-penalised score that ranked
    it."""

    tokens: Tensor
    logprob: float
    score: float

T = TypeVar("T")

#: Ids a decoder must never produce as a next token.
NEVER_PREDICTED = (PAD, BOS, UNK)


def _from_rows(rows: Tensor, num_src: int, device: torch.device) -> dgl.DGLGraph:
    """Bipartite graph in which destination ``h`` receives from source nodes ``rows[h, :]``."""
    n, m = rows.shape
    dst = torch.arange(n).repeat_interleave(m)
    return dgl.heterograph(
        {("src", "attends", "dst"): (rows.reshape(-1), dst)},
        num_nodes_dict={"src": num_src, "dst": n},
        device=device,
    )


def _masked(logits: Tensor) -> Tensor:
    """``logits`` with the never-predicted ids set to ``-inf``."""
    logits[:, list(NEVER_PREDICTED)] = float("-inf")
    return logits


class Hypotheses:
    """What both states track per live hypothesis ``h``: ``src_of_hyp[h]``, the source it
    translates, and ``trail[h]``, one entry per step so far (cache rows, or token ids)."""

    def __init__(self, batch: PackedBatch) -> None:
        self.src_lens, self.src_of_hyp = batch.src_lens, torch.arange(len(batch))
        self.trail = torch.empty(len(batch), 0, dtype=torch.int64)

    @property
    def steps(self) -> int:
        return self.trail.shape[1]

    def select(self, hyps: Tensor) -> None:
        """Keep (and reorder, or repeat) the hypotheses ``hyps``."""
        self.src_of_hyp = self.src_of_hyp[hyps]
        self.trail = self.trail[hyps]


class IncrementalCache(Hypotheses):
    """The incremental cache (see the module docstring).

    ``keys[l]`` and ``values[l]`` are ``[capacity, heads, head_dim]`` buffers of decoder layer
    ``l``, of which the first ``used`` rows are filled; ``trail[h]`` (the hypothesis' *path*)
    lists the rows of hypothesis ``h``'s tokens.
    """

    def __init__(self, model: Seq2Seq, src: Sequence[Tensor]) -> None:
        batch = model.as_batch(src)
        super().__init__(batch)
        memory = model.encode(batch)
        # contiguous once here, rather than copied by every step's attention kernel
        self.memory_kv = [(k.contiguous(), v.contiguous()) for k, v in model.memory_kv(memory)]
        n, cfg = len(batch), model.cfg
        self.keys = [memory.new_empty(8 * n, cfg.n_heads, cfg.head_dim)
                     for _ in range(cfg.n_dec_layers)]
        self.values = [torch.empty_like(b) for b in self.keys]
        self.used, self.rows = 0, slice(0, 0)

    def _append(self, n: int) -> slice:
        """Rows for ``n`` new tokens, growing the buffers (doubling) when full."""
        capacity = self.keys[0].shape[0] if self.keys else self.used + n
        if self.used + n > capacity:
            grow = max(n, capacity)
            self.keys = [torch.cat([b, b.new_empty(grow, *b.shape[1:])]) for b in self.keys]
            self.values = [torch.cat([b, b.new_empty(grow, *b.shape[1:])]) for b in self.values]
        rows = slice(self.used, self.used + n)
        self.used += n
        return rows

    def memory(self, layer: int) -> tuple[Tensor, Tensor]:
        """Layer ``layer``'s cross-attention keys and values of the encoder output."""
        return self.memory_kv[layer]

    def self_attend(self, layer: int, attend: Attend) -> Attend:
        """Layer ``layer``'s self-attention: store the new keys/values in this step's rows,
        then ``attend`` from every cached row (along the step's graph)."""

        def cached(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            self.keys[layer][self.rows], self.values[layer][self.rows] = k, v
            return attend(q, self.keys[layer][: self.used], self.values[layer][: self.used])

        return cached

    def step(self, model: Seq2Seq, tokens: Tensor) -> Tensor:
        """Logits ``[hyps, vocab]`` of the next token, given each hypothesis' last token."""
        n, t, device = len(tokens), self.steps, model.device
        self.rows = self._append(n)
        new_rows = torch.arange(self.rows.start, self.rows.stop)
        self.trail = torch.cat([self.trail, new_rows[:, None]], 1)
        ones = torch.ones(n, dtype=torch.int64)
        inp = DecoderInput(
            tokens.to(device), torch.full((n,), t, dtype=torch.int64, device=device),
            _from_rows(self.trail, self.used, device),
            graphs.cross_graph(self.src_lens, ones, self.src_of_hyp, device=device),
        )
        return _masked(model.generator(model.decode(inp, None, cache=self)))


class PrefixState(Hypotheses):
    """The naive reference: each step re-runs the decoder on every hypothesis' whole prefix
    (``trail[h]``: the decoder inputs of hypothesis ``h`` so far)."""

    def __init__(self, model: Seq2Seq, src: Sequence[Tensor]) -> None:
        batch = model.as_batch(src)
        super().__init__(batch)
        self.memory = model.encode(batch)

    def step(self, model: Seq2Seq, tokens: Tensor) -> Tensor:
        """Logits ``[hyps, vocab]`` of the next token, given each hypothesis' last token."""
        self.trail = torch.cat([self.trail, tokens.cpu()[:, None]], 1)
        n, t = self.trail.shape
        lens, device = torch.full((n,), t), model.device
        inp = DecoderInput(
            self.trail.reshape(-1).to(device), graphs.positions(lens).to(device),
            graphs.causal_graph(lens, device),
            graphs.cross_graph(self.src_lens, lens, self.src_of_hyp, device=device),
        )
        hidden = model.decode(inp, self.memory)
        return _masked(model.generator(hidden.view(n, t, -1)[:, -1]))


def _inference(decode: Callable[..., T]) -> Callable[..., T]:
    """Run ``decode(model, ...)`` without gradients and in eval mode; restore the mode."""

    @functools.wraps(decode)
    def run(model: Seq2Seq, *args: object, **kwargs: object) -> T:
        was_training = model.training
        model.train(False)
        try:
            with torch.no_grad():
                return decode(model, *args, **kwargs)
        finally:
            model.train(was_training)

    return run


def _start(
    model: Seq2Seq, src: Sequence[Tensor], incremental: bool
) -> IncrementalCache | PrefixState:
    return (IncrementalCache if incremental else PrefixState)(model, src)


def _limit(model: Seq2Seq, max_len: int) -> int:
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    return min(max_len, model.cfg.max_len)


@_inference
def greedy(
    model: Seq2Seq, src: Sequence[Tensor], max_len: int = 100, incremental: bool = True
) -> list[Tensor]:
    """Batched greedy decoding, with the incremental cache unless ``incremental=False``."""
    steps = _limit(model, max_len)
    state = _start(model, src, incremental)
    alive = torch.arange(len(src))  # source index of each live hypothesis
    last = torch.full((len(src),), BOS, dtype=torch.int64)
    out: list[list[int]] = [[] for _ in src]
    for _ in range(steps):
        best = state.step(model, last).argmax(-1).cpu()
        for b, tok in zip(alive.tolist(), best.tolist(), strict=True):
            if tok != EOS:
                out[b].append(tok)
        keep = best != EOS
        if not bool(keep.any()):
            break
        alive, last = alive[keep], best[keep]
        state.select(keep.nonzero().squeeze(1))
    return [torch.tensor(o, dtype=torch.int64) for o in out]


def naive_greedy(
    model: Seq2Seq, src: Sequence[Tensor], max_len: int = 100
) -> list[Tensor]:
    """Greedy decoding that re-runs the whole decoder on every prefix (no cache)."""
    return greedy(model, src, max_len, incremental=False)


def _penalised(score: float, length: int, alpha: float) -> float:
    """GNMT length normalisation: ``score / ((5 + length) / 6) ** alpha``."""
    return score / ((5.0 + length) / 6.0) ** alpha


@_inference
def beam_search(
    model: Seq2Seq,
    src: Sequence[Tensor],
    beam_size: int = 4,
    max_len: int = 100,
    length_penalty: float = 0.6,
    incremental: bool = True,
    nbest: int | None = None,
) -> list[Tensor] | list[list[Hypothesis]]:
    """Batched beam search, with the incremental cache unless ``incremental=False``.

    Each source keeps ``beam_size`` live hypotheses. Among a step's best ``2 * beam_size``
    candidates, an EOS ranked within the top ``beam_size`` finishes a hypothesis (scored with
    the GNMT length penalty over its length including EOS); the best non-EOS candidates
    continue. A source is done once it holds ``beam_size`` finished hypotheses; at ``max_len``
    the live ones are finished as they stand. Beam size 1 is exactly greedy decoding.

    Returns the best output of each source, or with ``nbest`` the ``nbest`` best finished
    hypotheses of each (at most ``beam_size``), best first, with their scores.
    """
    if nbest is not None and not 1 <= nbest <= beam_size:
        raise ValueError(f"nbest must be in [1, beam_size={beam_size}], got {nbest}")
    k, steps, alpha = beam_size, _limit(model, max_len), length_penalty
    state = _start(model, src, incremental)
    owner = torch.arange(len(src))  # source of each live hypothesis
    scores = torch.zeros(len(src), dtype=torch.float64)
    history = torch.full((len(src), 1), BOS, dtype=torch.int64)
    finished: list[list[tuple[float, float, list[int]]]] = [[] for _ in src]
    for _ in range(steps):
        logp = torch.log_softmax(state.step(model, history[:, -1]), -1)
        # a source's best 2k candidates are among its hypotheses' own best 2k continuations
        top_logp, top_tok = logp.topk(min(2 * k, logp.shape[1]), -1)
        width = top_tok.shape[1]
        cand = scores[:, None] + top_logp.cpu().double()
        tok_of = top_tok.cpu().tolist()
        rows, toks, new_scores, owners = [], [], [], []
        sources, counts = torch.unique_consecutive(owner, return_counts=True)
        first = 0
        for src_id, count in zip(sources.tolist(), counts.tolist(), strict=True):
            block = cand[first : first + count].reshape(-1)
            top_s, top_i = block.topk(min(2 * k, block.numel()))
            survivors = []
            for rank, (s, flat) in enumerate(zip(top_s.tolist(), top_i.tolist(), strict=True)):
                row = first + flat // width
                tok = tok_of[row][flat % width]
                if tok == EOS:
                    if rank < k:
                        words = history[row, 1:].tolist()
                        finished[src_id].append((_penalised(s, len(words) + 1, alpha), s, words))
                elif len(survivors) < k:
                    survivors.append((row, tok, s))
            if len(finished[src_id]) < k:  # not done: its best non-EOS candidates go on
                for row, tok, s in survivors:
                    rows.append(row)
                    toks.append(tok)
                    new_scores.append(s)
                    owners.append(src_id)
            first += count
        if not rows:
            break
        index = torch.tensor(rows)
        state.select(index)
        owner = torch.tensor(owners)
        scores = torch.tensor(new_scores, dtype=torch.float64)
        history = torch.cat([history[index], torch.tensor(toks)[:, None]], 1)
    else:  # max_len reached: live hypotheses finish as they stand
        for h, src_id in enumerate(owner.tolist()):
            words, s = history[h, 1:].tolist(), float(scores[h])
            finished[src_id].append((_penalised(s, len(words), alpha), s, words))
    ranked = [sorted(f, key=lambda x: (x[0], x[2]), reverse=True) for f in finished]
    if nbest is None:
        return [torch.tensor(r[0][2] if r else [], dtype=torch.int64) for r in ranked]
    return [[Hypothesis(torch.tensor(words, dtype=torch.int64), logprob, score)
             for score, logprob, words in r[:nbest]] for r in ranked]


def translate(
    model: Seq2Seq,
    src: Sequence[Tensor],
    beam_size: int = 4,
    max_len: int = 100,
    length_penalty: float = 0.6,
) -> list[Tensor]:
    """Decode each source: greedy for ``beam_size=1``, else beam search. Returns the target
    ids without BOS and EOS, one tensor per source."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if beam_size == 1:
        return greedy(model, src, max_len)
    return beam_search(model, src, beam_size, max_len, length_penalty)
