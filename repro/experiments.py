"""``make experiments``: the essay's open questions, one short training run per config.

    python -m repro.experiments [--only NAME ...] [--set key=value ...]

Every ``repro/experiments/*.yaml`` (but ``_schedule.yaml``, the one short schedule they all
inherit) is one run of ``make repro``'s pipeline (``repro.run.record``): train, then decode
test2016, with its checkpoints in ``runs/experiments/<name>``. A run whose results file exists
is skipped, and an interrupted run resumes from its
checkpoint, so the target can be stopped and started again. Each results file holds the
record of ``make repro`` plus what the essay's questions compare: encoder edges per sentence
(measured on val with the model's own graph builder), training tokens per second, and the
chosen weights' greedy val BLEU. The summary table in ``repro/README.md`` is regenerated from
the files.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from statistics import mean

import torch

from dgl_transformer.mt.checkpoint import CheckpointError
from dgl_transformer.mt.configs import ConfigError, add_overrides_argument, load_config
from dgl_transformer.mt.data import DataError
from dgl_transformer.mt.train import TrainingError
from dgl_transformer.mt.translate import load_translator

from . import run
from .report import write_between_markers

EXPERIMENTS = Path("repro/experiments")
RESULTS = Path("repro/results/experiments")
BEGIN, END = "<!-- experiments:begin -->", "<!-- experiments:end -->"


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
def edges_per_sentence(final: Path, root: Path) -> float:
    """Mean encoder edges per validation sentence, from the trained model's graph builder."""
    model, pipeline, _ = load_translator(final)
    src, _ = pipeline.read(root, "val")
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
                                              Path(cfg.data.root)),
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
    for path in sorted(results.glob("*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results files")
    parser.add_argument("--runs", type=Path, default=Path("runs/experiments"),
                        help="checkpoints, one directory per experiment")
    parser.add_argument("--readme", type=Path, default=Path("repro/README.md"))
    add_overrides_argument(parser)
    args = parser.parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    try:
        for config in experiment_configs(args.only):
            out = args.results / f"{config.stem}.json"
            if out.exists():
                print(f"{config.stem}: done ({out})", file=sys.stderr)
                continue
            print(f"{config.stem}: running", file=sys.stderr)
            overrides = [*args.set, f"train.out_dir={args.runs / config.stem}"]
            out.write_text(json.dumps(measure(config, overrides), indent=2) + "\n",
                           encoding="utf-8")
    except (ConfigError, DataError, CheckpointError, TrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"error: training exited with status {err.returncode}", file=sys.stderr)
        return 1
    write_between_markers(args.readme, BEGIN, END, summary_table(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
