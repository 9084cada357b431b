"""The committed ``make bench`` run (``repro/results/bench.json``), which the bench's summary
and report tests read, and that run as if another model (a trained one, or the bench's
fallback) had been decoded."""

import copy
import json
from pathlib import Path

from repro.bench.results import FALLBACK
from repro.bench.summary import (
    BENCH_TARGETS,
    EARLIER_BENCH_TARGETS,
    judge_targets,
    summary_fallbacks,
)

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = json.loads((ROOT / "repro" / "results" / "bench.json").read_text())
TRAINED_MODEL = "runs/default/final.pt"
#: The label the bench gives the model it trains itself when no checkpoint exists.
FALLBACK_MODEL = f"{FALLBACK}trained 100 steps here, no runs/default/final.pt"


def with_decoding_model(results: dict, label: str) -> dict:
    """``results`` as if the model labelled ``label`` had been decoded: its fallbacks and its
    targets judged again, as the bench judges them."""
    out = copy.deepcopy(results)
    out["decoding"]["model"] = label
    fallbacks = out["summary_fallbacks"] = summary_fallbacks(out)
    out["targets"] = judge_targets(out["summary"], BENCH_TARGETS, fallbacks)
    out["old_targets"] = judge_targets(out["summary"], EARLIER_BENCH_TARGETS, fallbacks)
    return out
