"""Part f: one long sequence, time and peak memory of one attention call per kind and length.

:func:`bench_long` runs this module as a child process (a fresh process, so one
measurement's memory cannot hide in another's) and adds the ratios at the longest length::

    python -m repro.bench.long --lengths 128 4096 --heads 4 --head-dim 64 --window 16

Kinds: ``complete`` (graph attention on the complete graph), ``window`` (graph attention on a
window graph, ``|i - j| <= window``), ``dense`` (``F.scaled_dot_product_attention``, the dense
model's kernel) and ``dense_materialised`` (``softmax(q k^T / sqrt(d)) v`` written out, which
stores the ``L x L`` scores). Each call is forward only, without autograd (inference).

Memory is the growth of the process' peak resident set during the call: the kernel's peak
(``VmHWM``) is reset to the current resident set by writing ``5`` to ``/proc/self/clear_refs``
just before the call and read from ``/proc/self/status`` after it. This sees every allocation
that touches memory (torch's, DGL's own, MKL's scratch), which Python's ``tracemalloc`` does
not. The parent starts this process with ``MALLOC_MMAP_THRESHOLD_`` fixed, so freed large
blocks go back to the system at once and one measurement cannot hide in memory an earlier one
left behind. The graph structure (built before the call, kept across calls) is measured the
same way when it is built, and reported apart. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from dgl_transformer.nn import graphs
from dgl_transformer.nn.attention import graph_attention

from .results import LONG_ATTENTION_KINDS, LongMeasurement, LongResult

WINDOW = 16  # window graph: 33 neighbours per token
LONG_LENGTHS = (128, 256, 512, 1024, 2048, 4096)
SLOW_CALL_S = 1.0  # a call slower than this is timed once (after its warm-up), not three times


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def _peak() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_growth(fn: Callable[[], object]) -> tuple[object, int]:
    """``fn()`` and how far the peak resident set rose above the resident set before it."""
    gc.collect()
    base = _rss()
    Path("/proc/self/clear_refs").write_text("5")
    out = fn()
    return out, max(0, _peak() - base)


def _dense(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v)


def _materialised(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
    return torch.softmax(scores, -1) @ v


def measure(kind: str, length: int, heads: int, head_dim: int, window: int) -> LongMeasurement:
    """Median time (ms) and peak memory growth (MiB) of one call of ``kind`` at ``length``."""
    torch.manual_seed(0)
    packed = [torch.randn(length, heads, head_dim) for _ in range(3)]  # graph layout
    structure = 0
    if kind in ("complete", "window"):
        build = (
            (lambda: graphs.complete_graph([length])) if kind == "complete"
            else (lambda: graphs.window_graph([length], window))
        )
        graph, structure = peak_growth(build)
        q, k, v = packed

        def call() -> torch.Tensor:
            return graph_attention(graph, q, k, v)

        edges = graph.num_edges()
    else:
        q, k, v = (t.transpose(0, 1)[None].contiguous() for t in packed)  # [1, H, L, dk]
        kernel = _dense if kind == "dense" else _materialised

        def call() -> torch.Tensor:
            return kernel(q, k, v)

        edges = length * length
    with torch.no_grad():
        started = time.perf_counter()
        _, first_growth = peak_growth(call)  # warm-up; also builds the graph's sparse formats
        first = time.perf_counter() - started
        _, growth = peak_growth(call)
        times = []
        for _ in range(1 if first > SLOW_CALL_S else 3):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
    return {
        "ms": round(statistics.median(times) * 1e3, 2),
        "peak_mib": round(growth / 2**20, 2),
        "first_call_peak_mib": round(first_growth / 2**20, 2),
        "structure_mib": round(structure / 2**20, 2),
        "edges": edges,
        "repeats": len(times),
    }


def bench_long(heads: int, head_dim: int, lengths: Sequence[int]) -> LongResult:
    """Every kind at every length, measured in a child process (see the module docstring),
    and the ratios between the kinds at the longest length."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    cmd = [sys.executable, "-m", "repro.bench.long", "--lengths", *map(str, lengths),
           "--heads", str(heads), "--head-dim", str(head_dim), "--window", str(WINDOW)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    kinds: dict[str, dict[str, LongMeasurement]] = json.loads(done.stdout)
    top = str(max(lengths))
    at = {kind: kinds[kind][top] for kind in LONG_ATTENTION_KINDS}
    return {
        "heads": heads, "head_dim": head_dim, "window_size": WINDOW,
        "mode": "forward only, no autograd",
        "complete": kinds["complete"], "window": kinds["window"], "dense": kinds["dense"],
        "dense_materialised": kinds["dense_materialised"],
        "ratios_at_longest": {
            "length": int(top),
            "dense_over_window_speed": round(at["dense"]["ms"] / at["window"]["ms"], 2),
            "complete_over_window_speed": round(at["complete"]["ms"] / at["window"]["ms"], 2),
            "dense_over_window_memory": round(
                at["dense"]["peak_mib"] / at["window"]["peak_mib"], 2),
            "dense_materialised_over_window_memory": round(
                at["dense_materialised"]["peak_mib"] / at["window"]["peak_mib"], 2),
            "complete_over_window_memory": round(
                at["complete"]["peak_mib"] / at["window"]["peak_mib"], 2),
        },
    }


def main(argv: list[str] | None = None) -> int:
    """The child: every kind at every length, printed as one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m repro.bench.long", description=__doc__)
    parser.add_argument("--lengths", type=int, nargs="+", required=True)
    parser.add_argument("--kinds", nargs="+", default=list(LONG_ATTENTION_KINDS),
                        choices=LONG_ATTENTION_KINDS)
    parser.add_argument("--heads", type=int, required=True)
    parser.add_argument("--head-dim", type=int, required=True)
    parser.add_argument("--window", type=int, required=True)
    args = parser.parse_args(argv)
    for kind in args.kinds:  # one-time allocations (DGL's, MKL's) are not the first length's
        measure(kind, 16, args.heads, args.head_dim, args.window)
    out = {
        kind: {
            str(n): measure(kind, n, args.heads, args.head_dim, args.window)
            for n in args.lengths
        }
        for kind in args.kinds
    }
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
