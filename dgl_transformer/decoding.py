"""Greedy and beam-search decoding for :class:`~dgl_transformer.model.GraphTransformer`.

Decoding grows the decoder graph one node per hypothesis per step. With the incremental cache
(:class:`DecoderState`) the keys and values of tokens already decoded are kept per layer, so a
step only computes the new token: its self-attention is a bipartite graph from the cached
tokens of its hypothesis (plus itself) to the new node, and its cross-attention reads encoder
keys/values projected once per source. :func:`naive_greedy` re-runs the full decoder on the
whole prefix at every step; it exists as the reference the cache must reproduce exactly.

All decoders return target ids without BOS and EOS, one tensor per source, in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from . import graphs
from .attention import graph_attention
from .model import GraphTransformer
from .tokens import BOS, EOS


@dataclass
class DecoderState:
    """Everything a decoding step needs about the live hypotheses.

    ``src_of_hyp[h]`` is the source sentence hypothesis ``h`` translates; ``cache_k[l]`` and
    ``cache_v[l]`` are ``[hyps, steps, heads, head_dim]`` for decoder layer ``l``.
    """

    memory_kv: list[tuple[Tensor, Tensor]]
    src_lens: Tensor
    src_of_hyp: Tensor
    cache_k: list[Tensor]
    cache_v: list[Tensor]

    @classmethod
    def start(cls, model: GraphTransformer, src: Sequence[Tensor]) -> DecoderState:
        memory, src_lens = model.encode(src)
        kv = [layer.cross_attn.project_kv(memory) for layer in model.decoder]
        n, d = len(src), model.cfg
        empty = memory.new_zeros(n, 0, d.n_heads, d.head_dim)
        return cls(kv, src_lens, torch.arange(n), [empty] * len(kv), [empty] * len(kv))

    @property
    def steps(self) -> int:
        return self.cache_k[0].shape[1] if self.cache_k else 0

    def select(self, hyps: Tensor) -> None:
        """Keep (and reorder, or repeat) the hypotheses ``hyps``."""
        idx = hyps.to(self.cache_k[0].device) if self.cache_k else hyps
        self.src_of_hyp = self.src_of_hyp[hyps.cpu()]
        self.cache_k = [c.index_select(0, idx) for c in self.cache_k]
        self.cache_v = [c.index_select(0, idx) for c in self.cache_v]


class _CachedSelfAttend:
    """Self-attention of the new tokens over their own (cached) prefix, for one layer."""

    def __init__(self, state: DecoderState, layer: int, graph, dropout: float) -> None:
        self.state, self.layer, self.graph, self.dropout = state, layer, graph, dropout

    def __call__(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        s, i = self.state, self.layer
        s.cache_k[i] = torch.cat([s.cache_k[i], k[:, None]], 1)
        s.cache_v[i] = torch.cat([s.cache_v[i], v[:, None]], 1)
        keys, values = s.cache_k[i].flatten(0, 1), s.cache_v[i].flatten(0, 1)
        return graph_attention(self.graph, q, keys, values, self.dropout)


def decode_step(model: GraphTransformer, state: DecoderState, tokens: Tensor) -> Tensor:
    """Log-probabilities ``[hyps, vocab]`` of the next token, given each hypothesis' last token."""
    n, t = len(tokens), state.steps
    device = model.device
    pos = torch.full((n,), t, dtype=torch.int64, device=device)
    x = model.embed(model.tgt_embed, tokens.to(device), pos)
    ones = torch.ones(n, dtype=torch.int64)
    # the new node of hypothesis h receives from its t cached tokens and itself
    self_graph = graphs.cross_graph(torch.full((n,), t + 1), ones, device=device)
    cross = graphs.cross_graph(state.src_lens, ones, state.src_of_hyp, device=device)
    cross_attend = model._attend(cross)
    for i, layer in enumerate(model.decoder):
        self_attend = _CachedSelfAttend(state, i, self_graph, model.attn_dropout())
        kv = state.memory_kv[i]
        x = layer(x, self_attend, kv, cross_attend)
    return torch.log_softmax(model.generator(model.dec_norm(x)), -1)


