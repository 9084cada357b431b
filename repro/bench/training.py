"""Part a: training throughput of the graph model, its dense twin and the tutorial-style
baselines, on the same batches, taking turns.

Each model takes one update as the Multi30k trainer does (collate with graph construction,
``train_step``: forward, label-smoothed loss, backward, clipping, Adam and its schedule from
``build_optimizer`` with the config's settings). Ratios are medians of per-batch ratios, so a
change in the machine's load between batches cancels out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dgl_transformer import DenseTransformer, GraphTransformer, TransformerConfig
from dgl_transformer.mt.configs import RunConfig
from dgl_transformer.training import build_optimizer, train_step

from .corpus import Size, batch_stats
from .results import TRAINING_MODEL_NAMES, BatchTiming, TrainingResult
from .timing import log, median, rotated, timed
from .tutorial import TutorialStyleTransformer
from .variants import UdfGraphTransformer

TRAINING_MODELS: dict[str, type[GraphTransformer] | type[DenseTransformer]] = dict(zip(
    TRAINING_MODEL_NAMES,
    (GraphTransformer, DenseTransformer, TutorialStyleTransformer, UdfGraphTransformer),
    strict=True))
#: The models trained at each size: the tutorial-style baselines only at the repro's size.
SIZE_MODELS = {"small": TRAINING_MODEL_NAMES, "d256": ("graph", "dense")}
#: Pairs of the warm-up step each model takes before it is timed (first-call work:
#: optimizer state, DGL's set-up).
WARMUP_PAIRS = 32
BATCHINGS = ("bucketed", "random")

Trainee = tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]


def bench_step(
    model: torch.nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LambdaLR,
    src: list[Tensor], tgt: list[Tensor], cfg: RunConfig,
) -> float:
    """One update as the trainer does it: collate (graphs included) and ``train_step``;
    returns the loss."""
    t = cfg.train
    return train_step(model, model.collate(src, tgt), opt, sched,
                      label_smoothing=t.label_smoothing, clip_norm=t.clip_norm).loss


def make_models(
    model_cfg: TransformerConfig, cfg: RunConfig, names: Sequence[str]
) -> dict[str, Trainee]:
    """The named models with identical weights, in training mode, each with the optimiser and
    schedule that ``cfg``'s training would give it."""
    torch.manual_seed(0)
    models = {name: TRAINING_MODELS[name](model_cfg).train() for name in names}
    first = next(iter(models.values()))
    t = cfg.train
    trainees = {}
    for name, m in models.items():
        m.load_state_dict(first.state_dict())
        opt, sched = build_optimizer(m.parameters(), lr=t.lr, warmup_steps=t.warmup_steps,
                                     betas=t.betas, weight_decay=t.weight_decay)
        trainees[name] = (m, opt, sched)
    return trainees


def warm_up(models: dict[str, Trainee], size: Size) -> None:
    """One update of every model on the first :data:`WARMUP_PAIRS` pairs."""
    src, tgt = size.corpus.src[:WARMUP_PAIRS], size.corpus.tgt[:WARMUP_PAIRS]
    for trainee in models.values():
        bench_step(*trainee, src, tgt, size.cfg)


def bench_training(
    size: Size, names: Sequence[str], repeats: int
) -> dict[str, TrainingResult]:
    """Throughput of the named models on the same ``repeats`` batches, bucketed and random,
    after a warm-up step each (:func:`warm_up`)."""
    models = make_models(size.model, size.cfg, names)
    warm_up(models, size)
    out: dict[str, TrainingResult] = {}
    for batching in BATCHINGS:
        rows: list[BatchTiming] = []
        for i, batch in enumerate(size.batches(bucketed=batching == "bucketed")[:repeats]):
            src, tgt = size.pairs(batch)
            seconds = {n: timed(bench_step, *models[n], src, tgt, size.cfg)[0]
                       for n in rotated(list(models), i)}
            rows.append({**batch_stats(src, tgt), "seconds": {n: seconds[n] for n in models}})
            log(f"train {size.name} {batching} batch {i}: "
                + ", ".join(f"{n} {s:.2f}s" for n, s in seconds.items()))
        out[batching] = summarise_training(rows)
    return out


def summarise_training(rows: list[BatchTiming]) -> TrainingResult:
    """Median tokens/s per model and median per-batch ratios "graph over X": X's time over the
    graph model's (above 1: the graph model is faster)."""
    names = list(rows[0]["seconds"])
    tps = {n: [r["tgt_tokens"] / r["seconds"][n] for r in rows] for n in names}
    return {
        "batches": rows,
        "tgt_tokens_per_s": {n: round(median(v), 1) for n, v in tps.items()},
        "graph_over": {
            n: round(median([r["seconds"][n] / r["seconds"]["graph"] for r in rows]), 3)
            for n in names if n != "graph"
        },
        "dense_padding_fraction": round(
            1 - sum(r["src_tokens"] + r["tgt_tokens"] for r in rows)
            / sum(r["dense_positions"] for r in rows), 3),
    }
