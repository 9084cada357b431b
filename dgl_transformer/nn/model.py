"""The encoder-decoder Transformer as message passing on three graphs.

:class:`Seq2SeqBase` owns every parameter (embeddings, layers, output projection); its two
subclasses differ only in how a batch is laid out and how attention is computed:

* :class:`GraphTransformer` reads a :class:`~dgl_transformer.nn.batch.PackedBatch` (no
  padding) and attends along the edges of its complete (encoder), causal (decoder) and
  bipartite (encoder -> decoder) graphs;
* :class:`~dgl_transformer.nn.dense.DenseTransformer` pads it and uses masked dense attention.

Because the parameters live in the shared base, ``state_dict`` keys are identical and either
model loads the other's weights.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dgl
import torch
from torch import Tensor, nn

from . import graphs
from .attention import Attend, graph_attention
from .batch import DecoderInput, GraphBuilder, PackedBatch
from .config import TransformerConfig
from .hooks import KINDS, AttentionEvent, Observer, observe_attention
from .layers import DecoderLayer, EncoderLayer, sinusoidal_positions

if TYPE_CHECKING:  # decoding reads the model through its Seq2Seq protocol, never the reverse
    from .decoding import IncrementalCache

def check_ids(tokens: Tensor, lens: Tensor, vocab: int, max_len: int, name: str) -> None:
    """Raise a one-line ``ValueError`` naming the first sentence that is too long or holds an
    id outside ``[0, vocab)``."""
    too_long = (lens > max_len).nonzero()
    if len(too_long):
        i = int(too_long[0])
        raise ValueError(f"{name}[{i}] has {int(lens[i])} tokens, more than max_len={max_len}")
    bad = ((tokens < 0) | (tokens >= vocab)).nonzero()
    if len(bad):
        row = int(bad[0])
        where = int(graphs.sentence_ids(lens)[row])
        raise ValueError(f"{name}[{where}] holds token id {int(tokens[row])}, outside the "
                         f"vocabulary [0, {vocab})")


def span_means(graph: dgl.DGLGraph, tokens: Tensor) -> Tensor:
    """Start vectors of the span nodes of a hierarchy graph (nodes after the ``len(tokens)``
    token nodes): each the mean of the tokens it hears, i.e. the tokens it covers."""
    n = len(tokens)
    src, dst = graph.edges()
    covers = (src < n) & (dst >= n)
    span = dst[covers] - n
    total = tokens.new_zeros(graph.num_nodes() - n, tokens.shape[1])
    total.index_add_(0, span, tokens[src[covers]])
    return total / torch.bincount(span, minlength=len(total)).clamp(min=1)[:, None].to(total)


class Seq2SeqBase(nn.Module):
    """Parameters and the layout-independent pieces of the network.

    ``encoder_graph`` is the graph builder :meth:`collate` gives a batch (``None``: a layout
    that needs no graphs).
    """

    encoder_graph: GraphBuilder | None = None

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.src_embed = nn.Embedding(cfg.src_vocab, d)
        self.tgt_embed = self.src_embed if cfg.share_embeddings else nn.Embedding(cfg.tgt_vocab, d)
        self.register_buffer("pos_table", sinusoidal_positions(cfg.max_len, d), persistent=False)
        layer_args = (d, cfg.n_heads, cfg.d_ff, cfg.dropout, cfg.norm_first,
                      cfg.activation_dropout)
        self.encoder = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(cfg.n_enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(*layer_args) for _ in range(cfg.n_dec_layers))
        # pre-LN leaves the residual stream unnormalised: a final LayerNorm on each side
        final_norm = nn.LayerNorm if cfg.norm_first else (lambda _: nn.Identity())
        self.enc_norm, self.dec_norm = final_norm(d), final_norm(d)
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

    def collate(self, src: Sequence[Tensor], tgt: Sequence[Tensor] | None = None) -> PackedBatch:
        """:meth:`PackedBatch.collate` with the graphs this model reads."""
        return PackedBatch.collate(src, tgt, encoder_graph=self.encoder_graph)

    def as_batch(
        self, batch: PackedBatch | Sequence[Tensor], tgt_in: Sequence[Tensor] | None = None
    ) -> PackedBatch:
        """``batch`` checked against the model (vocabulary, ``max_len``) and on its device;
        lists of sources (and decoder inputs) are packed first."""
        if not isinstance(batch, PackedBatch):
            builder = self.encoder_graph
            batch = (PackedBatch.collate(batch, encoder_graph=builder) if tgt_in is None else
                     PackedBatch.from_decoder_inputs(batch, tgt_in, encoder_graph=builder))
        cfg = self.cfg
        check_ids(batch.src, batch.src_lens, cfg.src_vocab, cfg.max_len, "src")
        if batch.has_target:
            check_ids(batch.tgt_in, batch.tgt_lens, cfg.tgt_vocab, cfg.max_len, "tgt_in")
        return batch if batch.src.device == self.device else batch.to(self.device)


class GraphTransformer(Seq2SeqBase):
    """The Transformer as message passing over packed, padding-free batches.

    ``encoder_graph(lengths)`` builds the encoder's graph when a batch is collated; by default
    it is the one ``cfg.encoder_graph`` names (the complete graph of the original Transformer
    unless the config says otherwise), and any builder may be given instead, e.g.
    ``functools.partial(graphs.window_graph, window=8)``. The model's ``cfg`` then records
    ``encoder_graph="custom"``: no config, checkpoint or dense twin can claim another graph.
    ``attention_kernel`` computes attention along a graph's edges with the signature of
    :func:`~dgl_transformer.nn.attention.graph_attention`; a subclass may swap it.
    """

    attention_kernel = staticmethod(graph_attention)

    def __init__(self, cfg: TransformerConfig, encoder_graph: GraphBuilder | None = None) -> None:
        if encoder_graph is not None:
            if not callable(encoder_graph):
                raise TypeError(f"encoder_graph must be a graph builder (lengths -> graph), got "
                                f"{encoder_graph!r}; a registered graph is named in the config: "
                                "TransformerConfig(..., encoder_graph='window:8')")
            cfg = dataclasses.replace(cfg, encoder_graph=graphs.CUSTOM, graph_file="")
        super().__init__(cfg)
        self.encoder_graph = encoder_graph or graphs.encoder_graph_builder(cfg.encoder_graph,
                                                                          cfg.graph_file)
        #: The hooks of :mod:`.hooks` (set through its context managers).
        self.observers: list[Observer] = []
        self.head_masks: dict[str, Tensor] = {}

    def attend(self, graph: dgl.DGLGraph, kind: str, layer: int,
               aggregator: str = "attention") -> Attend:
        """The ``attend(q, k, v)`` routine of attention type ``kind`` in layer ``layer``, along
        ``graph``'s edges. With ``aggregator="mean"`` a token takes the plain mean of its
        neighbours' values (weights ``1 / in-degree``). The hooks of :mod:`.hooks` act here:
        observers see every call, head masks scale each head's output."""

        def report(weights: Tensor, scores: Tensor | None) -> None:
            event = AttentionEvent(kind, layer, graph, weights.detach(), scores)
            for observer in self.observers:
                observer(event)

        def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            if not self.cfg.scale_scores:  # the kernel divides by sqrt(d_k): cancel it
                q = q * q.shape[-1] ** 0.5
            if aggregator == "mean":
                out = dgl.ops.copy_u_mean(graph, v)
                if self.observers:
                    _, dst = graph.edges()
                    share = 1.0 / graph.in_degrees().to(v.dtype)[dst.long()]
                    report(share[:, None].expand(-1, v.shape[1]), None)
            elif self.observers:
                out = self.attention_kernel(graph, q, k, v, self.attn_dropout(),
                                            observe=lambda s, w: report(w.squeeze(-1), s))
            else:
                out = self.attention_kernel(graph, q, k, v, self.attn_dropout())
            mask = self.head_masks.get(kind)
            return out if mask is None else out * mask[layer].to(out)[:, None]

        return attend

    def encode(self, batch: PackedBatch) -> Tensor:
        """Encoder output ``[source tokens, d_model]``, packed like ``batch.src``."""
        if batch.encoder_graph is not self.encoder_graph:
            raise ValueError("the batch's encoder graph was built by another builder than the "
                             "model's encoder_graph: collate it with model.collate(...)")
        x = self.embed(self.src_embed, batch.src, batch.src_pos)
        tokens = len(x)
        if batch.enc_graph.num_nodes() > tokens:  # span nodes (graphs.span_graph)
            x = torch.cat([x, span_means(batch.enc_graph, x)])
        for i, layer in enumerate(self.encoder):
            x = layer(x, self.attend(batch.enc_graph, "enc", i, self.cfg.enc_aggregator))
        return self.enc_norm(x[:tokens])  # the decoder reads the tokens only

    def memory_kv(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Each decoder layer's cross-attention keys and values of the encoder output
        ``memory`` (incremental decoding projects them once per source)."""
        return [layer.cross_attn.project_kv(memory) for layer in self.decoder]

    def decode(
        self, inp: DecoderInput, memory: Tensor | None, cache: IncrementalCache | None = None
    ) -> Tensor:
        """Decoder output ``[inp.tokens, d_model]``.

        Teacher forcing passes a batch's :attr:`~PackedBatch.decoder_input` and the encoder
        output. Incremental decoding passes one new token per hypothesis and the ``cache``,
        which holds the keys and values of earlier steps and of the encoder output (then
        ``memory`` is unused): each layer's self-attention stores the new keys/values in the
        cache and attends along ``inp.self_graph`` from the cached rows to the new tokens.
        """
        x = self.embed(self.tgt_embed, inp.tokens, inp.positions)
        for i, layer in enumerate(self.decoder):
            self_attend = self.attend(inp.self_graph, "dec_self", i, self.cfg.dec_aggregator)
            cross_attend = self.attend(inp.cross_graph, "cross", i)
            if cache is None:
                x = layer(x, self_attend, memory, cross_attend)
            else:
                x = layer(x, cache.self_attend(i, self_attend), cache.memory(i), cross_attend)
        return self.dec_norm(x)

    def forward(
        self, batch: PackedBatch | Sequence[Tensor], tgt_in: Sequence[Tensor] | None = None
    ) -> Tensor:
        """Logits ``[decoder tokens, tgt_vocab]``, packed sentence by sentence.

        ``model(batch)`` takes a :class:`PackedBatch`; ``model(src, tgt_in)`` takes lists of
        source ids and decoder inputs (BOS included) and packs them first.
        """
        batch = self.as_batch(batch, tgt_in)
        return self.generator(self.decode(batch.decoder_input, self.encode(batch)))

    @torch.no_grad()
    def attention_weights(
        self, batch: PackedBatch | Sequence[Tensor], tgt_in: Sequence[Tensor] | None = None
    ) -> dict[str, list[Tensor] | dgl.DGLGraph]:
        """Per-layer attention weights ``[edges, heads]`` of each graph, for visualisation
        (read through :func:`~dgl_transformer.nn.hooks.observe_attention`).

        Keys ``enc``, ``dec_self`` and ``cross`` hold one tensor per layer, in the edge order
        of the graphs stored under ``enc_graph``, ``dec_self_graph`` and ``cross_graph``.
        """
        batch = self.as_batch(batch, tgt_in)
        with observe_attention(self) as events:
            self.decode(batch.decoder_input, self.encode(batch))
        weights = {kind: [e.weights for e in events if e.kind == kind] for kind in KINDS}
        return {**weights, "enc_graph": batch.enc_graph, "dec_self_graph": batch.dec_graph,
                "cross_graph": batch.cross_graph}
