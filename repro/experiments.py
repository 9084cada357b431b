"""``make experiments``: the essay's open questions, one short training run per config.

    python -m repro.experiments [--only NAME ...] [--set key=value ...]

Every ``repro/experiments/*.yaml`` (but ``_schedule.yaml``, the one short schedule they all
inherit) is one run of ``make repro``'s pipeline (``repro.run.record``): train, then decode
test2016, with its checkpoints in ``runs/experiments/<name>``. A run whose results file exists
is skipped, and an interrupted run resumes from its checkpoint, so the target can be stopped
and started again. Each results file holds the record of ``make repro`` plus what the essay's
questions compare: encoder edges per sentence (measured on val with the model's own graph
builder), training tokens per second, and the chosen weights' greedy val BLEU.

Four analyses read trained models instead of training one (each skipped when its output
exists): the frozen "learned" encoder graph (``repro/learned_graph.py``, from
``graph_complete``, before ``graph_learned_4`` trains on it), head pruning
(``repro/heads.py``), the syntax study (``repro/syntax_study.py``), both on
``graph_complete``, and the attention-scaling probe (``repro/scaling_probe.py``, its own
small runs). The summary table and figures in ``repro/README.md`` are regenerated from the
files.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from statistics import mean, median

import torch

from dgl_transformer.mt.checkpoint import CheckpointError
from dgl_transformer.mt.configs import ConfigError, add_overrides_argument, load_config
from dgl_transformer.mt.data import DataError
from dgl_transformer.mt.train import TrainingError
from dgl_transformer.mt.translate import load_translator

from . import run
from .cli import write_json
from .report import plt, write_between_markers

EXPERIMENTS = Path("repro/experiments")
RESULTS = Path("repro/results/experiments")
BEGIN, END = "<!-- experiments:begin -->", "<!-- experiments:end -->"
#: The complete-graph model the analyses read.
TEACHER = "graph_complete"
#: Analyses of trained models, by the name ``--only`` takes (see :func:`analyses`).
ANALYSES = ("heads_pruning", "syntax_study", "scaling_probe")
#: Experiments repeated with a second seed: their spread is the yardstick of every difference.
SEED_PAIRS = (("graph_complete", "graph_complete_seed2"),
              ("graph_window_4", "graph_window_4_seed2"))


def experiment_configs(only: list[str] | None = None) -> list[Path]:
    """The experiment configs, by name (``_``-prefixed files are shared bases, not runs)."""
    found = sorted(p for p in EXPERIMENTS.glob("*.yaml") if not p.name.startswith("_"))
    if only:
        unknown = set(only) - {p.stem for p in found}
        if unknown:
            raise SystemExit(f"error: no experiment named {', '.join(sorted(unknown))} "
                             f"in {EXPERIMENTS}")
        found = [p for p in found if p.stem in only]
    return found


@torch.no_grad()
def edges_per_sentence(final: Path, root: Path, limit: int = 0) -> float:
    """Mean encoder edges per validation sentence (the first ``limit``; 0: all), from the
    trained model's graph builder."""
    model, pipeline, _ = load_translator(final)
    src = pipeline.read(root, "val")[0][:limit or None]
    ids = [torch.tensor(pipeline.encode(s, pipeline.src_lang)) for s in src]
    ids = [s for s in ids if len(s)]
    return round(model.collate(ids).enc_graph.num_edges() / len(ids), 1)


def tokens_per_second(run_dir: Path) -> float:
    """Mean training target tokens per second over the run's logged windows."""
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    rates = [r["tokens_per_s"] for r in map(json.loads, lines) if r.get("kind") == "train"]
    return round(mean(rates), 1) if rates else 0.0


def measure(config: Path, overrides: list[str]) -> dict:
    """One experiment: ``make repro``'s record plus the quantities the essay compares."""
    cfg = load_config(config, overrides)
    result, _ = run.record(str(config), overrides, f"make experiments ({config.name})")
    chosen = result["val_candidates"][result["chosen_weights"]]
    result.update(
        edges_per_sentence=edges_per_sentence(Path(cfg.train.out_dir) / "final.pt",
                                              Path(cfg.data.root), cfg.data.val_limit),
        train_tokens_per_s=tokens_per_second(Path(cfg.train.out_dir)),
        val_bleu=chosen["val_bleu_greedy"],
    )
    return result


