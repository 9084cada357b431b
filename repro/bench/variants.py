"""Attention kernels that the benchmark compares with ``nn.attention.graph_attention``.

* :func:`dgl_autograd_attention`: the same three built-in kernels with DGL's own autograd,
  whose weighted sums broadcast one weight per head and take DGL's naive loop (the model's
  kernel before it repeated the weights, see ``nn.attention``).
* :func:`frames_attention`: the same built-in kernels, called the message-passing way: inputs
  stored in the graph's node frames, results read back from its edge and node frames.
* :func:`udf_attention`: the attention of DGL's original Transformer tutorial, in the style of
  early DGL: a Python edge function gathers ``k`` and ``q`` onto every edge to form the
  scores, a second edge function exponentiates them (clamped to [-5, 5] instead of subtracting
  a maximum), and two message-passing passes sum ``v * exp(s)`` and ``exp(s)`` into each node,
  which are then divided. It is the same attention wherever the scaled scores lie in [-5, 5].
* :func:`gather_scatter_attention`: no DGL kernel at all, PyTorch indexing along the graph's
  edge list (gather the rows of every edge, ``scatter_reduce``/``index_add`` into each
  destination): a comparison point only; the model's attention stays DGL message passing.

All have the signature of ``graph_attention``.
"""

from __future__ import annotations

import dgl
import dgl.function as fn
import torch
import torch.nn.functional as F
from dgl.nn.functional import edge_softmax
from torch import Tensor

from dgl_transformer import GraphTransformer


def dgl_autograd_attention(
    graph: dgl.DGLGraph, q: Tensor, k: Tensor, v: Tensor, dropout: float = 0.0,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """``dgl.ops.v_dot_u``, ``edge_softmax``, ``u_mul_e_sum``, differentiated by DGL."""
    weights = dgl.ops.edge_softmax(graph, dgl.ops.v_dot_u(graph, q, k) * q.shape[-1] ** -0.5)
    kept = F.dropout(weights, dropout) if dropout else weights
    out = dgl.ops.u_mul_e_sum(graph, v, kept)
    return (out, weights.squeeze(-1)) if return_weights else out


def gather_scatter_attention(
    graph: dgl.DGLGraph, q: Tensor, k: Tensor, v: Tensor, dropout: float = 0.0,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Attention along the graph's edge list in plain PyTorch (gather, scatter)."""
    src, dst = graph.edges()
    scores = (q[dst] * k[src]).sum(-1) * q.shape[-1] ** -0.5  # [E, H]
    with torch.no_grad():  # the per-destination maximum only keeps exp() in range
        top = scores.new_full((len(q), scores.shape[1]), -torch.inf).scatter_reduce(
            0, dst[:, None].expand_as(scores), scores, "amax")
    exp = (scores - top[dst]).exp()
    weights = exp / exp.new_zeros(top.shape).index_add(0, dst, exp)[dst]
    kept = F.dropout(weights, dropout) if dropout else weights
    out = v.new_zeros(len(q), *v.shape[1:]).index_add(0, dst, kept[..., None] * v[src])
    return (out, weights) if return_weights else out


def frames_attention(
    graph: dgl.DGLGraph, q: Tensor, k: Tensor, v: Tensor, dropout: float = 0.0,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """``apply_edges(fn.v_dot_u)``, ``edge_softmax``, ``update_all(fn.u_mul_e, fn.sum)``."""
    with graph.local_scope():
        graph.srcdata.update({"k": k, "v": v})
        graph.dstdata["q"] = q * q.shape[-1] ** -0.5
        graph.apply_edges(fn.v_dot_u("q", "k", "score"))
        weights = edge_softmax(graph, graph.edata["score"])
        graph.edata["a"] = F.dropout(weights, dropout) if dropout else weights
        graph.update_all(fn.u_mul_e("v", "a", "m"), fn.sum("m", "o"))
        out = graph.dstdata["o"]
    return (out, weights.squeeze(-1)) if return_weights else out


def key_query_scores(edges: dgl.udf.EdgeBatch) -> dict[str, Tensor]:
    """Edge function of the tutorial: ``k_j . q_i`` per head, gathered onto each edge
    ``j -> i``."""
    return {"score": (edges.src["k"] * edges.dst["q"]).sum(-1, keepdim=True)}


def udf_attention(
    graph: dgl.DGLGraph, q: Tensor, k: Tensor, v: Tensor, dropout: float = 0.0,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Tutorial-style attention; same signature and result as ``graph_attention``."""
    scale = q.shape[-1] ** 0.5
    with graph.local_scope():
        graph.srcdata.update({"k": k, "v": v})
        graph.dstdata["q"] = q
        graph.apply_edges(key_query_scores)
        graph.apply_edges(
            lambda edges: {"e": torch.exp((edges.data["score"] / scale).clamp(-5, 5))}
        )
        graph.edata["kept"] = F.dropout(graph.edata["e"], dropout) if dropout else graph.edata["e"]
        graph.update_all(fn.u_mul_e("v", "kept", "m"), fn.sum("m", "wv"))
        graph.update_all(fn.copy_e("e", "m"), fn.sum("m", "z"))
        out = graph.dstdata["wv"] / graph.dstdata["z"]
        if not return_weights:
            return out
        graph.apply_edges(fn.e_div_v("e", "z", "a"))
        return out, graph.edata["a"].squeeze(-1)


class UdfGraphTransformer(GraphTransformer):
    """:class:`GraphTransformer` with the tutorial-style attention kernel."""

    attention_kernel = staticmethod(udf_attention)
