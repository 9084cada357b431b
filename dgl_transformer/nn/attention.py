r"""Multi-head scaled dot-product attention as message passing on a DGL graph.

For an edge ``j -> i`` (token ``i`` attends to token ``j``) and each head ``h``:

.. math::

    s_{ij} = \frac{q_i \cdot k_j}{\sqrt{d_k}}              \quad\text{(message: an edge score)}

    a_{ij} = \frac{\exp s_{ij}}{\sum_{j' \in N(i)} \exp s_{ij'}}  \quad\text{(edge softmax)}

    o_i = \sum_{j \in N(i)} a_{ij} v_j                           \quad\text{(aggregate)}

All three steps are DGL built-in kernels, called on the graph and the tensors directly
(``dgl.ops.v_dot_u``, ``dgl.ops.edge_softmax``, ``dgl.ops.u_mul_e_sum``; the same computation as
``apply_edges(fn.v_dot_u)``, ``edge_softmax`` and ``update_all(fn.u_mul_e, fn.sum)`` without
storing anything in the graph's node and edge frames): no Python function runs per edge. Which
tokens see which is decided by the graph alone, so the same code is encoder, causal decoder and
encoder-decoder attention.

One CPU detail shapes the code (see BENCHMARKS.md, "DGL-level options"). DGL 1.1.3 runs a
weighted sum ``sum_j a_ij x_j`` with one weight per head (``a``: ``[E, H, 1]``, ``x``:
``[N, H, d]``) as a broadcast, which takes its naive scalar loop; the same sum with the weights
repeated to ``[E, H, d]`` takes its vectorised libxsmm kernel. The forward aggregation and the
three weighted sums of the backward (of the aggregation, and of the scores) therefore repeat the
weights into one reusable buffer first (a fresh buffer per call cost more in page faults than
the kernel saved). Measured on two threads while choosing it: attention of every layer of a
training step (graphs built, forward and backward) took 0.70x (d_model 128) and 0.75x
(d_model 256) the time of DGL's own autograd; ``make bench`` measures it again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import dgl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

# attend(q, k, v) -> o, with q: [..., Nq, H, dk] and k, v: [..., Nk, H, dk]. The graph model
# closes over a DGL graph, the dense reference over a boolean mask.
Attend = Callable[[Tensor, Tensor, Tensor], Tensor]

#: Largest repeated-weight buffer; a larger sum (a long sequence's complete graph) keeps DGL's
#: broadcast kernel rather than holding ``E * H * d`` floats.
WIDE_WEIGHTS_MAX_BYTES = 64 << 20
_buffer = threading.local()  # one buffer per thread, reused: fresh pages cost more than the copy


def _wide(w: Tensor, dim: int) -> Tensor:
    """``w`` (``[E, H, 1]``) repeated to ``[E, H, dim]`` in this thread's reusable buffer; valid
    until the next call."""
    n = w.shape[0] * w.shape[1] * dim
    buf = getattr(_buffer, "tensor", None)
    if buf is None or buf.numel() < n or buf.dtype != w.dtype or buf.device != w.device:
        buf = _buffer.tensor = w.new_empty(n)
    return buf[:n].view(w.shape[0], w.shape[1], dim).copy_(w.expand(-1, -1, dim))


def weighted_sums(w: Tensor, *pairs: tuple[dgl.DGLGraph, Tensor]) -> list[Tensor]:
    """``o_i = sum_{j -> i} w_ji x_j`` for each ``(graph, x)``: one weight per edge and head
    (``w``: ``[E, H, 1]``, ``x``: ``[N, H, d]``), the same ``w`` on every graph (a graph and
    its reverse share edge ids). No autograd."""
    dim = pairs[0][1].shape[-1]
    if w.numel() * dim * w.element_size() > WIDE_WEIGHTS_MAX_BYTES:
        return [dgl.ops.u_mul_e_sum(g, x, w) for g, x in pairs]
    wide = _wide(w, dim)
    return [dgl.ops.u_mul_e_sum(g, x, wide) for g, x in pairs]


class EdgeScores(torch.autograd.Function):
    """``q_i . k_j`` on every edge ``j -> i`` (DGL's SDDMM ``v_dot_u``), ``[E, H, 1]``; its
    backward is two :func:`weighted_sums`, ``dq = sum_j ds k_j`` and ``dk`` on the reverse."""

    @staticmethod
    def forward(ctx, graph: dgl.DGLGraph, q: Tensor, k: Tensor) -> Tensor:
        ctx.graph = graph
        ctx.save_for_backward(q, k)
        return dgl.ops.v_dot_u(graph, q, k)

    @staticmethod
    @once_differentiable
    def backward(ctx, ds: Tensor) -> tuple[None, Tensor, Tensor]:
        q, k = ctx.saved_tensors
        dq, dk = weighted_sums(ds, (ctx.graph, k), (dgl.reverse(ctx.graph), q))
        return None, dq, dk


class Aggregate(torch.autograd.Function):
    """``o_i = sum_{j -> i} a_ji v_j`` (:func:`weighted_sums`); backward: ``dv`` on the reverse
    graph, ``da = v_j . do_i`` (DGL's SDDMM ``u_dot_v``)."""

    @staticmethod
    def forward(ctx, graph: dgl.DGLGraph, v: Tensor, a: Tensor) -> Tensor:
        ctx.graph = graph
        ctx.save_for_backward(v, a)
        return weighted_sums(a, (graph, v))[0]

    @staticmethod
    @once_differentiable
    def backward(ctx, do: Tensor) -> tuple[None, Tensor, Tensor]:
        v, a = ctx.saved_tensors
        (dv,) = weighted_sums(a, (dgl.reverse(ctx.graph), do))
        return None, dv, dgl.ops.u_dot_v(ctx.graph, v, do)


def graph_attention(
    graph: dgl.DGLGraph,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dropout: float = 0.0,
    return_weights: bool = False,
    observe: Callable[[Tensor, Tensor], None] | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Attention along the edges of ``graph``.

    ``q`` holds one row per destination node, ``k`` and ``v`` one per source node, each shaped
    ``[nodes, heads, head_dim]``. Returns ``[dst nodes, heads, head_dim]`` and, when asked, the
    attention weights ``[edges, heads]`` in the graph's edge order. ``observe(scores,
    weights)``, if given, sees the scores that enter the softmax and its output (``[E, H, 1]``
    each, in the autograd graph): a probe may call ``scores.retain_grad()``.
    """
    # message: [E, H, 1]; scaling the scores, not q, keeps no scaled copy of q alive
    scores = EdgeScores.apply(graph, q, k) * q.shape[-1] ** -0.5
    weights = dgl.ops.edge_softmax(graph, scores)  # normalise over each node's in-edges
    if observe is not None:
        observe(scores, weights)
    kept = F.dropout(weights, dropout, training=True) if dropout else weights
    out = Aggregate.apply(graph, v, kept)  # aggregate
    return (out, weights.squeeze(-1)) if return_weights else out


class MultiHeadAttention(nn.Module):
    """Projections around an ``attend`` routine.

    Self-attention uses one fused ``qkv`` projection; cross-attention projects queries from
    the decoder (``q``) and keys/values from the encoder output (``kv``), which a decoder can
    compute once and pass back in as a ``(k, v)`` pair. (Heads are switched off in the
    model's ``attend``: see :func:`~dgl_transformer.nn.hooks.mask_heads`.)
    """

    def __init__(self, d_model: int, n_heads: int, cross: bool = False) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        if cross:
            self.q = nn.Linear(d_model, d_model)
            self.kv = nn.Linear(d_model, 2 * d_model)
        else:
            self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def _heads(self, x: Tensor, parts: int) -> tuple[Tensor, ...]:
        x = x.view(*x.shape[:-1], parts, self.n_heads, self.head_dim)
        return x.unbind(-3)

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of a cross-attention memory, ``[..., heads, head_dim]`` each."""
        return self._heads(self.kv(memory), 2)

    def forward(
        self, x: Tensor, attend: Attend, memory: Tensor | tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        if memory is None:
            q, k, v = self._heads(self.qkv(x), 3)
        else:
            (q,) = self._heads(self.q(x), 1)
            k, v = memory if isinstance(memory, tuple) else self.project_kv(memory)
        o = attend(q, k, v)
        return self.out(o.reshape(*o.shape[:-2], -1))