def _limit(model: GraphTransformer, max_len: int) -> int:
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    return min(max_len, model.cfg.max_len)


@torch.no_grad()
def greedy(model: GraphTransformer, src: Sequence[Tensor], max_len: int = 100) -> list[Tensor]:
    """Batched greedy decoding with the incremental cache."""
    model.check_batch(src)
    steps = _limit(model, max_len)
    state = DecoderState.start(model, src)
    alive = torch.arange(len(src))  # source index of each live hypothesis
    last = torch.full((len(src),), BOS, dtype=torch.int64)
    out: list[list[int]] = [[] for _ in src]
    for _ in range(steps):
        best = decode_step(model, state, last).argmax(-1).cpu()
        for b, tok in zip(alive.tolist(), best.tolist(), strict=True):
            if tok != EOS:
                out[b].append(tok)
        keep = best != EOS
        if not bool(keep.any()):
            break
        alive, last = alive[keep], best[keep]
        state.select(keep.nonzero().squeeze(1))
    return [torch.tensor(o, dtype=torch.int64) for o in out]


@torch.no_grad()
def naive_greedy(
    model: GraphTransformer, src: Sequence[Tensor], max_len: int = 100
) -> list[Tensor]:
    """Greedy decoding that re-runs the whole decoder on every prefix (no cache)."""
    model.check_batch(src)
    steps = _limit(model, max_len)
    memory, src_lens = model.encode(src)
    prefixes = [[BOS] for _ in src]
    done = [False] * len(src)
    for _ in range(steps):
        hidden = model.decode(memory, src_lens, [torch.tensor(p) for p in prefixes])
        ends = torch.cumsum(torch.tensor([len(p) for p in prefixes]), 0) - 1
        best = model.generator(hidden[ends.to(hidden.device)]).argmax(-1).tolist()
        for b, tok in enumerate(best):
            if not done[b]:
                done[b] = tok == EOS
                prefixes[b].append(tok)
        if all(done):
            break
    return [torch.tensor([t for t in p[1:] if t != EOS], dtype=torch.int64) for p in prefixes]


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
) -> list[Tensor]:
    """Batched beam search with the incremental cache.

    Each source keeps ``beam_size`` live hypotheses. Among a step's best ``2 * beam_size``
    candidates, an EOS ranked within the top ``beam_size`` finishes a hypothesis (scored with
    the GNMT length penalty over its length including EOS); the best non-EOS candidates
    continue. A source is done once it holds ``beam_size`` finished hypotheses; at ``max_len``
    the live ones are finished as they stand. Beam size 1 is exactly greedy decoding.
    """
    model.check_batch(src)
    k, steps, alpha = beam_size, _limit(model, max_len), length_penalty
    state = DecoderState.start(model, src)
    owner = torch.arange(len(src))  # source of each live hypothesis
    scores = torch.zeros(len(src), dtype=torch.float64)
    history = torch.full((len(src), 1), BOS, dtype=torch.int64)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in src]
    for _ in range(steps):
        logp = decode_step(model, state, history[:, -1]).cpu().double()
        vocab = logp.shape[1]
        cand = scores[:, None] + logp
        rows, toks, new_scores, owners = [], [], [], []
        sources, counts = torch.unique_consecutive(owner, return_counts=True)
        first = 0
        for src_id, count in zip(sources.tolist(), counts.tolist(), strict=True):
            block = cand[first : first + count].reshape(-1)
            top_s, top_i = block.topk(min(2 * k, block.numel()))
            survivors = []
            for rank, (s, flat) in enumerate(zip(top_s.tolist(), top_i.tolist(), strict=True)):
                row, tok = first + flat // vocab, flat % vocab
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
