"""``make repro``: data -> train -> evaluate -> result files.

    python -m repro.run --config repro/configs/default.yaml

Trains with ``python -m dgl_transformer.mt.train`` (resuming if the run directory already holds
checkpoints), then decodes every available test set with beam search and writes, under
``repro/results/``: ``<name>.json`` (every score, the config, commit, wall time, threads,
machine), ``<name>_curves.png`` (training/validation loss and validation BLEU per epoch) and
``<name>_samples.md`` (20 translations beside their references). Finally it regenerates the
results table in ``repro/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import dgl
import torch

from dgl_transformer.mt import checkpoint
from dgl_transformer.mt.checkpoint import CheckpointError
from dgl_transformer.mt.configs import (
    ConfigError,
    RunConfig,
    add_overrides_argument,
    load_config,
    overrides_args,
)
from dgl_transformer.mt.corpus import load_splits
from dgl_transformer.mt.data import DataError, available_test_sets, fetch, read_split
from dgl_transformer.mt.evaluate import evaluate_split
from dgl_transformer.mt.generate import Translator
from dgl_transformer.mt.train import TrainingError, check_resumable

from .report.repro_results import BLEU_LEVELS, plot_curves, update_readme, write_samples

RESULTS = Path("repro/results")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except OSError:
        return "unknown"


def machine() -> dict[str, object]:
    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "dgl": dgl.__version__}


#: Settings that decide where a run stops or which weights it keeps. A ``final.pt`` saved with
#: other values than the config's is from a shorter (or differently finished) run of the same
#: recipe: training resumes from its last checkpoint and writes a new ``final.pt``.
#: Named like ``train.RESUMABLE_CHANGES``, of which they are a part.
FINISHING_SETTINGS = ("data.val_limit", "train.max_epochs", "train.max_steps",
                      "train.time_limit_minutes", "train.patience", "train.average_last",
                      "train.keep", "train.val_bleu_sentences", "eval.protocol")


def finished(saved: dict, cfg: dict) -> bool:
    """Whether a ``final.pt`` saved with run config ``saved`` is the result of config ``cfg``."""
    sections = [name.split(".") for name in FINISHING_SETTINGS]
    return all(saved.get(section, {}).get(key) == cfg[section][key] for section, key in sections)


def train(config: str, overrides: list[str], out_dir: Path) -> dict | None:
    """Train (resuming from ``out_dir``'s checkpoint if it has one) unless ``final.pt`` exists
    and was written under this config's limits.

    Checkpoints and ``final.pt`` must have been trained with this config, up to the settings a
    resumed run may change, else :class:`TrainingError`: a result file must never describe a
    model trained otherwise. A ``final.pt`` written under other limits (a finished default run
    copied into a longer config's ``out_dir``) is continued to this config's limits. Returns
    where a resumed run started: its step and the training seconds already spent, which this
    invocation's wall time does not include (for a run finished earlier, all of its training);
    None when it trained from scratch here.
    """
    final = out_dir / "final.pt"
    if final.exists():
        cfg = load_config(config, overrides)
        trained = checkpoint.TrainedModel.load(final)
        check_resumable(final, trained.run_config, cfg)
        if finished(trained.run_config, cfg.to_dict()):  # trained earlier: evaluate only
            return {"checkpoint": final.as_posix(), "step": trained.steps,
                    "train_seconds": round(trained.train_seconds, 1)}
    cmd = [sys.executable, "-m", "dgl_transformer.mt.train", "--config", config,
           *overrides_args(overrides)]
    resumed = None
    latest = checkpoint.load_latest(out_dir)
    if latest is not None:
        path, state = latest
        resumed = {"checkpoint": path.as_posix(), "step": state["step"],
                   "train_seconds": round(state["elapsed"], 1)}
        cmd.append("--resume")
    subprocess.run(cmd, check=True)
    return resumed


def evaluate(
    final: Path, root: Path, threads: int, val_limit: int = 0
) -> tuple[dict, list[dict], dict[str, list[str]]]:
    """Beam-search val (its first ``val_limit`` sentences, 0: all, as the run validated) and
    every available test set (``dgl-transformer evaluate``'s functions); return the scores
    (val's under ``val``), sample translations and every test split's translations."""
    torch.set_num_threads(threads)
    translator = Translator.from_checkpoint(final)
    pipeline = translator.pipeline
    scores, samples, outputs = {}, [], {}
    for split in available_test_sets(root, pipeline.src_lang, pipeline.tgt_lang, "raw"):
        plain, scores[split] = evaluate_split(translator, root, split)
        outputs[split] = plain
        print(f"{split}: {json.dumps(scores[split])}", file=sys.stderr)
        if not samples:
            src_raw = read_split(root, split, pipeline.src_lang, "raw")
            refs_raw = read_split(root, split, pipeline.tgt_lang, "raw")
            every = max(1, len(plain) // 20)
            samples = [{"split": split, "source": src_raw[i], "reference": refs_raw[i],
                        "hypothesis": plain[i]} for i in range(0, len(plain), every)][:20]
    # val decoded as test is: comparisons between runs decide on it, never on a test set
    scores["val"] = evaluate_split(translator, root, "val", limit=val_limit)[1]
    return scores, samples, outputs


def write_outputs(
    results: Path, name: str, tgt_lang: str, outputs: dict[str, list[str]]
) -> list[str]:
    """Each split's translations, one per line, as ``<results>/outputs/<name>.<split>.<lang>``
    (what paired comparisons between runs read); returns the paths written."""
    folder = results / "outputs"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, lines in outputs.items():
        path = folder / f"{name}.{split}.{tgt_lang}"
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        paths.append(path.as_posix())
    return paths


def epoch_tokens(cfg: RunConfig, final: Path, root: Path) -> int:
    """Source and target tokens (graph nodes, as ``train.max_tokens`` counts them with the
    ``tokens`` rule) of one epoch of the run's training pairs."""
    pipeline = Translator.from_checkpoint(final).pipeline
    train_set = load_splits(cfg, pipeline, root)[0]
    return sum(map(sum, train_set.lengths()))


def mean_load(out_dir: Path) -> float | None:
    """The machine's mean 1-minute load average over the run's logged updates (None for a
    log without it)."""
    lines = (out_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    loads = [r["load_1m"] for r in map(json.loads, lines) if "load_1m" in r]
    return round(sum(loads) / len(loads), 2) if loads else None


def time_to_bleu(history: list[dict]) -> dict[str, object]:
    """Training minutes at the end of the first epoch whose greedy val BLEU (``bleu_tok_lc``)
    reached each of :data:`BLEU_LEVELS` (None: never reached)."""
    minutes: dict[str, object] = {"metric": "val_bleu_greedy (bleu_tok_lc, greedy decoding)"}
    for level in BLEU_LEVELS:
        first = next((h for h in history if h.get("val_bleu_greedy", -1) >= level), None)
        minutes[str(level)] = None if first is None else round(first["elapsed_s"] / 60, 1)
    return minutes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.run", description=__doc__)
    parser.add_argument("--config", required=True)
    add_overrides_argument(parser)
    args = parser.parse_args(argv)
    try:
        return run(args.config, args.set)
    except (ConfigError, DataError, CheckpointError, TrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
    except subprocess.CalledProcessError as err:
        print(f"error: training exited with status {err.returncode} (see its message above)",
              file=sys.stderr)
    return 1


def record(
    config: str, overrides: list[str], command: str, results: Path = RESULTS
) -> tuple[dict, list[dict]]:
    """Data -> train -> evaluate for one config: the result record and sample translations
    (the translations of every test set go to ``results``/outputs)."""
    started = time.time()
    cfg = load_config(config, overrides)
    root, out_dir = Path(cfg.data.root), Path(cfg.train.out_dir)
    fetch(root, langs=(cfg.data.src_lang, cfg.data.tgt_lang))
    resumed = train(config, overrides, out_dir)
    final = out_dir / "final.pt"
    scores, samples, outputs = evaluate(final, root, cfg.train.threads, cfg.data.val_limit)
    state = checkpoint.TrainedModel.load(final)
    result = {
        "name": cfg.name, "command": command,
        "scores": scores, "chosen_weights": state.chosen,
        "val_candidates": state.candidates, "train_seconds": round(state.train_seconds, 1),
        "train_steps": state.steps, "epochs": len(state.history),
        "time_to_bleu": time_to_bleu(state.history),
        "stopped_early": state.stopped, "wall_seconds": round(time.time() - started, 1),
        "resumed_from": resumed, "load_1m_mean": mean_load(out_dir),
        "tokens_per_epoch": epoch_tokens(cfg, final, root),
        "outputs": write_outputs(results, cfg.name, cfg.data.tgt_lang, outputs),
        "threads": cfg.train.threads, "machine": machine(), "git_commit": git_commit(),
        "config": cfg.to_dict(), "history": state.history,
    }
    return result, samples


def run(config: str, overrides: list[str]) -> int:
    threads = load_config(config, overrides).train.threads  # make repro's THREADS
    command = f"make repro CONFIG={config}" + ("" if threads == 2 else f" THREADS={threads}")
    result, samples = record(config, overrides, command)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = result["name"]
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    plot_curves(result, RESULTS / f"{name}_curves.png")
    write_samples(name, samples, RESULTS / f"{name}_samples.md")
    update_readme(RESULTS, Path("repro/README.md"))
    print(f"wrote {path} (wall time {result['wall_seconds'] / 60:.1f} min)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
