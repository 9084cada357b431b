"""The figures of the essay's summary in ``repro/README.md``, drawn from the experiments'
result files: test BLEU against encoder graph size, and the pre-/post-norm loss curves."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from .figures import plt, save_figure


def group_name(name: str) -> str:
    """A run's configuration: its name without the seed suffix."""
    return re.sub(r"_seed\d+$", "", name)


def graph_shape_runs(runs: dict[str, dict]) -> dict[str, dict]:
    """The graph-shape and encoder-aggregation runs."""
    return {n: r for n, r in runs.items() if n.startswith(("graph_", "aggregate_enc"))}


def norm_runs(runs: dict[str, dict]) -> dict[str, dict]:
    """The pre-/post-norm x warm-up x learning-rate runs."""
    return {n: r for n, r in runs.items() if n.startswith("norm_")}


def _test_bleu(r: dict) -> float:
    return r["scores"]["test_2016_flickr"][r["config"]["eval"].get("protocol", "bleu_tok_lc")]


def plot_graph_shapes(runs: dict[str, dict], path: Path) -> None:
    """Test BLEU against encoder edges per sentence for every graph-shape and aggregation
    configuration: the mean over its seeds, with their range drawn as a bar."""
    groups: dict[str, list[dict]] = {}
    for name, r in graph_shape_runs(runs).items():
        groups.setdefault(group_name(name), []).append(r)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, members in groups.items():
        bleu = [_test_bleu(r) for r in members]
        edges = members[0]["edges_per_sentence"]
        mean_agg = members[0]["config"]["model"].get("enc_aggregator") == "mean"
        ax.plot(edges, sum(bleu) / len(bleu), "s" if mean_agg else "o",
                color="C3" if mean_agg else "C0")
        if len(bleu) > 1:
            ax.vlines(edges, min(bleu), max(bleu), color="k", lw=3, alpha=0.4)
        ax.annotate(name.removeprefix("graph_"), (edges, sum(bleu) / len(bleu)), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    protocol = next(iter(runs.values()))["config"]["eval"].get("protocol", "bleu_tok_lc")
    ax.set(xlabel="encoder edges per val sentence", ylabel=f"test2016 BLEU ({protocol})",
           title="encoder graph shape (circles: attention, squares: mean aggregation;\n"
                 "mean over seeds, grey bars: their range)")
    save_figure(fig, path)


def plot_norm_curves(runs: dict[str, dict], path: Path) -> None:
    """Validation loss against updates of the pre-/post-norm x warm-up runs, one panel per
    peak learning rate, one colour per LayerNorm and warm-up, one line per seed."""
    by_lr: dict[float, list[dict]] = {}
    for r in norm_runs(runs).values():
        by_lr.setdefault(r["config"]["train"]["lr"], []).append(r)
    variants = [(pre, ramp) for pre in (True, False) for ramp in ("linear", "none")]

    def variant_of(r: dict) -> tuple[bool, str]:
        return r["config"]["model"]["norm_first"], r["config"]["train"]["warmup"]

    fig, axes = plt.subplots(1, len(by_lr), figsize=(max(7, 5 * len(by_lr)), 4), squeeze=False,
                             sharey=True)
    for ax, (lr, group) in zip(axes[0], sorted(by_lr.items(), reverse=True), strict=True):
        labelled = set()
        for r in sorted(group, key=lambda r: (variants.index(variant_of(r)),
                                              r["config"]["train"]["seed"])):
            variant = variant_of(r)
            epochs = [h for h in r["history"] if "val_nll" in h]
            label = (f"{'pre' if variant[0] else 'post'}-LN, "
                     f"{'warm-up' if variant[1] == 'linear' else 'no warm-up'}")
            ax.plot([h["step"] for h in epochs], [h["val_nll"] for h in epochs], "o-", ms=3,
                    lw=1, color=f"C{variants.index(variant)}",
                    label=None if variant in labelled else label)
            labelled.add(variant)
        ax.set(xlabel="updates", title=f"peak learning rate {lr:g}")
        ax.legend(fontsize="small")
    axes[0][0].set(ylabel="val NLL / token (nats)")
    fig.suptitle("6+6 layers: pre- vs post-LayerNorm, with and without warm-up "
                 "(one line per seed)")
    save_figure(fig, path)


Selection = Callable[[dict[str, dict]], dict[str, dict]]
#: Each figure by file name: the runs it shows, and how it draws them.
EXPERIMENT_FIGURES: dict[str, tuple[Selection, Callable[[dict[str, dict], Path], None]]] = {
    "graph_shapes.png": (graph_shape_runs, plot_graph_shapes),
    "norm_curves.png": (norm_runs, plot_norm_curves),
}


def figures_shown(runs: dict[str, dict]) -> list[str]:
    """The file names of the figures that have runs to show."""
    return [name for name, (select, _) in EXPERIMENT_FIGURES.items() if select(runs)]


def write_figures(runs: dict[str, dict], results: Path) -> None:
    """Every figure of :func:`figures_shown`, into ``results``."""
    for name in figures_shown(runs):
        EXPERIMENT_FIGURES[name][1](runs, results / name)
