"""One training step and its parts, used by every loop in the project (the Multi30k trainer,
the toy tasks, the benchmark and the lessons).

* :func:`smoothed_and_nll`: the label-smoothed cross-entropy and the plain NLL, token sums.
* :func:`inverse_sqrt` / :func:`warmup_inverse_sqrt`: linear warm-up, then inverse-sqrt decay.
* :func:`build_optimizer`: the one optimiser and schedule of the project (Adam + the above).
* :func:`train_step`: loss, backward, gradient clipping, a non-finite check, optimizer and
  scheduler steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .nn.batch import PackedBatch


class NonFiniteLoss(FloatingPointError):
    """The loss or the gradient norm of a step is not finite; nothing was updated."""


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


#: How the learning rate reaches its peak: a linear ramp over the warm-up updates, or the
#: peak from update 1 (the decay after the warm-up is the same either way).
WARMUPS = ("linear", "none")


def inverse_sqrt(update: int, warmup: int, ramp: str = "linear") -> float:
    """Learning-rate factor of update number ``update`` (from 1): linear warm-up to 1 at
    ``warmup`` (``ramp="none"``: 1 from the start), then ``sqrt(warmup / update)``."""
    update = max(update, 1)
    if update < warmup:
        return update / warmup if ramp == "linear" else 1.0
    return math.sqrt(warmup / update)


def warmup_inverse_sqrt(
    optimizer: torch.optim.Optimizer, warmup: int, ramp: str = "linear"
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule of :func:`inverse_sqrt` around ``optimizer``'s learning rate (the
    scheduler has taken ``s`` steps before update ``s + 1``)."""
    if ramp not in WARMUPS:
        raise ValueError(f"warm-up ramp must be one of {', '.join(WARMUPS)}, got {ramp!r}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: inverse_sqrt(s + 1, warmup, ramp))


def build_optimizer(
    params: Iterable[nn.Parameter],
    *,
    lr: float,
    warmup_steps: int,
    betas: Sequence[float] = (0.9, 0.98),
    weight_decay: float = 0.0,
    warmup: str = "linear",
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam and its schedule: peak ``lr`` at update ``warmup_steps`` (reached by a linear
    ramp, or from update 1 with ``warmup="none"``), then inverse-sqrt decay. Every training
    loop of the package and of ``repro/`` builds its optimiser here."""
    optimizer = torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    return optimizer, warmup_inverse_sqrt(optimizer, warmup_steps, warmup)


@dataclass
class StepStats:
    """What one update saw: mean smoothed loss and NLL per target token, target tokens, and
    the gradient norm before clipping."""

    loss: float
    nll: float
    tokens: int
    grad_norm: float


def train_step(
    model: nn.Module,
    batch: PackedBatch,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    label_smoothing: float = 0.0,
    clip_norm: float | None = None,
    tokens: int | None = None,
    grad_scale: float = 1.0,
    all_reduce: Callable[[Tensor], None] | None = None,
) -> StepStats:
    """One update on ``batch``: loss, backward, clip, non-finite check, optimizer, scheduler.

    The loss is normalised by ``tokens`` (default: the batch's target tokens). Data-parallel
    training passes the global batch's count, ``grad_scale`` (the world size, since DDP
    averages gradients over processes; 0 for a process without sentences) and ``all_reduce``
    (sums the ``[loss, nll]`` token sums across processes in place). Raises
    :class:`NonFiniteLoss` before changing any weight if the loss or gradient norm is not
    finite (the gradients are cleared).
    """
    if batch.gold is None:
        raise ValueError("train_step needs a batch with gold outputs: build it with "
                         "collate(src, tgt), not from decoder inputs")
    tokens = tokens or batch.num_target_tokens
    logits = model(batch)
    loss_sum, nll_sum = smoothed_and_nll(logits, batch.gold, label_smoothing)
    (loss_sum * (grad_scale / tokens)).backward()
    sums = torch.stack([loss_sum.detach(), nll_sum]) * float(grad_scale != 0)
    if all_reduce is not None:
        all_reduce(sums)
    loss, nll = (sums / tokens).tolist()
    params = [p for p in model.parameters() if p.grad is not None]
    limit = clip_norm if clip_norm is not None else math.inf
    norm = float(torch.nn.utils.clip_grad_norm_(params, limit))
    if not (math.isfinite(loss) and math.isfinite(norm)):
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteLoss(f"non-finite loss ({loss}) or gradient norm ({norm})")
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return StepStats(loss, nll, tokens, norm)
