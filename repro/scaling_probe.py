"""Why training is hard: attention entropy and score gradients with and without ``1/sqrt(d_k)``.

    python -m repro.scaling_probe --config repro/experiments/_schedule.yaml \\
        --out repro/results/experiments/scaling_probe.json [--updates N] [--every K]

Four short runs from one seed and one stream of batches: {scaled, unscaled scores} x {4 heads
(``d_k = 32``), 1 head (``d_k = 128``)} at the schedule's ``d_model``, each trained with the
schedule's Adam, warm-up and clipping (``training.train_step``), with a smaller token budget
(:data:`PROBE_MAX_TOKENS`) so that more updates fit the time. At update 0 and every ``every``
updates, one fixed probe batch (the first :data:`PROBE_PAIRS` val pairs) goes through the
model in eval mode with its own forward and backward (no optimizer step). The model's own
attention kernel, :func:`~dgl_transformer.nn.attention.graph_attention`, runs unchanged; the
probe only observes the scores that enter each edge softmax and its output, and reads, per
attention type (encoder self, decoder self, cross):

* the softmax entropy of each receiver and head, ``-sum_j a_ij log a_ij`` over its in-edges,
  averaged over receivers and heads (and layers), next to ``log(in-degree)``, the entropy of
  uniform attention;
* the L2 norm of ``d loss / d scores`` (per layer, and over the layers together);

and, for the whole model, the gradient norm of the parameters (before any clipping) and the
probe batch's label-smoothed loss and NLL per target token. The JSON holds the curves, the
settings and the wall times; the PNG beside it plots them, one colour per variant.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dgl
import matplotlib
import torch
from torch import Tensor

from dgl_transformer.mt.batching import make_batches
from dgl_transformer.mt.configs import ConfigError, RunConfig, load_config
from dgl_transformer.mt.corpus import Split, ensure_data, load_splits
from dgl_transformer.mt.data import DataError
from dgl_transformer.mt.text import TextPipeline
from dgl_transformer.nn.batch import PackedBatch
from dgl_transformer.nn.config import TransformerConfig
from dgl_transformer.nn.hooks import KINDS, AttentionEvent, observe_attention
from dgl_transformer.nn.model import GraphTransformer
from dgl_transformer.training import (
    NonFiniteLoss,
    build_optimizer,
    smoothed_and_nll,
    train_step,
)

from .cli import write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

#: The four runs: name -> the model keys each changes.
VARIANTS: dict[str, dict[str, Any]] = {
    "scaled_dk32": {"scale_scores": True, "n_heads": 4},
    "unscaled_dk32": {"scale_scores": False, "n_heads": 4},
    "scaled_dk128": {"scale_scores": True, "n_heads": 1},
    "unscaled_dk128": {"scale_scores": False, "n_heads": 1},
}
#: Source + target tokens per update in these runs (the schedule's 6000 would fit too few).
PROBE_MAX_TOKENS = 1000
#: Updates per variant: measured 0.24-0.29 s per update (2 threads, 1000 tokens), so the four
#: runs, probes and data take about 10 minutes on a quiet machine; the probes see the
#: schedule's warm-up, the learning rate's peak and its decay.
UPDATES = 500
#: The probe batch: the first val pairs.
PROBE_PAIRS = 100


def receiver_entropy(graph: dgl.DGLGraph, weights: Tensor) -> Tensor:
    """``-sum_j a_ij log a_ij`` over each receiver's in-edges, ``[receivers, heads]``, for the
    softmax output ``weights`` (``[E, H]`` or ``[E, H, 1]``); receivers without in-edges are
    left out. A weight of exactly 0 adds 0."""
    terms = -torch.special.xlogy(weights, weights)
    if terms.dim() == 2:
        terms = terms[..., None]
    per_node = dgl.ops.copy_e_sum(graph, terms).squeeze(-1)
    return per_node[graph.in_degrees() > 0]


def uniform_entropy(graph: dgl.DGLGraph) -> float:
    """Mean ``log(in-degree)`` over receivers: the entropy of uniform attention."""
    degrees = graph.in_degrees()
    return float(degrees[degrees > 0].double().log().mean())


def batch_graphs(batch: PackedBatch) -> dict[str, dgl.DGLGraph]:
    """The graph each attention type of ``batch`` runs on."""
    return {"enc": batch.enc_graph, "dec_self": batch.dec_graph, "cross": batch.cross_graph}


class AttentionProbe:
    """An attention observer (:func:`~dgl_transformer.nn.hooks.observe_attention`): per
    attention type and in layer order, the mean receiver entropy and the scores (kept, with
    their gradient, for :meth:`score_grad_norms`). A mean aggregator has no scores: its
    events are not recorded."""

    def __init__(self) -> None:
        self.entropy: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self.scores: dict[str, list[Tensor]] = {kind: [] for kind in KINDS}

    def __call__(self, event: AttentionEvent) -> None:
        if event.scores is None:
            return
        if event.scores.requires_grad:
            event.scores.retain_grad()
        self.scores[event.kind].append(event.scores)
        self.entropy[event.kind].append(
            float(receiver_entropy(event.graph, event.weights).mean()))

    def score_grad_norms(self) -> dict[str, list[float]]:
        """Per type, the L2 norm of each layer's score gradient (after a backward; NaN where
        the scores had none)."""
        return {kind: [float(s.grad.norm()) if s.grad is not None else math.nan for s in scores]
                for kind, scores in self.scores.items() if scores}


    def score_grad_rms(self) -> dict[str, float]:
        """Per type, the root mean square of the score gradient over every layer's edges and
        heads: unlike the norm, comparable between models with different numbers of heads."""
        out = {}
        for kind, scores in self.scores.items():
            grads = [s.grad for s in scores if s.grad is not None]
            if grads:
                out[kind] = math.sqrt(sum(float(g.pow(2).sum()) for g in grads)
                                      / sum(g.numel() for g in grads))
        return out


def _combined(per_layer: list[float]) -> float:
    """The norm over all layers together: ``sqrt(sum of squared layer norms)``."""
    return math.sqrt(sum(x * x for x in per_layer))


def measure(model: GraphTransformer, batch: PackedBatch, label_smoothing: float) -> dict:
    """One probe of ``model`` on ``batch`` in eval mode: forward and backward, no update.

    The model's gradients are cleared before and after; its train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    probe = AttentionProbe()
    try:
        with observe_attention(model, probe):
            logits = model(batch)
        tokens = batch.num_target_tokens
        loss_sum, nll_sum = smoothed_and_nll(logits, batch.gold, label_smoothing)
        (loss_sum / tokens).backward()
    finally:
        model.train(was_training)
    grads = [p.grad.norm() for p in model.parameters() if p.grad is not None]
    param_norm = float(torch.linalg.vector_norm(torch.stack(grads)))
    model.zero_grad(set_to_none=True)
    score_norms = probe.score_grad_norms()
    entropy = {kind: values for kind, values in probe.entropy.items() if values}
    return {
        "loss": float(loss_sum.detach()) / tokens,
        "nll": float(nll_sum) / tokens,
        "param_grad_norm": param_norm,
        "entropy": {kind: sum(v) / len(v) for kind, v in entropy.items()},
        "entropy_per_layer": entropy,
        "score_grad_norm": {kind: _combined(v) for kind, v in score_norms.items()},
        "score_grad_norm_per_layer": score_norms,
        "score_grad_rms": probe.score_grad_rms(),
    }


