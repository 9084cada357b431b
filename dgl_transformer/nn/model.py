"""The encoder-decoder Transformer as message passing on three graphs.

:class:`Seq2SeqBase` owns every parameter (embeddings, layers, output projection); its two
subclasses differ only in how a batch is laid out and how attention is computed:

* :class:`GraphTransformer` packs the batch (no padding) and attends along the edges of a
  complete (encoder), causal (decoder) and bipartite (encoder -> decoder) graph;
* :class:`~dgl_transformer.nn.dense.DenseTransformer` pads it and uses masked dense attention.

Because the parameters live in the shared base, ``state_dict`` keys are identical and either
model loads the other's weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import dgl
import torch
from torch import Tensor, nn

from . import graphs
from .attention import graph_attention
from .config import TransformerConfig
from .layers import DecoderLayer, EncoderLayer, sinusoidal_positions

GraphBuilder = Callable[..., dgl.DGLGraph]


def check_sequences(seqs: Sequence[Tensor], vocab: int, max_len: int, name: str) -> None:
    """Raise a one-line ``ValueError`` for a batch the model cannot take."""
    if isinstance(seqs, Tensor) or not isinstance(seqs, Sequence):
        raise ValueError(f"{name} must be a list of 1-D LongTensors, got {type(seqs).__name__}")
    if len(seqs) == 0:
        raise ValueError(f"{name} is an empty batch: give at least one sequence")
    for i, s in enumerate(seqs):
        if not isinstance(s, Tensor) or s.dim() != 1 or s.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{name}[{i}] must be a 1-D integer tensor, got {s!r:.60}")
        if s.numel() == 0:
            raise ValueError(f"{name}[{i}] is an empty sequence: every sequence needs >= 1 token")
        if s.numel() > max_len:
            raise ValueError(f"{name}[{i}] has {s.numel()} tokens, more than max_len={max_len}")
    flat = torch.cat([s.reshape(-1) for s in seqs])
    lo, hi = int(flat.min()), int(flat.max())
    if lo < 0 or hi >= vocab:
        bad = lo if lo < 0 else hi
        where = next(i for i, s in enumerate(seqs) if bool((s == bad).any()))
        raise ValueError(
            f"{name}[{where}] holds token id {bad}, outside the vocabulary [0, {vocab})"
        )


class Seq2SeqBase(nn.Module):
    """Parameters and the layout-independent pieces of the network."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.src_embed = nn.Embedding(cfg.src_vocab, d)
        self.tgt_embed = self.src_embed if cfg.share_embeddings else nn.Embedding(cfg.tgt_vocab, d)
        self.register_buffer("pos_table", sinusoidal_positions(cfg.max_len, d), persistent=False)
        layer_args = (d, cfg.n_heads, cfg.d_ff, cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(cfg.n_enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(*layer_args) for _ in range(cfg.n_dec_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.embed_drop = nn.Dropout(cfg.dropout)
        self.generator = nn.Linear(d, cfg.tgt_vocab, bias=False)
        self._init_weights()
        if cfg.share_embeddings:
            self.generator.weight = self.tgt_embed.weight

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if "embed" in name:
                nn.init.normal_(p, std=self.cfg.d_model**-0.5)
            elif p.dim() > 1:
                nn.init.xavier_uniform_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    @property
    def device(self) -> torch.device:
        return self.generator.weight.device

    def embed(self, table: nn.Embedding, tokens: Tensor, pos: Tensor) -> Tensor:
        """``E[token] * sqrt(d) + PE[position]``, then dropout."""
        x = table(tokens) * math.sqrt(self.cfg.d_model) + self.pos_table[pos]
        return self.embed_drop(x)

    def attn_dropout(self) -> float:
        return self.cfg.attn_dropout if self.training else 0.0

    def check_batch(self, src: Sequence[Tensor], tgt_in: Sequence[Tensor] | None = None) -> None:
        check_sequences(src, self.cfg.src_vocab, self.cfg.max_len, "src")
        if tgt_in is not None:
            check_sequences(tgt_in, self.cfg.tgt_vocab, self.cfg.max_len, "tgt_in")
            if len(src) != len(tgt_in):
                raise ValueError(f"src has {len(src)} sequences but tgt_in has {len(tgt_in)}")


class GraphTransformer(Seq2SeqBase):
    """The Transformer as message passing over packed, padding-free batches.

    ``encoder_graph(lengths, device=...)`` builds the encoder's graph; the default is the
    complete graph of the original Transformer, and e.g.
    ``functools.partial(graphs.window_graph, window=8)`` makes the encoder sparse.
    ``attention_kernel`` computes attention along a graph's edges with the signature of
    :func:`~dgl_transformer.nn.attention.graph_attention`; a subclass may swap it.
    """

    attention_kernel = staticmethod(graph_attention)

    def __init__(
        self, cfg: TransformerConfig, encoder_graph: GraphBuilder = graphs.complete_graph
    ) -> None:
        super().__init__(cfg)
        self.encoder_graph = encoder_graph

    def _attend(self, graph: dgl.DGLGraph, record: list[Tensor] | None = None):
        def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            if record is None:
                return self.attention_kernel(graph, q, k, v, self.attn_dropout())
            out, weights = self.attention_kernel(graph, q, k, v, self.attn_dropout(), True)
            record.append(weights.detach())
            return out

        return attend

    def encode(
        self, src: Sequence[Tensor], record: list[Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Encoder output ``[source tokens, d_model]`` (packed) and the source lengths."""
        lens = graphs.as_lengths([len(s) for s in src])
        tokens = torch.cat(list(src)).to(self.device)
        x = self.embed(self.src_embed, tokens, graphs.positions(lens).to(self.device))
        attend = self._attend(self.encoder_graph(lens, device=self.device), record)
        for layer in self.encoder:
            x = layer(x, attend)
        return self.enc_norm(x), lens

    def decode(
        self,
        memory: Tensor,
        src_lens: Tensor,
        tgt_in: Sequence[Tensor],
        records: dict[str, list[Tensor]] | None = None,
        src_of_tgt_sentence: Tensor | None = None,
    ) -> Tensor:
        """Decoder output ``[target tokens, d_model]`` for teacher-forced inputs ``tgt_in``.

        Target ``b`` reads encoded source ``src_of_tgt_sentence[b]`` (default: source ``b``).
        """
        lens = graphs.as_lengths([len(t) for t in tgt_in])
        tokens = torch.cat(list(tgt_in)).to(self.device)
        x = self.embed(self.tgt_embed, tokens, graphs.positions(lens).to(self.device))
        records = records if records is not None else {}
        self_attend = self._attend(graphs.causal_graph(lens, self.device), records.get("dec_self"))
        cross = graphs.cross_graph(src_lens, lens, src_of_tgt_sentence, device=self.device)
        cross_attend = self._attend(cross, records.get("cross"))
        for layer in self.decoder:
            x = layer(x, self_attend, memory, cross_attend)
        return self.dec_norm(x)

    def forward(self, src: Sequence[Tensor], tgt_in: Sequence[Tensor]) -> Tensor:
        """Logits ``[sum of target lengths, tgt_vocab]``, packed sentence by sentence."""
        self.check_batch(src, tgt_in)
        memory, src_lens = self.encode(src)
        return self.generator(self.decode(memory, src_lens, tgt_in))

    @torch.no_grad()
    def attention_weights(
        self, src: Sequence[Tensor], tgt_in: Sequence[Tensor]
    ) -> dict[str, list[Tensor] | dgl.DGLGraph]:
        """Per-layer attention weights ``[edges, heads]`` of each graph, for visualisation.

        Keys ``enc``, ``dec_self`` and ``cross`` hold one tensor per layer, in the edge order
        of the graphs stored under ``enc_graph``, ``dec_self_graph`` and ``cross_graph``.
        """
        self.check_batch(src, tgt_in)
        records: dict[str, list[Tensor]] = {"enc": [], "dec_self": [], "cross": []}
        memory, src_lens = self.encode(src, records["enc"])
        self.decode(memory, src_lens, tgt_in, records)
        tgt_lens = graphs.as_lengths([len(t) for t in tgt_in])
        return {
            **records,
            "enc_graph": self.encoder_graph(src_lens),
            "dec_self_graph": graphs.causal_graph(tgt_lens),
            "cross_graph": graphs.cross_graph(src_lens, tgt_lens),
        }

    @torch.no_grad()
    def translate(
        self,
        src: Sequence[Tensor],
        beam_size: int = 4,
        max_len: int = 100,
        length_penalty: float = 0.6,
    ) -> list[Tensor]:
        """Decode each source; returns the target ids without BOS and EOS, one tensor each."""
        from .decoding import beam_search, greedy

        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        if beam_size == 1:
            return greedy(self, src, max_len)
        return beam_search(self, src, beam_size, max_len, length_penalty)
