"""Head importance and head pruning of a trained model (the essay's question on heads).

    python -m repro.heads --checkpoint runs/experiments/graph_complete/final.pt \\
        --out repro/results/experiments/heads_pruning.json [--sentences 500]

Following Michel et al. (2019), "Are Sixteen Heads Really Better than One?", a head's
importance is what the model loses without it: the increase of the validation NLL per token
when that head alone is masked (``dgl_transformer.nn.hooks.mask_heads``). Then, for each attention
type (encoder self, decoder self, cross) on its own, the heads of that type are switched off
one at a time, least important first, and after each step the validation NLL and greedy
validation BLEU (``bleu_tok_lc``, as in training's validation, and ``bleu_cased``) are
measured on the first ``--sentences`` validation sentences. Writes the JSON and, next to it,
a PNG (BLEU against heads kept; the importance matrices).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import torch
from torch import Tensor

from dgl_transformer.mt.batching import make_batches
from dgl_transformer.mt.configs import EvalSection
from dgl_transformer.mt.corpus import Split, encode_split
from dgl_transformer.mt.data import read_split
from dgl_transformer.mt.evaluate import mean_nll, validation_scores
from dgl_transformer.mt.generate import Translator
from dgl_transformer.mt.text import TextPipeline
from dgl_transformer.nn.batch import PackedBatch
from dgl_transformer.nn.hooks import KINDS, mask_heads
from dgl_transformer.nn.model import GraphTransformer

from .cli import checkpoint_parser, exit_status, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

LABELS = {"enc": "encoder self", "dec_self": "decoder self", "cross": "cross"}

#: ``score(model) -> {"val_nll": ..., "bleu_tok_lc": ..., "bleu_cased": ...}`` with the
#: model's current head masks.
Scorer = Callable[[GraphTransformer], dict[str, float]]


def head_importance(
    model: GraphTransformer, batches: Sequence[PackedBatch]
) -> dict[str, Tensor]:
    """Per attention type, ``[layers, heads]``: the val NLL per token with that one head
    masked minus the NLL of the full model."""
    base = mean_nll(model, batches)
    n_heads, cfg = model.cfg.n_heads, model.cfg
    layers = {"enc": cfg.n_enc_layers, "dec_self": cfg.n_dec_layers, "cross": cfg.n_dec_layers}
    importance = {}
    for kind in KINDS:
        scores = torch.zeros(layers[kind], n_heads)
        for layer in range(layers[kind]):
            for head in range(n_heads):
                mask = torch.ones(layers[kind], n_heads)
                mask[layer, head] = 0.0
                with mask_heads(model, {kind: mask}):
                    scores[layer, head] = mean_nll(model, batches) - base
        importance[kind] = scores
    return importance


def prune_order(importance: Tensor) -> list[tuple[int, int]]:
    """``(layer, head)`` of every head, least important first (ties: lower index first)."""
    n_heads = importance.shape[1]
    flat = importance.flatten().tolist()
    return [divmod(i, n_heads) for i in sorted(range(len(flat)), key=lambda i: (flat[i], i))]


def prune_curve(
    model: GraphTransformer, importance: dict[str, Tensor], score: Scorer
) -> dict[str, dict]:
    """Per attention type (the other two intact): the pruning ``order`` and the ``points``,
    ``{"heads_kept": n, **score(model)}`` from all heads kept down to none.

    Heads go in the order of ``importance``, computed once on the full model and not
    recomputed as heads go (Michel et al. 2019, "Are Sixteen Heads Really Better than
    One?"). The full model is scored once and opens every curve.
    """
    full = score(model)
    curves = {}
    for kind, matrix in importance.items():
        order = prune_order(matrix)
        mask = torch.ones_like(matrix)
        points = [{"heads_kept": len(order), **full}]
        for removed, (layer, head) in enumerate(order, 1):
            mask[layer, head] = 0.0
            with mask_heads(model, {kind: mask}):
                points.append({"heads_kept": len(order) - removed, **score(model)})
        curves[kind] = {"order": [list(p) for p in order], "points": points}
    return curves


def analyse(model: GraphTransformer, batches: Sequence[PackedBatch], score: Scorer) -> dict:
    """Importance matrices (nested lists, measured on ``batches``) and the three pruning
    curves (measured by ``score``)."""
    importance = head_importance(model, batches)
    return {
        "importance": {kind: m.tolist() for kind, m in importance.items()},
        "curves": prune_curve(model, importance, score),
    }


def pipeline_scorer(
    split: Split, pipeline: TextPipeline, max_tokens: int, decode: EvalSection
) -> Scorer:
    """A :data:`Scorer`: training's own validation
    (:func:`~dgl_transformer.mt.evaluate.validation_scores`) on ``split``: val NLL, and greedy
    BLEU (``bleu_tok_lc`` and ``bleu_cased``) of its sentences."""

    def score(model: GraphTransformer) -> dict[str, float]:
        s = validation_scores(model, split, pipeline, max_tokens, decode)
        return {"val_nll": s["val_nll"], "bleu_tok_lc": s["val_bleu_greedy"],
                "bleu_cased": s["val_bleu_cased"]}

    return score


def plot(result: dict, path: Path) -> None:
    """BLEU (tok, lc) against heads kept per attention type, and the importance matrices."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), width_ratios=[2.2, 1, 1, 1])
    for kind in KINDS:
        points = result["curves"][kind]["points"]
        axes[0].plot([p["heads_kept"] for p in points], [p["bleu_tok_lc"] for p in points],
                     marker="o", markersize=3, label=LABELS[kind])
    axes[0].invert_xaxis()
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set(xlabel="heads kept (least important removed first)",
                ylabel="greedy val BLEU (tok, lc)", title="pruning one attention type")
    axes[0].legend()
    matrices = [torch.tensor(result["importance"][kind]) for kind in KINDS]
    top = max(float(m.abs().max()) for m in matrices) or 1.0
    for ax, kind, m in zip(axes[1:], KINDS, matrices, strict=True):
        image = ax.imshow(m, cmap="RdBu_r", vmin=-top, vmax=top)
        ax.set(title=LABELS[kind], xlabel="head", ylabel="layer",
               xticks=range(m.shape[1]), yticks=range(m.shape[0]))
    fig.colorbar(image, ax=axes[1:], label="importance: val NLL increase when masked")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def write_results(result: dict, out_json: Path) -> None:
    """The plot ``out_json.with_suffix(".png")``, then ``out_json`` (its presence means
    done)."""
    out_json.parent.mkdir(parents=True, exist_ok=True)
    plot(result, out_json.with_suffix(".png"))
    write_json(out_json, result)


def run(
    final: Path, root: Path | None, out_json: Path, sentences: int = 500, threads: int = 2
) -> dict:
    """Importance of every head of checkpoint ``final``, measured on validation sentences
    ``sentences .. 2 * sentences``, and the pruning curves, scored on the first ``sentences``
    (data under ``root``; None: the checkpoint's ``data.root``); writes ``out_json`` and its
    PNG, returns the result."""
    started = time.perf_counter()
    torch.set_num_threads(threads)
    translator = Translator.from_checkpoint(final)
    model, pipeline, run_cfg = translator.model, translator.pipeline, translator.config
    root = Path(run_cfg.data.root) if root is None else root
    src, tgt = pipeline.read(root, "val")
    refs_raw = read_split(root, "val", pipeline.tgt_lang, "raw")
    refs_tok = read_split(root, "val", pipeline.tgt_lang, "tok")
    n = min(sentences, len(src) // 2)
    # the importance is measured on val[n:2n], the pruning curves on val[:n]: the order of
    # removal is not fitted to the sentences that score it
    rank = encode_split(pipeline, src[n:2 * n], tgt[n:2 * n], [], [])
    val = encode_split(pipeline, src[:n], tgt[:n], refs_raw[:n], refs_tok[:n])

    def batches(split: Split) -> list[PackedBatch]:
        return [model.collate([split.src[i] for i in pairs], [split.tgt[i] for i in pairs])
                for pairs in make_batches(*split.lengths(), run_cfg.train.max_tokens,
                                          shuffle=False)]

    result = {
        "checkpoint": str(final), "sentences": n, "importance_sentences": [n, 2 * n],
        "threads": threads, "model_config": model.cfg.to_dict(),
        **analyse(model, batches(rank),
                  pipeline_scorer(val, pipeline, run_cfg.train.max_tokens, run_cfg.eval)),
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    write_results(result, out_json)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = checkpoint_parser("python -m repro.heads", __doc__, "JSON to write (and its .png)")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if min(args.sentences, args.threads) < 1:
        parser.error("--sentences and --threads must be >= 1")

    def call() -> str:
        result = run(args.checkpoint, args.root, args.out, args.sentences, args.threads)
        return (f"wrote {args.out} and {args.out.with_suffix('.png')} "
                f"({result['seconds'] / 60:.1f} min)")

    return exit_status(call)


if __name__ == "__main__":
    sys.exit(main())
