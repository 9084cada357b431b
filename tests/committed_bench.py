"""The committed ``make bench`` run (``repro/results/bench.json``), which the bench's summary
and report tests read, and that run as if a trained model had been decoded."""

import copy
import json
from pathlib import Path

from repro.bench.summary import (
    BENCH_TARGETS,
    EARLIER_BENCH_TARGETS,
    judge_targets,
    summary_fallbacks,
)

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = json.loads((ROOT / "repro" / "results" / "bench.json").read_text())
TRAINED_MODEL = "runs/default/final.pt"


def with_trained_model(results: dict) -> dict:
    """``results`` with ``TRAINED_MODEL`` decoded: no fallback anywhere, targets judged."""
    out = copy.deepcopy(results)
    out["decoding"]["model"] = TRAINED_MODEL
    fallbacks = out["summary_fallbacks"] = summary_fallbacks(out)
    out["targets"] = judge_targets(out["summary"], BENCH_TARGETS, fallbacks)
    out["old_targets"] = judge_targets(out["summary"], EARLIER_BENCH_TARGETS, fallbacks)
    return out
