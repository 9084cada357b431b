"""Pre-LayerNorm encoder and decoder layers, written once for any tensor layout.

A layer never sees a graph or a mask: it receives ``attend`` routines (see
:mod:`dgl_transformer.nn.attention`). The graph model feeds packed ``[tokens, d_model]`` tensors
and graph attention; the dense reference feeds padded ``[batch, length, d_model]`` tensors and
masked dense attention. Both therefore share parameter names and every line of layer code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .attention import Attend, MultiHeadAttention


class FeedForward(nn.Sequential):
    """Position-wise FFN: ``W2 dropout(relu(W1 x))``."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model)
        )


class EncoderLayer(nn.Module):
    """``x + SelfAttn(LN(x))``, then ``x + FFN(LN(x))``."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.ffn = FeedForward(d_model, d_ff, dropout)
        self.norm_attn, self.norm_ffn = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, attend: Attend) -> Tensor:
        x = x + self.drop(self.self_attn(self.norm_attn(x), attend))
        return x + self.drop(self.ffn(self.norm_ffn(x)))


class DecoderLayer(nn.Module):
    """Causal self-attention, then cross-attention to the encoder output, then the FFN."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, cross=True)
        self.ffn = FeedForward(d_model, d_ff, dropout)
        self.norm_self = nn.LayerNorm(d_model)
        self.norm_cross = nn.LayerNorm(d_model)
        self.norm_ffn = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        self_attend: Attend,
        memory: Tensor | tuple[Tensor, Tensor],
        cross_attend: Attend,
    ) -> Tensor:
        x = x + self.drop(self.self_attn(self.norm_self(x), self_attend))
        x = x + self.drop(self.cross_attn(self.norm_cross(x), cross_attend, memory))
        return x + self.drop(self.ffn(self.norm_ffn(x)))


def sinusoidal_positions(max_len: int, d_model: int) -> Tensor:
    """``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(...)``; shape ``[max_len, d]``."""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : d_model // 2]
    return table
