"""Teacher forcing and the label-smoothed cross-entropy used by every training loop."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .tokens import BOS, EOS


def teacher_forcing(tgt: Sequence[Tensor]) -> tuple[list[Tensor], Tensor]:
    """Decoder inputs ``[BOS] + y`` and the packed gold outputs ``y + [EOS]``."""
    bos, eos = torch.tensor([BOS]), torch.tensor([EOS])
    tgt_in = [torch.cat([bos, t]) for t in tgt]
    gold = torch.cat([torch.cat([t, eos]) for t in tgt])
    return tgt_in, gold


def smoothed_and_nll(logits: Tensor, gold: Tensor, smoothing: float) -> tuple[Tensor, Tensor]:
    """Token sums of the label-smoothed loss and of the plain NLL, from one log-softmax.

    ``loss_t = (1 - eps) * (-log p_t[gold]) + eps * mean_v(-log p_t[v])``.
    """
    logp = torch.log_softmax(logits, -1)
    nll = -logp.gather(1, gold.to(logits.device)[:, None]).squeeze(1)
    smooth = -logp.mean(-1)
    return ((1 - smoothing) * nll + smoothing * smooth).sum(), nll.detach().sum()


def label_smoothed_loss(logits: Tensor, gold: Tensor, smoothing: float = 0.0) -> Tensor:
    """Mean over tokens of the label-smoothed cross-entropy."""
    return smoothed_and_nll(logits, gold, smoothing)[0] / len(gold)