def reference_entropy(batch: PackedBatch) -> dict[str, float]:
    """Per type, the mean entropy of uniform attention on ``batch``'s graphs."""
    return {kind: uniform_entropy(graph) for kind, graph in batch_graphs(batch).items()}


def train_batches(split: Split, max_tokens: int, seed: int) -> Iterator[list[int]]:
    """The trainer's batches of ``split`` (bucketed, shuffled per epoch), epoch after epoch."""
    epoch = 0
    while True:
        yield from make_batches(*split.lengths(), max_tokens, shuffle=True, seed=seed,
                                epoch=epoch)
        epoch += 1


def train_variant(
    cfg: RunConfig, model_cfg: TransformerConfig, train: Split, probe: Split, updates: int,
    every: int, max_tokens: int,
) -> dict:
    """Train ``model_cfg`` for ``updates`` updates with ``cfg.train``'s optimizer, schedule
    and clipping, probing the batch of all ``probe`` pairs at update 0, every ``every``
    updates and at the end.

    Returns the probe batch's uniform-attention entropies, the probe points, each update's
    training loss and gradient norm (before clipping), the wall times, and why training
    stopped early (a non-finite loss), if it did.
    """
    t = cfg.train
    torch.manual_seed(t.seed)
    model = GraphTransformer(model_cfg)
    probe_batch = model.collate(probe.src, probe.tgt)
    opt, sched = build_optimizer(model.parameters(), lr=t.lr, warmup_steps=t.warmup_steps,
                                 betas=t.betas, weight_decay=t.weight_decay)
    model.train()
    points = [{"update": 0, **measure(model, probe_batch, t.label_smoothing)}]
    losses: list[float] = []
    grad_norms: list[float] = []
    train_seconds = probe_seconds = 0.0
    stopped = None
    batches = train_batches(train, max_tokens, t.seed)
    for update in range(1, updates + 1):
        started = time.perf_counter()
        pairs = next(batches)
        batch = model.collate([train.src[i] for i in pairs], [train.tgt[i] for i in pairs])
        try:
            stats = train_step(model, batch, opt, sched, label_smoothing=t.label_smoothing,
                               clip_norm=t.clip_norm)
        except NonFiniteLoss as err:
            stopped = f"update {update}: {err}"
            break
        train_seconds += time.perf_counter() - started
        losses.append(stats.loss)
        grad_norms.append(stats.grad_norm)
        if update % every == 0 or update == updates:
            started = time.perf_counter()
            points.append({"update": update, **measure(model, probe_batch, t.label_smoothing)})
            probe_seconds += time.perf_counter() - started
    return {
        "uniform_entropy": reference_entropy(probe_batch),
        "points": points,
        "train_loss": losses,
        "train_grad_norm": grad_norms,
        "stopped": stopped,
        "train_seconds": train_seconds,
        "seconds_per_update": train_seconds / max(len(losses), 1),
        "probe_seconds": probe_seconds,
    }


