"""How ``BENCHMARKS.md`` writes what it shows: tables, shares, target verdicts, and numbers
that rest on a fallback (with its label beside them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..bench.results import BenchResults, TargetVerdict


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A markdown table, then a blank line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def pct(part: float, whole: float) -> str:
    """``part`` as a whole percentage of ``whole``."""
    return f"{part / whole:.0%}"


def step_ms(r: BenchResults, size: str) -> float:
    """The graph model's training step on the profiled batch, in ms."""
    return r["flops"][size]["step_seconds"]["graph"] * 1e3


def labelled(value: float, fallbacks: Mapping[str, str], key: str) -> str:
    """A summary number, with the labels of the fallbacks it rests on (if any) beside it."""
    return f"{value} ({fallbacks[key]})" if key in fallbacks else str(value)


def verdict(t: TargetVerdict, met: str = "yes", missed: str = "**no**") -> str:
    """``met`` or ``missed``, or "not judged (fallback)" for a number that rests on one."""
    if t["met"] is None:
        return "not judged (fallback)"
    return met if t["met"] else missed
