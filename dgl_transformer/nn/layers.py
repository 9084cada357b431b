"""Encoder and decoder layers, written once for any tensor layout.

A layer never sees a graph or a mask: it receives ``attend`` routines (see
:mod:`dgl_transformer.nn.attention`). The graph model feeds packed ``[tokens, d_model]`` tensors
and graph attention; the dense reference feeds padded ``[batch, length, d_model]`` tensors and
masked dense attention. Both therefore share parameter names and every line of layer code.

Each sub-layer ``f`` (attention or FFN) sits in a residual block, pre-LayerNorm by default
(``x + f(LN(x))``, stable without warm-up) or post-LayerNorm as in the original Transformer
(``LN(x + f(x))``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .attention import Attend, MultiHeadAttention


class FeedForward(nn.Sequential):
    """Position-wise FFN: ``W2 dropout(relu(W1 x))`` (fairseq's activation dropout)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model)
        )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


class ResidualLayer(nn.Module):
    """The residual wiring shared by encoder and decoder layers."""

    def __init__(self, dropout: float, norm_first: bool) -> None:
        super().__init__()
        self.drop, self.norm_first = nn.Dropout(dropout), norm_first

    def residual(
        self, x: Tensor, norm: nn.LayerNorm, sublayer: Callable[[Tensor], Tensor]
    ) -> Tensor:
        """``x + dropout(f(LN(x)))`` (pre-LN) or ``LN(x + dropout(f(x)))`` (post-LN)."""
        if self.norm_first:
            return x + self.drop(sublayer(norm(x)))
        return norm(x + self.drop(sublayer(x)))


class EncoderLayer(ResidualLayer):
    """Self-attention, then the FFN, each in a residual block."""

    def __init__(
        self, d_model: int, n_heads: int, d_ff: int, dropout: float, norm_first: bool = True,
        activation_dropout: float | None = None,
    ) -> None:
        super().__init__(dropout, norm_first)
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.ffn = FeedForward(d_model, d_ff, _or(activation_dropout, dropout))
        self.norm_attn, self.norm_ffn = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

    def forward(self, x: Tensor, attend: Attend) -> Tensor:
        x = self.residual(x, self.norm_attn, lambda h: self.self_attn(h, attend))
        return self.residual(x, self.norm_ffn, self.ffn)


class DecoderLayer(ResidualLayer):
    """Causal self-attention, then cross-attention to the encoder output, then the FFN."""

    def __init__(
        self, d_model: int, n_heads: int, d_ff: int, dropout: float, norm_first: bool = True,
        activation_dropout: float | None = None,
    ) -> None:
        super().__init__(dropout, norm_first)
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, cross=True)
        self.ffn = FeedForward(d_model, d_ff, _or(activation_dropout, dropout))
        self.norm_self = nn.LayerNorm(d_model)
        self.norm_cross = nn.LayerNorm(d_model)
        self.norm_ffn = nn.LayerNorm(d_model)

    def forward(
        self,
        x: Tensor,
        self_attend: Attend,
        memory: Tensor | tuple[Tensor, Tensor],
        cross_attend: Attend,
    ) -> Tensor:
        x = self.residual(x, self.norm_self, lambda h: self.self_attn(h, self_attend))
        x = self.residual(x, self.norm_cross,
                          lambda h: self.cross_attn(h, cross_attend, memory))
        return self.residual(x, self.norm_ffn, self.ffn)


def sinusoidal_positions(max_len: int, d_model: int) -> Tensor:
    """``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(...)``; shape ``[max_len, d]``."""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : d_model // 2]
    return table
