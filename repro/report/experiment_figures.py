"""The figures of the essay's summary in ``repro/README.md``, drawn from the experiments'
result files: test BLEU against encoder graph size, and the pre-/post-norm loss curves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .figures import plt, save_figure

#: Experiments repeated with a second seed: their spread is the yardstick of every difference.
EXPERIMENT_SEED_PAIRS = (("graph_complete", "graph_complete_seed2"),
                         ("graph_window_4", "graph_window_4_seed2"))


def seed_pairs(runs: dict[str, dict]) -> list[tuple[dict, dict]]:
    """The two runs of each of :data:`EXPERIMENT_SEED_PAIRS` that both exist."""
    return [(runs[first], runs[second]) for first, second in EXPERIMENT_SEED_PAIRS
            if first in runs and second in runs]


def graph_shape_runs(runs: dict[str, dict]) -> dict[str, dict]:
    """The graph-shape and encoder-aggregation runs."""
    return {n: r for n, r in runs.items() if n.startswith(("graph_", "aggregate_enc"))}


def norm_runs(runs: dict[str, dict]) -> dict[str, dict]:
    """The pre-/post-norm x warm-up runs."""
    return {n: r for n, r in runs.items() if n.startswith("norm_")}


def plot_graph_shapes(runs: dict[str, dict], path: Path) -> None:
    """Test BLEU against encoder edges per sentence for every graph-shape and aggregation run,
    with the seed pairs drawn as ranges."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, r in graph_shape_runs(runs).items():
        bleu = r["scores"]["test_2016_flickr"]["bleu_tok_lc"]
        mean_agg = r["config"]["model"].get("enc_aggregator") == "mean"
        ax.plot(r["edges_per_sentence"], bleu, "s" if mean_agg else "o",
                color="C3" if mean_agg else "C0")
        ax.annotate(name.removeprefix("graph_"), (r["edges_per_sentence"], bleu), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    for first, second in seed_pairs(runs):
        pair = [r["scores"]["test_2016_flickr"]["bleu_tok_lc"] for r in (first, second)]
        ax.vlines(first["edges_per_sentence"], min(pair), max(pair), color="k", lw=3, alpha=0.4)
    ax.set(xlabel="encoder edges per val sentence", ylabel="test2016 BLEU (tok, lc)",
           title="encoder graph shape (circles: attention, squares: mean aggregation;\n"
                 "grey bars: two seeds of the same config)")
    save_figure(fig, path)


def plot_norm_curves(runs: dict[str, dict], path: Path) -> None:
    """Validation loss against training minutes of the pre-/post-norm x warm-up runs."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in sorted(norm_runs(runs).items()):
        epochs = [h for h in r["history"] if "val_nll" in h]
        ax.plot([h["elapsed_s"] / 60 for h in epochs], [h["val_nll"] for h in epochs], "o-",
                ms=3, label=name.removeprefix("norm_").replace("_", ", "))
    ax.set(xlabel="training minutes", ylabel="val NLL / token (nats)",
           title="6+6 layers: pre- vs post-LayerNorm, with and without warm-up")
    ax.legend()
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
