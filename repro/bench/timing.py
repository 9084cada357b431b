"""How the bench times things: wall seconds of a call, calls taking turns, medians, a log."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


def log(message: str) -> None:
    """One timestamped progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    """The median, as a plain float."""
    return float(statistics.median(values))


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Wall seconds of ``fn(*args, **kwargs)``, and its result."""
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - started, out


def rotated(names: list[str], turn: int) -> list[str]:
    """``names`` starting from number ``turn`` (modulo their count), so that who goes first
    changes from one turn to the next."""
    start = turn % len(names)
    return names[start:] + names[:start]


def take_turns(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds of every call: each function once per round, the order rotating, after one
    warm-up call each."""
    for fn in fns.values():
        fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(rounds):
        for name in rotated(list(fns), i):
            seconds[name].append(timed(fns[name])[0])
    return seconds
