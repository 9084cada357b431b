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
"""

from __future__ import annotations

from collections.abc import Callable

import dgl
import torch.nn.functional as F
from torch import Tensor, nn

# attend(q, k, v) -> o, with q: [..., Nq, H, dk] and k, v: [..., Nk, H, dk]. The graph model
# closes over a DGL graph, the dense reference over a boolean mask.
Attend = Callable[[Tensor, Tensor, Tensor], Tensor]


def graph_attention(
    graph: dgl.DGLGraph,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dropout: float = 0.0,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Attention along the edges of ``graph``.

    ``q`` holds one row per destination node, ``k`` and ``v`` one per source node, each shaped
    ``[nodes, heads, head_dim]``. Returns ``[dst nodes, heads, head_dim]`` and, when asked, the
    attention weights ``[edges, heads]`` in the graph's edge order.
    """
    # message: [E, H, 1]; scaling the scores, not q, keeps no scaled copy of q alive
    scores = dgl.ops.v_dot_u(graph, q, k) * q.shape[-1] ** -0.5
    weights = dgl.ops.edge_softmax(graph, scores)  # normalise over each node's in-edges
    kept = F.dropout(weights, dropout, training=True) if dropout else weights
    out = dgl.ops.u_mul_e_sum(graph, v, kept)  # aggregate
    return (out, weights.squeeze(-1)) if return_weights else out


class MultiHeadAttention(nn.Module):
    """Projections around an ``attend`` routine.

    Self-attention uses one fused ``qkv`` projection; cross-attention projects queries from
    the decoder (``q``) and keys/values from the encoder output (``kv``), which a decoder can
    compute once and pass back in as a ``(k, v)`` pair.
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
