"""The essay's comparisons and the rule that decides them, stated before the runs were made.

Every comparison the lesson may call decided is listed in :data:`PAIRS`: a question, a baseline
configuration and a changed one. A configuration is a group of runs that differ only in the
training seed (``graph_window_4``, ``graph_window_4_seed2``, ``graph_window_4_seed3``); the
group ``default`` is the 1-hour default's runs in ``repro/results`` (the converged baseline),
every other group lives in ``repro/results/experiments``.

For each pair and each seed both groups have, the comparison uses the decoder and protocol of
the test scores (beam search; the runs' headline protocol, ``eval.protocol``):

* **val**: the difference of the two runs' val BLEU (``scores["val"]``);
* **test**: sacreBLEU's paired bootstrap on test2016 (``repro.compare``): the difference and
  its 95% interval.

**The rule.** The change is *better* (or *worse*) when, on every one of at least three seeds,
the test interval lies above (below) zero, and the mean val difference over the seeds has the
same sign; otherwise the comparison is *not decided*. A pair with fewer seeds whose test
intervals all lie on one side of zero *wants seeds*: seeds 2 and 3 of both groups are recorded
before the lesson states it (a pair with an interval across zero is not decided whatever seeds
follow). A verdict states its seeds and its budget (updates).

    python -m repro.essay     # writes repro/results/experiments/verdicts.json

``make experiments`` runs it after the experiments; ``repro/report/experiments.py`` and lesson 07
read the file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from statistics import mean, stdev

from dgl_transformer.mt.data import DEFAULT_DEST, MIRROR_ENV, DataError

from .compare import compare, load_result
from .report.repro_results import REPRO_RESULTS, headline

EXPERIMENT_RESULTS = REPRO_RESULTS / "experiments"
VERDICTS = "verdicts.json"
SPLIT = "test_2016_flickr"
SEEDS_TO_DECIDE = 3
WANTS_SEEDS = "wants seeds"


def _norm_pairs() -> list[tuple[str, str, str]]:
    """Warm-up against none, and pre- against post-LayerNorm, at each peak learning rate."""
    pairs = []
    for lr in ("", "_lr1e-3", "_lr5e-4"):
        for norm in ("pre", "post"):
            pairs.append(("training", f"norm_{norm}_warmup{lr}", f"norm_{norm}_nowarmup{lr}"))
        pairs.append(("training", f"norm_post_warmup{lr}", f"norm_pre_warmup{lr}"))
    return pairs


#: (question, baseline group, changed group), in the lesson's order.
PAIRS: list[tuple[str, str, str]] = [
    *(("graph", "graph_complete", f"graph_{g}") for g in (
        "window_1", "window_2", "window_4", "global_1", "global_2", "hierarchy_2",
        "random_4", "learned_4")),
    # the same in-degrees as the window, wired otherwise: does where the edges go matter?
    *(("graph", "graph_window_4", f"graph_{g}") for g in ("random_4", "learned_4")),
    ("attention", "graph_complete", "aggregate_enc_mean"),
    ("attention", "graph_window_4", "aggregate_enc_mean_window_4"),
    ("attention", "graph_complete", "aggregate_dec_mean"),
    *(("heads", "graph_complete", f"heads_{h}") for h in (1, 2, 8)),
    ("training", "graph_complete", "scores_unscaled"),
    *_norm_pairs(),
    *(("converged", "default", f"converged_{g}") for g in ("window_1", "window_4", "enc_mean")),
]


def group_runs(group: str, experiments: Path) -> tuple[Path, dict[int, str]]:
    """Where a group's results live, and its recorded runs by training seed."""
    folder = REPRO_RESULTS if group == "default" else experiments
    found = {}
    for path in folder.glob(f"{group}*.json"):
        if re.fullmatch(rf"{re.escape(group)}(_seed\d+)?", path.stem):
            found[json.loads(path.read_text())["config"]["train"]["seed"]] = path.stem
    return folder, dict(sorted(found.items()))


def val_bleu(result: dict, protocol: str) -> float:
    """A run's val BLEU decoded as its test set was."""
    if "val" not in result["scores"]:
        raise DataError(f"{result['name']}: recorded before val was decoded as test is: "
                        "record it again")
    return result["scores"]["val"][protocol]


def decide(pair: tuple[str, str, str], root: Path, experiments: Path) -> dict | None:
    """The comparison of one pair under the module's rule (None until both groups share a
    seed)."""
    question, base_group, changed_group = pair
    base_dir, base = group_runs(base_group, experiments)
    changed_dir, changed = group_runs(changed_group, experiments)
    seeds = [s for s in base if s in changed]
    if not seeds:
        return None
    per_seed = []
    for seed in seeds:
        a, b = load_result(base_dir, base[seed]), load_result(changed_dir, changed[seed])
        protocol = headline(b)
        test = compare((base_dir, base[seed]), (changed_dir, changed[seed]), SPLIT, protocol,
                       root)
        per_seed.append({"seed": seed, "protocol": protocol, "updates": b["train_steps"],
                         "baseline_updates": a["train_steps"],
                         "val_delta": round(val_bleu(b, protocol) - val_bleu(a, protocol), 2),
                         "test": test})
    val = [s["val_delta"] for s in per_seed]
    above = all(s["test"]["ci95"][0] > 0 for s in per_seed)
    below = all(s["test"]["ci95"][1] < 0 for s in per_seed)
    verdict = ("better" if above and mean(val) > 0 else "worse" if below and mean(val) < 0
               else "not decided")
    if (above or below) and len(seeds) < SEEDS_TO_DECIDE:
        verdict = WANTS_SEEDS
    return {"question": question, "baseline": base_group, "changed": changed_group,
            "seeds": seeds, "updates": sorted({s["updates"] for s in per_seed}),
            "val_delta_mean": round(mean(val), 2),
            "val_delta_sd": round(stdev(val), 2) if len(val) > 1 else None,
            "per_seed": per_seed, "verdict": verdict}


def write_verdicts(root: Path, experiments: Path = EXPERIMENT_RESULTS) -> Path:
    """Decide every pair whose runs exist (data under ``root``, the experiments' results in
    ``experiments``); write the verdicts there."""
    out = experiments / VERDICTS
    decided = [d for d in (decide(pair, root, experiments) for pair in PAIRS) if d is not None]
    out.write_text(json.dumps({"rule": __doc__.split("**The rule.** ")[1].split("\n\n")[0]
                               .replace("\n", " "), "split": SPLIT, "verdicts": decided},
                              indent=2) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.essay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    root = Path(os.environ.get(MIRROR_ENV) or DEFAULT_DEST)
    try:
        path = write_verdicts(root, EXPERIMENT_RESULTS)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}", file=sys.stderr)
    for v in json.loads(path.read_text())["verdicts"]:
        if v["verdict"] == WANTS_SEEDS:
            print(f"{v['changed']} against {v['baseline']} wants seeds: test intervals on one "
                  f"side of zero on seeds {v['seeds']}, the rule asks for {SEEDS_TO_DECIDE} of "
                  "both", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
