"""Documented hooks into a :class:`~dgl_transformer.nn.model.GraphTransformer`'s attention.

* :func:`observe_attention`: every attention computation inside the ``with`` block reports
  an :class:`AttentionEvent` (which attention, which layer, the graph, the weights of its
  edges and the scores before the softmax). Visualisations, analyses and probes read attention
  here: nothing computes it a second time.
* :func:`mask_heads`: switch heads off (their output multiplied by 0) inside the block, per
  attention type and layer (head pruning, Michel et al., 2019).

Both restore the model when the block ends, also after an error.

>>> with observe_attention(model) as events:          # doctest: +SKIP
...     model(batch)
>>> [(e.kind, e.layer, tuple(e.weights.shape)) for e in events]   # doctest: +SKIP
[('enc', 0, (69, 4)), ('enc', 1, (69, 4)), ('dec_self', 0, (42, 4)), ('cross', 0, (68, 4)), ...]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dgl
from torch import Tensor

if TYPE_CHECKING:
    from .model import GraphTransformer

#: The three attention types, in the order a forward pass runs them within a decoder layer.
KINDS = ("enc", "dec_self", "cross")


@dataclass(frozen=True)
class AttentionEvent:
    """One attention computation: ``kind`` (one of :data:`KINDS`) in layer ``layer``, along
    ``graph`` (an edge ``j -> i``: receiver ``i`` aggregates sender ``j``).

    ``weights`` ``[edges, heads]`` (detached) are the attention weights in the graph's edge
    order; ``scores`` ``[edges, heads, 1]`` are the scores that entered the softmax, still in
    the autograd graph (``scores.retain_grad()`` keeps their gradient), or None for a mean
    aggregator, whose weights are ``1 / in-degree``. During incremental decoding the
    self-attention graph runs from the cached rows of each hypothesis to its new token.
    """

    kind: str
    layer: int
    graph: dgl.DGLGraph
    weights: Tensor
    scores: Tensor | None


Observer = Callable[[AttentionEvent], None]


@contextmanager
def observe_attention(
    model: GraphTransformer, observer: Observer | None = None
) -> Iterator[list[AttentionEvent]]:
    """Report every attention computation of ``model`` inside the block to ``observer``;
    without one, the events are collected in the list the block receives."""
    events: list[AttentionEvent] = []
    call = observer or events.append
    model.observers.append(call)
    try:
        yield events
    finally:
        model.observers.remove(call)


@contextmanager
def mask_heads(model: GraphTransformer, masks: dict[str, Tensor]) -> Iterator[None]:
    """Scale each head's output by ``masks[kind][layer, head]`` (0 switches it off) for the
    attention types given, inside the block. A mask is ``[layers, heads]``."""
    layers = {"enc": model.cfg.n_enc_layers, "dec_self": model.cfg.n_dec_layers,
              "cross": model.cfg.n_dec_layers}
    for kind, mask in masks.items():
        if not isinstance(mask, Tensor):
            raise TypeError(f"{kind} head mask must be a tensor, got {type(mask).__name__}")
        if kind not in layers:
            raise ValueError(f"unknown attention type {kind!r} (known: {', '.join(KINDS)})")
        if tuple(mask.shape) != (layers[kind], model.cfg.n_heads):
            raise ValueError(f"{kind} head mask must be [layers, heads] = "
                             f"[{layers[kind]}, {model.cfg.n_heads}], got {list(mask.shape)}")
    saved = dict(model.head_masks)
    model.head_masks.update(masks)
    try:
        yield
    finally:
        model.head_masks.clear()
        model.head_masks.update(saved)
