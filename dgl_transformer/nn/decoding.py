"""Greedy and beam-search decoding for :class:`~dgl_transformer.nn.model.GraphTransformer`.

Decoding grows the decoder graph one node per live hypothesis per step. Two states implement
a step, with one interface (``start``, ``step``, ``select``):

* :class:`DecoderState`, the incremental cache: the keys and values of every token ever decoded
  stay in one append-only buffer per layer, and each hypothesis keeps its *path*, the buffer
  rows of its own tokens. A step computes only the new tokens: the self-attention graph of a
  new node has an edge from each node on its hypothesis' path (and from itself), and
  cross-attention reads encoder keys/values projected once per source. Hypotheses that share a
  prefix share its nodes, so reordering or repeating hypotheses copies row indices, never keys
  and values.
* :class:`PrefixState`, the naive reference: every step re-runs the whole decoder on each
  hypothesis' full prefix (the encoder still runs once). The cache must reproduce it exactly.

All decoders return target ids without BOS and EOS, one tensor per source, in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dgl
import torch
from torch import Tensor

from ..tokens import BOS, EOS
from . import graphs
from .attention import Attend
from .model import GraphTransformer


def _from_rows(rows: Tensor, num_src: int, device: torch.device) -> dgl.DGLGraph:
    """Bipartite graph in which destination ``h`` receives from source nodes ``rows[h, :]``."""
    n, m = rows.shape
    dst = torch.arange(n).repeat_interleave(m)
    return dgl.heterograph(
        {("src", "attends", "dst"): (rows.reshape(-1), dst)},
        num_nodes_dict={"src": num_src, "dst": n},
        device=device,
    )


@dataclass
class DecoderState:
    """The incremental cache (see the module docstring).

    ``keys[l]`` and ``values[l]`` are ``[capacity, heads, head_dim]`` buffers of decoder layer
    ``l``, of which the first ``used`` rows are filled; ``paths[h]`` lists the rows of
    hypothesis ``h``'s tokens, and ``src_of_hyp[h]`` the source sentence it translates.
    """

    memory_kv: list[tuple[Tensor, Tensor]]
    src_lens: Tensor
    src_of_hyp: Tensor
    keys: list[Tensor]
    values: list[Tensor]
    paths: Tensor
    used: int = 0

    @classmethod
    def start(cls, model: GraphTransformer, src: Sequence[Tensor]) -> DecoderState:
        memory, src_lens = model.encode(src)
        # contiguous once here, rather than copied by every step's attention kernel
        kv = [tuple(t.contiguous() for t in layer.cross_attn.project_kv(memory))
              for layer in model.decoder]
        n, d = len(src), model.cfg
        buffers = [memory.new_empty(8 * n, d.n_heads, d.head_dim) for _ in range(2 * len(kv))]
        paths = torch.empty(n, 0, dtype=torch.int64)
        return cls(kv, src_lens, torch.arange(n), buffers[::2], buffers[1::2], paths)

    @property
    def steps(self) -> int:
        return self.paths.shape[1]

    def select(self, hyps: Tensor) -> None:
        """Keep (and reorder, or repeat) the hypotheses ``hyps``."""
        self.src_of_hyp = self.src_of_hyp[hyps]
        self.paths = self.paths[hyps]

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

    def _self_attend(self, model: GraphTransformer, layer: int, rows: slice, graph) -> Attend:
        """Layer ``layer``'s self-attention: store the new keys/values in ``rows``, then let
        each new token attend along its hypothesis' path (``graph``)."""
        dropout = model.attn_dropout()

        def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            self.keys[layer][rows], self.values[layer][rows] = k, v
            keys, values = self.keys[layer][: self.used], self.values[layer][: self.used]
            return model.attention_kernel(graph, q, keys, values, dropout)

        return attend

    def step(self, model: GraphTransformer, tokens: Tensor) -> Tensor:
        """Logits ``[hyps, vocab]`` of the next token, given each hypothesis' last token."""
        n, t, device = len(tokens), self.steps, model.device
        pos = torch.full((n,), t, dtype=torch.int64, device=device)
        x = model.embed(model.tgt_embed, tokens.to(device), pos)
        rows = self._append(n)
        self.paths = torch.cat([self.paths, torch.arange(rows.start, rows.stop)[:, None]], 1)
        self_graph = _from_rows(self.paths, self.used, device)
        ones = torch.ones(n, dtype=torch.int64)
        cross = graphs.cross_graph(self.src_lens, ones, self.src_of_hyp, device=device)
        cross_attend = model._attend(cross)
        for i, layer in enumerate(model.decoder):
            self_attend = self._self_attend(model, i, rows, self_graph)
            x = layer(x, self_attend, self.memory_kv[i], cross_attend)
        return model.generator(model.dec_norm(x))


