"""The graph Transformer in the data flow of DGL's original Transformer tutorial.

The benchmark's ``udf`` baseline. It has :class:`~dgl_transformer.nn.model.Seq2SeqBase`'s
parameters and computes the same function as :class:`~dgl_transformer.GraphTransformer`
(wherever the scaled attention scores lie in [-5, 5]); only the data flow differs, and it is the
tutorial's:

* one ``DGLGraph`` per batch holds every token as a node (source tokens, then target tokens)
  and all three edge sets; each attention runs on its own range of edge ids;
* node states live in the graph's node frame: every sub-layer reads its rows by node id
  (``apply_nodes``) and writes its result back, so each step copies rows in and out;
* queries, keys and values come from three separate projections, recomputed for the encoder
  output in every decoder layer;
* attention is two Python edge functions (``k_j . q_i`` gathered onto the edges, then
  ``exp(clamp(s / sqrt(d), -5, 5))``) and two ``send_and_recv`` passes on the edge subset
  (``sum v * e`` and ``sum e``), then a division on the nodes.

:class:`GraphTransformer` replaces each of these with a faster equivalent: packed tensors
instead of frames, graphs per attention kind reused by all layers, one fused QKV projection,
and ``u_dot_v`` / ``edge_softmax`` / ``u_mul_e + sum`` called on tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dgl
import dgl.function as fn
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgl_transformer.nn import graphs
from dgl_transformer.nn.attention import MultiHeadAttention
from dgl_transformer.nn.batch import PackedBatch
from dgl_transformer.nn.model import Seq2SeqBase

from .variants import key_query_scores

NodeFn = Callable[[dgl.udf.NodeBatch], dict[str, Tensor]]


def batch_graph(
    src_lens: Tensor, tgt_lens: Tensor
) -> tuple[dgl.DGLGraph, dict[str, Tensor], Tensor, Tensor]:
    """One graph for the batch: nodes are source tokens then target tokens; edge ids of the
    encoder (complete), decoder (causal) and cross (source -> target) attention."""
    n_src = int(src_lens.sum())
    parts = {
        "enc": (graphs.complete_graph(src_lens).edges(), 0, 0),
        "dec": (graphs.causal_graph(tgt_lens).edges(), n_src, n_src),
        "cross": (graphs.cross_graph(src_lens, tgt_lens).edges(), 0, n_src),
    }
    us, vs, eids, start = [], [], {}, 0
    for name, ((u, v), u_shift, v_shift) in parts.items():
        us.append(u + u_shift)
        vs.append(v + v_shift)
        eids[name] = torch.arange(start, start + len(u))
        start += len(u)
    g = dgl.graph((torch.cat(us), torch.cat(vs)), num_nodes=n_src + int(tgt_lens.sum()))
    return g, eids, torch.arange(n_src), torch.arange(n_src, g.num_nodes())


def _projection(attn: MultiHeadAttention, part: int, x: Tensor) -> Tensor:
    """Query (0), key (1) or value (2) projection alone, ``[nodes, heads, head_dim]``."""
    if hasattr(attn, "qkv"):
        linear, row = attn.qkv, part
    else:
        linear, row = (attn.q, 0) if part == 0 else (attn.kv, part - 1)
    rows = slice(row * attn.n_heads * attn.head_dim, (row + 1) * attn.n_heads * attn.head_dim)
    out = F.linear(x, linear.weight[rows], linear.bias[rows])
    return out.view(len(x), attn.n_heads, attn.head_dim)


class TutorialStyleTransformer(Seq2SeqBase):
    """Seq2seq Transformer computed the way DGL's original tutorial did (see module doc)."""

    def forward(
        self, batch: PackedBatch | Sequence[Tensor], tgt_in: Sequence[Tensor] | None = None
    ) -> Tensor:
        # the tutorial builds its one graph here, from the sentences (the batch carries none)
        batch = self.as_batch(batch, tgt_in)
        src, tgt_in = batch.sources(), batch.decoder_inputs()
        src_lens = graphs.as_lengths([len(s) for s in src])
        tgt_lens = graphs.as_lengths([len(t) for t in tgt_in])
        g, eids, enc, dec = batch_graph(src_lens, tgt_lens)
        g = g.to(self.device)
        g.ndata["x"] = torch.cat([
            self.embed(self.src_embed, torch.cat(list(src)).to(self.device),
                       graphs.positions(src_lens).to(self.device)),
            self.embed(self.tgt_embed, torch.cat(list(tgt_in)).to(self.device),
                       graphs.positions(tgt_lens).to(self.device)),
        ])
        for layer in self.encoder:
            self.attention(g, eids["enc"], enc, enc, layer.norm_attn, layer.self_attn, layer.drop)
            g.apply_nodes(self._feed_forward(layer), enc)
        g.apply_nodes(lambda nodes: {"x": self.enc_norm(nodes.data["x"])}, enc)
        for layer in self.decoder:
            self.attention(g, eids["dec"], dec, dec, layer.norm_self, layer.self_attn, layer.drop)
            self.attention(g, eids["cross"], dec, enc, layer.norm_cross, layer.cross_attn,
                           layer.drop, memory=True)
            g.apply_nodes(self._feed_forward(layer), dec)
        return self.generator(self.dec_norm(g.nodes[dec].data["x"]))

    def attention(
        self, g: dgl.DGLGraph, eids: Tensor, queries: Tensor, keys: Tensor,
        norm: nn.LayerNorm, attn: MultiHeadAttention, drop: nn.Dropout, memory: bool = False,
    ) -> None:
        """``x += drop(attention)`` on the ``queries`` nodes, along the edges ``eids``; keys
        and values come from the ``keys`` nodes (normalised encoder output if ``memory``)."""

        def project_q(nodes: dgl.udf.NodeBatch) -> dict[str, Tensor]:
            return {"q": _projection(attn, 0, norm(nodes.data["x"]))}

        def project_kv(nodes: dgl.udf.NodeBatch) -> dict[str, Tensor]:
            x = nodes.data["x"] if memory else norm(nodes.data["x"])
            return {"k": _projection(attn, 1, x), "v": _projection(attn, 2, x)}

        def finish(nodes: dgl.udf.NodeBatch) -> dict[str, Tensor]:
            o = (nodes.data["wv"] / nodes.data["z"]).reshape(len(nodes), -1)
            return {"x": nodes.data["x"] + drop(attn.out(o))}

        scale = attn.head_dim**0.5
        g.apply_nodes(project_q, queries)
        g.apply_nodes(project_kv, keys)
        g.apply_edges(key_query_scores, eids)
        g.apply_edges(lambda e: {"e": torch.exp((e.data["score"] / scale).clamp(-5, 5))}, eids)
        kept, p = "e", self.attn_dropout()
        if p:
            kept = "kept"
            g.apply_edges(lambda e: {"kept": F.dropout(e.data["e"], p)}, eids)
        g.send_and_recv(eids, fn.u_mul_e("v", kept, "m"), fn.sum("m", "wv"))
        g.send_and_recv(eids, fn.copy_e("e", "m"), fn.sum("m", "z"))
        g.apply_nodes(finish, queries)

    @staticmethod
    def _feed_forward(layer: nn.Module) -> NodeFn:
        def update(nodes: dgl.udf.NodeBatch) -> dict[str, Tensor]:
            x = nodes.data["x"]
            return {"x": x + layer.drop(layer.ffn(layer.norm_ffn(x)))}

        return update