def run(
    config: Path, root: Path | None, out_json: Path, updates: int = UPDATES, every: int = 20,
    threads: int = 2, *, max_tokens: int = PROBE_MAX_TOKENS, probe_pairs: int = PROBE_PAIRS,
    overrides: list[str] | None = None,
) -> dict:
    """The four runs on ``config``'s data and schedule (``overrides`` as ``--set`` gives them;
    data from ``root`` if given, else ``data.root``); writes the ``.png`` and then
    ``out_json``, and returns the record."""
    if updates < 1 or every < 1 or threads < 1 or max_tokens < 1 or probe_pairs < 1:
        raise ConfigError("updates, every, threads, max_tokens and probe_pairs must be >= 1")
    started = time.perf_counter()
    torch.set_num_threads(threads)
    cfg = load_config(config, overrides or [])
    if root is not None:
        cfg.data.root = str(root)
    data_root = ensure_data(cfg)
    d = cfg.data
    pipeline = TextPipeline.train(data_root, d.variant, d.src_lang, d.tgt_lang, d.vocab_size)
    train, val, _ = load_splits(cfg, pipeline, data_root)
    n = min(probe_pairs, len(val.src))
    probe = Split(val.src[:n], val.tgt[:n], [], [])
    vocab = pipeline.tokenizer.vocab_size
    variants = {}
    for name, changes in VARIANTS.items():
        model_cfg = dataclasses.replace(cfg.model_config(vocab), **changes)
        variants[name] = {**changes, "d_k": model_cfg.head_dim, **train_variant(
            cfg, model_cfg, train, probe, updates, every, max_tokens)}
        print(f"{name}: {variants[name]['seconds_per_update']:.2f} s/update", file=sys.stderr)
    t = cfg.train
    record = {
        "config": str(config),
        "settings": {
            "updates": updates, "every": every, "threads": threads, "max_tokens": max_tokens,
            "probe_pairs": n, "probe_target_tokens": sum(probe.lengths()[1]),
            "seed": t.seed, "lr": t.lr, "warmup_steps": t.warmup_steps, "betas": t.betas,
            "label_smoothing": t.label_smoothing, "clip_norm": t.clip_norm,
            "model": {k: v for k, v in vars(cfg.model).items() if k not in ("n_heads",
                                                                             "scale_scores")},
            "probe_mode": "eval (no dropout), own forward/backward, no update",
            "score_grad": "d (mean loss per target token) / d (the scores entering the softmax)",
        },
        "variants": variants,
        "seconds": time.perf_counter() - started,
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    plot(record, out_json.with_suffix(".png"))
    write_json(out_json, record)
    return record


def plot(record: dict, path: Path) -> None:
    """Entropy, score-gradient RMS (log scale) and probe NLL against updates: one colour per
    variant, one line style per attention type."""
    styles = {"enc": "-", "dec_self": "--", "cross": ":"}
    fig, (ent, grad, loss) = plt.subplots(1, 3, figsize=(16, 4.6))
    ent.legend(handles=[Line2D([], [], color="k", ls=style, label=kind)
                        for kind, style in styles.items()], fontsize=8, loc="lower left")
    first = next(iter(record["variants"].values()))
    for kind, value in first["uniform_entropy"].items():
        ent.axhline(value, color="0.6", lw=0.8, ls=styles[kind])
    for i, (name, result) in enumerate(record["variants"].items()):
        color = f"C{i}"
        steps = [p["update"] for p in result["points"]]
        for kind, style in styles.items():
            if kind in result["points"][0]["entropy"]:
                ent.plot(steps, [p["entropy"][kind] for p in result["points"]], style,
                         color=color)
                grad.plot(steps, [p["score_grad_rms"][kind] for p in result["points"]],
                          style, color=color)
        loss.plot(steps, [p["nll"] for p in result["points"]], color=color, label=name)
    ent.set(title="attention entropy (nats; grey: uniform)", xlabel="update")
    grad.set(title="RMS of d loss / d scores", xlabel="update", yscale="log")
    loss.set(title="probe NLL per token", xlabel="update")
    loss.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.scaling_probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="YAML run configuration")
    parser.add_argument("--out", required=True, type=Path, help="JSON to write (and its .png)")
    parser.add_argument("--root", type=Path, help="Multi30k data root (default: data.root)")
    parser.add_argument("--updates", type=int, default=UPDATES, help="updates per variant")
    parser.add_argument("--every", type=int, default=20, help="updates between probes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--max-tokens", type=int, default=PROBE_MAX_TOKENS,
                        help="source + target tokens per update")
    args = parser.parse_args(argv)
    try:
        run(args.config, args.root, args.out, args.updates, args.every, args.threads,
            max_tokens=args.max_tokens)
    except (ConfigError, DataError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