@dataclass
class PrefixState:
    """The naive reference: each step re-runs the decoder on every hypothesis' whole prefix."""

    memory: Tensor
    src_lens: Tensor
    src_of_hyp: Tensor
    prefixes: Tensor  # [hyps, steps] decoder inputs so far

    @classmethod
    def start(cls, model: GraphTransformer, src: Sequence[Tensor]) -> PrefixState:
        memory, src_lens = model.encode(src)
        n = len(src)
        return cls(memory, src_lens, torch.arange(n), torch.empty(n, 0, dtype=torch.int64))

    @property
    def steps(self) -> int:
        return self.prefixes.shape[1]

    def select(self, hyps: Tensor) -> None:
        """Keep (and reorder, or repeat) the hypotheses ``hyps``."""
        self.src_of_hyp = self.src_of_hyp[hyps]
        self.prefixes = self.prefixes[hyps]

    def step(self, model: GraphTransformer, tokens: Tensor) -> Tensor:
        """Logits ``[hyps, vocab]`` of the next token, given each hypothesis' last token."""
        self.prefixes = torch.cat([self.prefixes, tokens[:, None]], 1)
        n, t = self.prefixes.shape
        hidden = model.decode(self.memory, self.src_lens, list(self.prefixes),
                              src_of_tgt_sentence=self.src_of_hyp)
        return model.generator(hidden.view(n, t, -1)[:, -1])


def _start(
    model: GraphTransformer, src: Sequence[Tensor], incremental: bool
) -> DecoderState | PrefixState:
    return (DecoderState if incremental else PrefixState).start(model, src)


def _limit(model: GraphTransformer, max_len: int) -> int:
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    return min(max_len, model.cfg.max_len)


@torch.no_grad()
def greedy(
    model: GraphTransformer, src: Sequence[Tensor], max_len: int = 100, incremental: bool = True
) -> list[Tensor]:
    """Batched greedy decoding, with the incremental cache unless ``incremental=False``."""
    model.check_batch(src)
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
    model: GraphTransformer, src: Sequence[Tensor], max_len: int = 100
) -> list[Tensor]:
    """Greedy decoding that re-runs the whole decoder on every prefix (no cache)."""
    return greedy(model, src, max_len, incremental=False)


def _penalised(score: float, length: int, alpha: float) -> float:
    """GNMT length normalisation: ``score / ((5 + length) / 6) ** alpha``."""
    return score / ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model: GraphTransformer,
    src: Sequence[Tensor],
    beam_size: int = 4,
    max_len: int = 100,
    length_penalty: float = 0.6,
    incremental: bool = True,
) -> list[Tensor]:
    """Batched beam search, with the incremental cache unless ``incremental=False``.

    Each source keeps ``beam_size`` live hypotheses. Among a step's best ``2 * beam_size``
    candidates, an EOS ranked within the top ``beam_size`` finishes a hypothesis (scored with
    the GNMT length penalty over its length including EOS); the best non-EOS candidates
    continue. A source is done once it holds ``beam_size`` finished hypotheses; at ``max_len``
    the live ones are finished as they stand. Beam size 1 is exactly greedy decoding.
    """
    model.check_batch(src)
    k, steps, alpha = beam_size, _limit(model, max_len), length_penalty
    state = _start(model, src, incremental)
    owner = torch.arange(len(src))  # source of each live hypothesis
    scores = torch.zeros(len(src), dtype=torch.float64)
    history = torch.full((len(src), 1), BOS, dtype=torch.int64)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in src]
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
                        finished[src_id].append((_penalised(s, len(words) + 1, alpha), words))
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
            words = history[h, 1:].tolist()
            finished[src_id].append((_penalised(float(scores[h]), len(words), alpha), words))
    return [torch.tensor(max(f)[1] if f else [], dtype=torch.int64) for f in finished]
