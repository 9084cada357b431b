"""Head importance and head pruning of a trained model (the essay's question on heads).

    python -m repro.heads --checkpoint runs/experiments/graph_complete/final.pt \\
        --out repro/results/experiments/heads_pruning.json [--sentences 500]

Following Michel et al. (2019), "Are Sixteen Heads Really Better than One?", a head's
importance is what the model loses without it: the increase of the validation NLL per token
when that head alone is masked (``MultiHeadAttention.head_mask``). Then, for each attention
type (encoder self, decoder self, cross) on its own, the heads of that type are switched off
one at a time, least important first, and after each step the validation NLL and greedy
validation BLEU (``bleu_tok_lc``, as in training's validation, and ``bleu_cased``) are
measured on the first ``--sentences`` validation sentences. Writes the JSON and, next to it,
a PNG (BLEU against heads kept; the importance matrices).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import torch
from torch import Tensor

from dgl_transformer.mt.batching import make_batches
from dgl_transformer.mt.configs import EvalSection
from dgl_transformer.mt.data import read_split
from dgl_transformer.mt.evaluate import bleu_cased, bleu_tok_lc, translate_ids
from dgl_transformer.mt.text import TextPipeline
from dgl_transformer.mt.train import Split, encode_split
from dgl_transformer.mt.translate import load_translator
from dgl_transformer.nn.attention import MultiHeadAttention
from dgl_transformer.nn.batch import PackedBatch
from dgl_transformer.nn.model import GraphTransformer
from dgl_transformer.training import smoothed_and_nll

from .cli import checkpoint_parser, exit_status, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

#: The attention types, in the order of every result: encoder self, decoder self, cross.
KINDS = ("enc", "dec_self", "cross")
LABELS = {"enc": "encoder self", "dec_self": "decoder self", "cross": "cross"}

#: ``score(model) -> {"val_nll": ..., "bleu_tok_lc": ..., "bleu_cased": ...}`` with the
#: model's current head masks.
Scorer = Callable[[GraphTransformer], dict[str, float]]


def attention_modules(model: GraphTransformer) -> dict[str, list[MultiHeadAttention]]:
    """Each attention type's modules, one per layer."""
    return {
        "enc": [layer.self_attn for layer in model.encoder],
        "dec_self": [layer.self_attn for layer in model.decoder],
        "cross": [layer.cross_attn for layer in model.decoder],
    }


@contextmanager
def head_masks(model: GraphTransformer, masks: dict[str, Tensor]) -> Iterator[None]:
    """Set ``head_mask`` from ``masks[kind]`` (``[layers, heads]``) for the kinds given; every
    mask is None again afterwards."""
    modules = attention_modules(model)
    try:
        for kind, mask in masks.items():
            for attn, row in zip(modules[kind], mask, strict=True):
                attn.head_mask = row
        yield
    finally:
        for group in modules.values():
            for attn in group:
                attn.head_mask = None


@torch.no_grad()
def val_nll(model: GraphTransformer, batches: Sequence[PackedBatch]) -> float:
    """Mean NLL per target token over ``batches`` (no label smoothing), in eval mode."""
    model.eval()
    nll = sum(float(smoothed_and_nll(model(b), b.gold, 0.0)[1]) for b in batches)
    return nll / sum(b.num_target_tokens for b in batches)


def head_importance(
    model: GraphTransformer, batches: Sequence[PackedBatch]
) -> dict[str, Tensor]:
    """Per attention type, ``[layers, heads]``: the val NLL per token with that one head
    masked minus the NLL of the full model."""
    base = val_nll(model, batches)
    n_heads = model.cfg.n_heads
    importance = {}
    for kind, modules in attention_modules(model).items():
        scores = torch.zeros(len(modules), n_heads)
        for layer in range(len(modules)):
            for head in range(n_heads):
                mask = torch.ones(len(modules), n_heads)
                mask[layer, head] = 0.0
                with head_masks(model, {kind: mask}):
                    scores[layer, head] = val_nll(model, batches) - base
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
            with head_masks(model, {kind: mask}):
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
    batches: Sequence[PackedBatch], split: Split, pipeline: TextPipeline, decode: EvalSection
) -> Scorer:
    """A :data:`Scorer`: val NLL on ``batches`` and greedy BLEU of ``split``'s sentences,
    decoded with ``decode``'s settings but beam 1 (as ``Trainer.validate`` does)."""
    sources = [s.tolist() for s in split.src]
    settings = {**vars(decode), "beam_size": 1}

    def score(model: GraphTransformer) -> dict[str, float]:
        hyps = translate_ids(model, sources, **settings)
        plain = [pipeline.decode_tgt(h, plain=True) for h in hyps]
        return {"val_nll": val_nll(model, batches),
                "bleu_tok_lc": bleu_tok_lc(plain, split.refs_tok, pipeline.tgt_lang),
                "bleu_cased": bleu_cased(plain, split.refs_raw)}

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
    model, pipeline, run_cfg = load_translator(final)
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

    scored = batches(val)
    result = {
        "checkpoint": str(final), "sentences": n, "importance_sentences": [n, 2 * n],
        "threads": threads, "model_config": model.cfg.to_dict(),
        **analyse(model, batches(rank),
                  pipeline_scorer(scored, val, pipeline, run_cfg.eval)),
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