def summary_table(results: Path) -> str:
    """One row per results file: what it changed and what it measured."""
    rows = ["| run | encoder graph, aggregator | heads | layers | norm / warm-up | "
            "edges per sentence | train tok/s | val BLEU (tok, lc, greedy) | test2016 cased | "
            "test2016 tok, lc |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in load_results(results).values():
        m, t = r["config"]["model"], r["config"]["train"]
        s = r["scores"]["test_2016_flickr"]
        encoder = f"{m.get('encoder_graph', 'complete')}, {m.get('enc_aggregator', 'attention')}"
        decoder = m.get("dec_aggregator", "attention")
        if decoder != "attention":
            encoder += f", decoder self: {decoder}"
        norm = "pre-LN" if m.get("norm_first", True) else "post-LN"
        rows.append(
            f"| `{r['name']}` | {encoder} | {m['n_heads']} | {m['n_enc_layers']}+"
            f"{m['n_dec_layers']} | {norm}, warm-up {t['warmup_steps']} | "
            f"{r['edges_per_sentence']} | {r['train_tokens_per_s']:,.0f} | {r['val_bleu']:.2f} | "
            f"{s['bleu_cased']:.2f} | {s['bleu_tok_lc']:.2f} |")
    return "\n".join(rows)


def load_results(results: Path) -> dict[str, dict]:
    """Every experiment's results file, by name (analyses' files are not experiments)."""
    found = {}
    for path in sorted(results.glob("*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        if "scores" in r:
            found[r["name"]] = r
    return found


def seed_spread(runs: dict[str, dict]) -> str:
    """The two seeds of each repeated experiment, side by side: the noise floor."""
    lines = []
    for first, second in SEED_PAIRS:
        if first in runs and second in runs:
            a, b = runs[first], runs[second]
            ta = a["scores"]["test_2016_flickr"]["bleu_tok_lc"]
            tb = b["scores"]["test_2016_flickr"]["bleu_tok_lc"]
            lines.append(f"- `{first}` vs `{second}` (seeds {a['config']['train']['seed']} and "
                         f"{b['config']['train']['seed']}): val BLEU {a['val_bleu']:.2f} / "
                         f"{b['val_bleu']:.2f} (spread {abs(a['val_bleu'] - b['val_bleu']):.2f}), "
                         f"test2016 tok, lc {ta:.2f} / {tb:.2f} (spread {abs(ta - tb):.2f})")
    if not lines:
        return ""
    return ("Seed spread, the noise floor of every difference above (same config, another "
            "seed):\n\n" + "\n".join(lines))


def plot_graph_shapes(runs: dict[str, dict], path: Path) -> bool:
    """Test BLEU against encoder edges per sentence for every graph-shape and aggregation run,
    with the seed pairs drawn as ranges."""
    shown = {n: r for n, r in runs.items() if n.startswith(("graph_", "aggregate_enc"))}
    if not shown:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, r in shown.items():
        bleu = r["scores"]["test_2016_flickr"]["bleu_tok_lc"]
        mean_agg = r["config"]["model"].get("enc_aggregator") == "mean"
        ax.plot(r["edges_per_sentence"], bleu, "s" if mean_agg else "o",
                color="C3" if mean_agg else "C0")
        ax.annotate(name.removeprefix("graph_"), (r["edges_per_sentence"], bleu), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    for first, second in SEED_PAIRS:
        if first in runs and second in runs:
            pair = [runs[n]["scores"]["test_2016_flickr"]["bleu_tok_lc"] for n in (first, second)]
            ax.vlines(runs[first]["edges_per_sentence"], min(pair), max(pair), color="k", lw=3,
                      alpha=0.4)
    ax.set(xlabel="encoder edges per val sentence", ylabel="test2016 BLEU (tok, lc)",
           title="encoder graph shape (circles: attention, squares: mean aggregation;\n"
                 "grey bars: two seeds of the same config)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_norm_curves(runs: dict[str, dict], path: Path) -> bool:
    """Validation loss against training minutes of the pre-/post-norm x warm-up runs."""
    shown = {n: r for n, r in runs.items() if n.startswith("norm_")}
    if not shown:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in sorted(shown.items()):
        epochs = [h for h in r["history"] if "val_nll" in h]
        ax.plot([h["elapsed_s"] / 60 for h in epochs], [h["val_nll"] for h in epochs], "o-",
                ms=3, label=name.removeprefix("norm_").replace("_", ", "))
    ax.set(xlabel="training minutes", ylabel="val NLL / token (nats)",
           title="6+6 layers: pre- vs post-LayerNorm, with and without warm-up")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def read_json(path: Path) -> dict | None:
    """The record at ``path``, or None if there is none yet."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def fmt(value: float | None, spec: str = ".2f") -> str:
    """A number for the README; ``n/a`` where an analysis had nothing to measure."""
    return "n/a" if value is None else format(value, spec)


def heads_summary(results: Path) -> str:
    """Val BLEU as heads of one attention type are pruned (``repro/heads.py``)."""
    r = read_json(results / "heads_pruning.json")
    if r is None:
        return ""
    curves = {kind: {p["heads_kept"]: p["bleu_tok_lc"] for p in c["points"]}
              for kind, c in r["curves"].items()}
    kept = sorted(set().union(*curves.values()), reverse=True)
    rows = ["| heads kept (of one type) | " + " | ".join(curves) + " |",
            "|---" * (len(curves) + 1) + "|"]
    rows += [f"| {k} | " + " | ".join(fmt(c.get(k)) for c in curves.values()) + " |"
             for k in kept]
    first, last = r.get("importance_sentences", [0, r["sentences"]])
    return (f"**Head pruning** (`repro/heads.py` on `graph_complete`, greedy decoding). "
            f"Importance = val NLL increase when the head alone is masked, measured on val "
            f"sentences {first}-{last}; heads are then removed least important first, one type "
            f"at a time (the other two keep all heads), and val BLEU (tok, lc) is measured on "
            f"the first {r['sentences']} val sentences:\n\n" + "\n".join(rows)
            + "\n\n![head pruning](results/experiments/heads_pruning.png)")


def syntax_summary(results: Path) -> str:
    """Encoder heads against adjacency, entropy and alignment (``repro/syntax_study.py``)."""
    r = read_json(results / "syntax" / "syntax_study.json")
    if r is None:
        return ""
    enc, cross = r["encoder"], r["cross"]
    lines = []
    for layer in range(1, enc["layers"] + 1):
        heads = [h for h in enc["per_head"] if h["layer"] == layer]
        best = max(heads, key=lambda h: h["adjacent_share"])
        lines.append(f"| {layer} | {min(h['adjacent_share'] for h in heads):.2f} - "
                     f"{best['adjacent_share']:.2f} (head {best['head']}) | "
                     f"{sum(h['mean_entropy'] for h in heads) / len(heads):.2f} |")
    cross_rows = ", ".join(f"layer {c['layer']}: {fmt(c['share_predicting'])}"
                           for c in cross["per_layer"])
    figures = " ".join(f"![{k}](results/experiments/syntax/{v})" for k, v in r["figures"].items())
    return ("**Neural syntax** (`repro/syntax_study.py` on `graph_complete`, "
            f"{r['sentences']} val sentences, words from spaCy's rule-based tokenizer; "
            f"{r['rule']['word_attention'].split(':')[0]}). Share of words whose strongest "
            "other word is a neighbour, per encoder layer (range over heads), and mean row "
            f"entropy. Baselines: a uniformly random choice gives "
            f"{enc['uniform_adjacent_share']:.2f}; uniform attention over the pieces, merged by "
            f"the same rule (which favours words of many pieces; ties split evenly), "
            f"{fmt(enc.get('length_only_adjacent_share'))}; uniform attention has "
            f"{enc['uniform_entropy']:.2f} nats:\n\n"
            "| layer | adjacent share | entropy (nats) |\n|---|---|---|\n" + "\n".join(lines)
            + f"\n\nHead agreement (Jaccard of strongest edges): "
            f"{fmt(r['agreement']['mean_within_layer'])} within a layer, "
            f"{fmt(r['agreement']['mean_across_layers'])} across layers. Cross-attention: of "
            f"{cross['candidates']} target words that also occur in the source, the share "
            f"whose strongest source word is that word when it is predicted ({cross_rows}; "
            f"chance {fmt(cross['uniform_chance_share'])}, length-only choice "
            f"{fmt(cross.get('length_only_share'))}){most_frequent(cross)}.\n\n{figures}")


def most_frequent(cross: dict) -> str:
    """How much of the identical-word test one word makes up: a caveat on its shares."""
    words = cross.get("most_frequent_identical_words")
    if not words:
        return ""
    word, count = words[0]
    return f"; {count} of the {cross['candidates']} are the word '{word}'"


def probe_summary(results: Path) -> str:
    """Attention entropy and score gradients with and without 1/sqrt(d_k)."""
    r = read_json(results / "scaling_probe.json")
    if r is None:
        return ""
    rows = ["| run | d_k | encoder entropy, first -> last probe (nats) | encoder score-gradient "
            "RMS, first probe / median of the second half | probe NLL, last |",
            "|---|---|---|---|---|"]
    for name, v in r["variants"].items():
        first, last = v["points"][0], v["points"][-1]
        half = r["settings"]["updates"] // 2  # past warm-up and the first steep descent
        grad = median(p["score_grad_rms"]["enc"] for p in v["points"] if p["update"] >= half)
        rows.append(f"| {name} | {v['d_k']} | {first['entropy']['enc']:.2f} -> "
                    f"{last['entropy']['enc']:.2f} | {first['score_grad_rms']['enc']:.1e} / "
                    f"{grad:.1e} | {last['nll']:.2f} |")
    st = r["settings"]
    return (f"**Scaling the scores** (`repro/scaling_probe.py`: {st['updates']} updates of "
            f"{st['max_tokens']} tokens each, probes on {st['probe_pairs']} fixed val pairs):"
            "\n\n" + "\n".join(rows)
            + "\n\n![scaling probe](results/experiments/scaling_probe.png)")


def summary(results: Path) -> str:
    """The README section between the markers: table, seed spread, figures, analyses."""
    runs = load_results(results)
    parts = [summary_table(results), seed_spread(runs)]
    figures = (("graph_shapes.png", plot_graph_shapes), ("norm_curves.png", plot_norm_curves))
    for name, plot in figures:
        if plot(runs, results / name):
            parts.append(f"![{name[:-4]}](results/experiments/{name})")
    learned = read_json(results / "learned_graph_w4.json")
    if learned is not None:
        parts.append(f"The learned graph (`graph_learned_4`): {learned['edges']:,} edges over "
                     f"{learned['sentences']:,} sentences; of the edges between two different "
                     f"tokens, {fmt(learned['within_window_share_non_self'], '.0%')} lie inside "
                     "the window-4 graph (random wiring with the same in-degrees: "
                     f"{fmt(learned.get('random_within_window_share_non_self'), '.0%')}).")
    parts += [heads_summary(results), syntax_summary(results), probe_summary(results)]
    return "\n\n".join(p for p in parts if p)


def learned_graph_file(config: Path, overrides: list[str], runs: Path) -> list[str]:
    """For a config that trains on a learned graph: the override that keeps its graph file in
    ``runs`` (empty list for any other config)."""
    graph_file = load_config(config, overrides).model.graph_file
    return [f"model.graph_file={runs / Path(graph_file).name}"] if graph_file else []


def write_learned_graph(config: Path, overrides: list[str], results: Path) -> None:
    """Write the graph file a learned-graph config trains on, from the teacher's model."""
    from . import learned_graph

    cfg = load_config(config, overrides)
    out = Path(cfg.model.graph_file)
    if out.exists():
        return
    teacher = Path(cfg.train.out_dir).parent / TEACHER / "final.pt"
    if not teacher.exists():
        raise SystemExit(f"error: {config.stem} trains on a graph learned by {TEACHER}: "
                         f"run that experiment first ({teacher} is missing)")
    window = int(cfg.model.encoder_graph.split(":")[1])
    print(f"learned graph: {out} from {teacher}", file=sys.stderr)
    limits = {"train": cfg.data.train_limit, "val": cfg.data.val_limit}  # what the run reads
    summary = learned_graph.write(teacher, Path(cfg.data.root), out, window, limits)
    write_json(results / f"learned_graph_w{window}.json", summary)


def analyses(args: argparse.Namespace, root: Path) -> dict[str, tuple[Path, Callable[[], object]]]:
    """The analyses of trained models by name: output path and the call that writes it."""
    from . import heads, scaling_probe, syntax_study

    teacher = args.runs / TEACHER / "final.pt"
    n = args.sentences
    updates = {} if args.probe_updates is None else {"updates": args.probe_updates,
                                                      "every": max(1, args.probe_updates // 2)}
    return {
        "heads_pruning": (args.results / "heads_pruning.json",
                          lambda: heads.run(teacher, root, args.results / "heads_pruning.json",
                                            sentences=n)),
        "syntax_study": (args.results / "syntax" / "syntax_study.json",
                         lambda: syntax_study.run(teacher, root, args.results / "syntax",
                                                  sentences=n)),
        "scaling_probe": (args.results / "scaling_probe.json",
                          lambda: scaling_probe.run(EXPERIMENTS / "_schedule.yaml", root,
                                                    args.results / "scaling_probe.json",
                                                    overrides=args.set, **updates)),
    }


def run_analyses(args: argparse.Namespace) -> None:
    """Each analysis that ``--only`` selects, whose output is missing and whose inputs exist."""
    root = Path(load_config(EXPERIMENTS / "_schedule.yaml", args.set).data.root)
    for name, (out, write) in analyses(args, root).items():
        if args.only and name not in args.only:
            continue
        if out.exists():
            print(f"{name}: done ({out})", file=sys.stderr)
            continue
        if name != "scaling_probe" and not (args.runs / TEACHER / "final.pt").exists():
            print(f"{name}: waits for {TEACHER}", file=sys.stderr)
            continue
        print(f"{name}: running", file=sys.stderr)
        out.parent.mkdir(parents=True, exist_ok=True)
        write()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help=f"run only these experiments or analyses ({', '.join(ANALYSES)})")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results files")
    parser.add_argument("--runs", type=Path, default=Path("runs/experiments"),
                        help="checkpoints, one directory per experiment")
    parser.add_argument("--readme", type=Path, default=Path("repro/README.md"))
    parser.add_argument("--sentences", type=int, default=500,
                        help="val sentences read by head pruning and the syntax study")
    parser.add_argument("--probe-updates", type=int, default=None,
                        help="training updates of each attention-scaling probe run "
                             "(default: repro/scaling_probe.py's)")
    add_overrides_argument(parser)
    args = parser.parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    try:
        names = [n for n in args.only if n not in ANALYSES] if args.only else None
        for config in experiment_configs(names) if names != [] else []:
            out = args.results / f"{config.stem}.json"
            if out.exists():
                print(f"{config.stem}: done ({out})", file=sys.stderr)
                continue
            print(f"{config.stem}: running", file=sys.stderr)
            overrides = [*args.set, f"train.out_dir={args.runs / config.stem}"]
            graph_file = learned_graph_file(config, overrides, args.runs)
            if graph_file:
                overrides += graph_file
                write_learned_graph(config, overrides, args.results)
            write_json(out, measure(config, overrides))
            if config.stem == TEACHER:  # a graph learned from an earlier teacher is stale
                for stale in args.runs.glob("learned_graph_w*.pt"):
                    stale.unlink()
        run_analyses(args)
        write_between_markers(args.readme, BEGIN, END, summary(args.results))
    except (ConfigError, DataError, CheckpointError, TrainingError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"error: training exited with status {err.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
