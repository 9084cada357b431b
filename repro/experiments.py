"""``make experiments``: the essay's open questions, one short training run per config.

    python -m repro.experiments [--only NAME ...] [--set key=value ...]

Every ``repro/experiments/*.yaml`` (but ``_schedule.yaml``, the one short schedule they all
inherit: 650 updates) is one run of ``make repro``'s pipeline (``repro.run.record``): train,
then decode test2016, with its checkpoints in ``runs/experiments/<name>``. A run whose results
file exists is skipped, and an interrupted run resumes from its checkpoint, so the target can
be stopped and started again. Each results file holds the record of ``make repro`` plus what
the essay's questions compare: encoder edges per sentence (measured on val with the model's own
graph builder), training tokens per second and the chosen weights' greedy val BLEU (the record
holds val decoded as test is, ``scores["val"]``, on which the essay decides).

Four analyses read trained models instead of training one (each skipped when its output
exists): the frozen "learned" encoder graph (``repro/learned_graph.py``, from
``graph_complete``, before ``graph_learned_4`` trains on it), head pruning
(``repro/heads.py``) and the syntax study (``repro/syntax_study.py``), both on
``graph_complete`` and again on the converged default (the shipped ``repro/models/default.pt``:
the weights of ``make repro``'s recorded run, so a fresh clone needs no hour of training), and
the attention-scaling probe (``repro/scaling_probe.py``, its own small runs). The summary
table and figures in ``repro/README.md`` are regenerated from the files
(``repro/report/experiments.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from statistics import mean

import torch

from dgl_transformer.mt.checkpoint import CheckpointError
from dgl_transformer.mt.configs import ConfigError, add_overrides_argument, load_config
from dgl_transformer.mt.data import DataError
from dgl_transformer.mt.generate import Translator
from dgl_transformer.mt.train import TrainingError

from . import essay, run
from .cli import write_json
from .report.experiments import EXPERIMENT_RESULTS, update_experiments_section
from .report.repro_results import REPRO_README

EXPERIMENTS = Path("repro/experiments")
#: The complete-graph model the analyses read.
TEACHER = "graph_complete"
#: The converged model the analyses read again: the 1-hour default's recorded run, as shipped.
CONVERGED = Path("repro/models/default.pt")
#: Analyses of trained models, by the name ``--only`` takes (see :func:`analyses`).
ANALYSES = ("heads_pruning", "syntax_study", "scaling_probe", "heads_pruning_converged",
            "syntax_study_converged")


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
    translator = Translator.from_checkpoint(final)
    model, pipeline = translator.model, translator.pipeline
    src = pipeline.read(root, "val")[0][:limit or None]
    ids = [torch.tensor(pipeline.encode(s, pipeline.src_lang)) for s in src]
    ids = [s for s in ids if len(s)]
    return round(model.collate(ids).enc_graph.num_edges() / len(ids), 1)


def tokens_per_second(run_dir: Path) -> float:
    """Mean training target tokens per second over the run's logged windows."""
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    rates = [r["tokens_per_s"] for r in map(json.loads, lines) if r.get("kind") == "train"]
    return round(mean(rates), 1) if rates else 0.0


def measure(config: Path, overrides: list[str], results: Path) -> dict:
    """One experiment: ``make repro``'s record plus the quantities the essay compares."""
    cfg = load_config(config, overrides)
    result, _ = run.record(str(config), overrides, f"make experiments ({config.name})",
                           results)
    chosen = result["val_candidates"][result["chosen_weights"]]
    final, root = Path(cfg.train.out_dir) / "final.pt", Path(cfg.data.root)
    result.update(
        edges_per_sentence=edges_per_sentence(final, root, cfg.data.val_limit),
        train_tokens_per_s=tokens_per_second(Path(cfg.train.out_dir)),
        val_bleu=chosen["val_bleu_greedy"],
    )
    return result


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
        "heads_pruning_converged": (
            args.results / "heads_pruning_converged.json",
            lambda: heads.run(args.converged, root,
                              args.results / "heads_pruning_converged.json", sentences=n)),
        "syntax_study_converged": (
            args.results / "syntax_converged" / "syntax_study.json",
            lambda: syntax_study.run(args.converged, root, args.results / "syntax_converged",
                                     sentences=n)),
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
        teacher = (args.converged if name.endswith("_converged")
                   else args.runs / TEACHER / "final.pt")
        if name != "scaling_probe" and not teacher.exists():
            print(f"{name}: waits for {teacher}", file=sys.stderr)
            continue
        print(f"{name}: running", file=sys.stderr)
        out.parent.mkdir(parents=True, exist_ok=True)
        write()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help=f"run only these experiments or analyses ({', '.join(ANALYSES)})")
    parser.add_argument("--results", type=Path, default=EXPERIMENT_RESULTS, help="results files")
    parser.add_argument("--runs", type=Path, default=Path("runs/experiments"),
                        help="checkpoints, one directory per experiment")
    parser.add_argument("--readme", type=Path, default=REPRO_README)
    parser.add_argument("--converged", type=Path, default=CONVERGED,
                        help="the converged model the *_converged analyses read")
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
            write_json(out, measure(config, overrides, args.results))
            if config.stem == TEACHER:  # a graph learned from an earlier teacher is stale
                for stale in args.runs.glob("learned_graph_w*.pt"):
                    stale.unlink()
        run_analyses(args)
        root = Path(load_config(EXPERIMENTS / "_schedule.yaml", args.set).data.root)
        print(f"verdicts: {essay.write_verdicts(root, args.results)}", file=sys.stderr)
        update_experiments_section(args.results, args.readme)
    except (ConfigError, DataError, CheckpointError, TrainingError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"error: training exited with status {err.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
