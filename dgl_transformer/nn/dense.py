"""The same network written densely: padded batches and ``F.scaled_dot_product_attention``.

It shares :class:`~dgl_transformer.nn.model.Seq2SeqBase` (hence every parameter name) with the
graph model, pads each batch to its longest sequence and expresses graph structure as boolean
masks. It is the correctness oracle for the graph model and the performance baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from ..tokens import PAD
from .batch import PackedBatch
from .config import TransformerConfig
from .model import Seq2SeqBase


class DenseTransformer(Seq2SeqBase):
    """Padded twin of :class:`~dgl_transformer.nn.model.GraphTransformer` (complete encoder
    graph only: a sparse graph is a mask this twin does not build)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        if cfg.encoder_graph != "complete":
            raise ValueError(f"DenseTransformer has the complete encoder graph only, not "
                             f"{cfg.encoder_graph!r}")
        super().__init__(cfg)

    def _attend(self, mask: Tensor, aggregator: str = "attention"):
        def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            if aggregator == "mean":  # equal scores: the softmax is uniform over allowed keys
                q = torch.zeros_like(q)
            # [B, T, H, dk] -> [B, H, T, dk] for the fused kernel, and back
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
            scale = None if self.cfg.scale_scores else 1.0  # None: 1/sqrt(d_k)
            o = F.scaled_dot_product_attention(q, k, v, mask, self.attn_dropout(), scale=scale)
            return o.transpose(1, 2)

        return attend

    def _pad(self, seqs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        padded = pad_sequence(list(seqs), batch_first=True, padding_value=PAD).to(self.device)
        lens = torch.tensor([len(s) for s in seqs], device=self.device)
        real = torch.arange(padded.shape[1], device=self.device)[None, :] < lens[:, None]
        return padded, real

    def forward(
        self, batch: PackedBatch | Sequence[Tensor], tgt_in: Sequence[Tensor] | None = None
    ) -> Tensor:
        """Logits ``[decoder tokens, tgt_vocab]``, packed like the graph model's; takes the
        same arguments (a :class:`PackedBatch`, or lists of sources and decoder inputs)."""
        batch = self.as_batch(batch, tgt_in)
        s, s_real = self._pad(batch.sources())
        t, t_real = self._pad(batch.decoder_inputs())
        pos_s = torch.arange(s.shape[1], device=self.device)
        pos_t = torch.arange(t.shape[1], device=self.device)
        x = self.embed(self.src_embed, s, pos_s)
        source_keys = s_real[:, None, None, :]  # keys: real source tokens
        enc_attend = self._attend(source_keys, self.cfg.enc_aggregator)
        for layer in self.encoder:
            x = layer(x, enc_attend)
        memory = self.enc_norm(x)

        causal = pos_t[None, :] <= pos_t[:, None]  # [Tq, Tk]: key position <= query position
        self_attend = self._attend(causal[None, None] & t_real[:, None, None, :],
                                   self.cfg.dec_aggregator)
        cross_attend = self._attend(source_keys)
        y = self.embed(self.tgt_embed, t, pos_t)
        for layer in self.decoder:
            y = layer(y, self_attend, memory, cross_attend)
        logits = self.generator(self.dec_norm(y))  # computed on padding too, as dense code does
        return logits[t_real]
