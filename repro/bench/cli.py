"""``python -m repro.bench``: every part in turn, then ``bench.json``, the plot and the page."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import dgl
import torch

from dgl_transformer.mt.checkpoint import CheckpointError
from dgl_transformer.mt.configs import ConfigError, add_overrides_argument, load_config

from ..report.benchmarks import BENCH_JSON, read_bench_results, update_benchmarks
from ..run import git_commit, machine
from . import __doc__ as PARTS
from .corpus import load_size
from .decoding import bench_decoding, decoding_model, final_checkpoint, trained_checkpoint
from .flops import bench_flops
from .kernels import bench_kernels
from .long import LONG_LENGTHS, bench_long
from .options import bench_options
from .results import BenchResults, RunCircumstances, is_fallback, portable, portable_command
from .summary import (
    BENCH_TARGETS,
    BENCH_THROUGHPUT_ANCHORS,
    EARLIER_BENCH_TARGETS,
    judge_targets,
    summarise,
    summary_fallbacks,
)
from .threads import bench_wait_policy
from .timing import log
from .training import SIZE_MODELS, bench_training


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; a one-line error for a ``--checkpoint`` that does not exist."""
    parser = argparse.ArgumentParser(prog="python -m repro.bench", description=PARTS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="repro/configs/default.yaml",
                        help="the small size: model, data and decoding settings")
    parser.add_argument("--d256-config", default="repro/configs/lowercase.yaml",
                        help="the d_model 256 size")
    add_overrides_argument(parser)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="model for the decoding part (default: the small config's run)")
    parser.add_argument("--require-trained", action="store_true",
                        help="refuse to run without a trained model and Multi30k to decode "
                             "(instead of training a fallback model for --train-steps)")
    parser.add_argument("--train-steps", type=int, default=100,
                        help="updates to train a fallback decoding model when no trained "
                             "checkpoint exists")
    parser.add_argument("--repeats", type=int, default=4,
                        help="measured batches per batching and size")
    parser.add_argument("--kernel-repeats", type=int, default=7,
                        help="timed calls per kernel (parts b and c)")
    parser.add_argument("--long-lengths", type=int, nargs="+", default=list(LONG_LENGTHS))
    parser.add_argument("--policy-rounds", type=int, default=2,
                        help="rounds of the OpenMP wait-policy probe (0: skip)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite bench.png and BENCHMARKS.md from bench.json")
    args = parser.parse_args(argv)
    if args.checkpoint is not None and not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    return args


def check_trained_model(args: argparse.Namespace) -> None:
    """With ``--require-trained``: a one-line error, before anything runs, if there is no
    trained model to decode."""
    if not args.require_trained:
        return
    cfg = load_config(args.config, args.set)
    if trained_checkpoint(args.checkpoint, cfg) is None:
        raise SystemExit(f"error: --require-trained: no trained model "
                         f"({portable(final_checkpoint(cfg))} is missing; run `make repro` "
                         "or pass --checkpoint)")


def circumstances(command: str, overrides: list[str]) -> RunCircumstances:
    """The run's command, code, machine and load, as it starts."""
    return {
        "command": command, "overrides": overrides, "git_commit": git_commit(),
        "machine": machine(), "threads": torch.get_num_threads(),
        "dgl_threads": dgl.utils.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "dgl_version": dgl.__version__, "torch_version": torch.__version__,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "anchors": BENCH_THROUGHPUT_ANCHORS,
    }


def run_bench(args: argparse.Namespace, command: str) -> BenchResults:
    """Every part, in the order of the package's docstring; the whole result."""
    check_trained_model(args)
    started = time.time()
    header = circumstances(command, args.set)
    sizes = {name: load_size(name, config, args.set)
             for name, config in (("small", args.config), ("d256", args.d256_config))}
    small = sizes["small"]
    if args.require_trained and is_fallback(small.corpus.test_source):
        raise SystemExit("error: --require-trained: no Multi30k to decode test2016 with the "
                         "trained model (set MULTI30K_DIR or run `make data`)")
    train = {name: bench_training(size, SIZE_MODELS[name], args.repeats)
             for name, size in sizes.items()}
    profiled = {name: size.batches()[0] for name, size in sizes.items()}  # parts b to d
    kernels = {name: bench_kernels(size, profiled[name], args.kernel_repeats)
               for name, size in sizes.items()}
    log("kernels: " + ", ".join(f"{n} {k['sum_ms']}" for n, k in kernels.items()))
    options = {name: bench_options(size, profiled[name], args.kernel_repeats)
               for name, size in sizes.items()}
    log("options: " + ", ".join(f"{n} {o['ms']}" for n, o in options.items()))
    flops = {name: bench_flops(size, profiled[name], 3) for name, size in sizes.items()}
    decoding = bench_decoding(small.cfg, decoding_model(small, args.checkpoint, args.train_steps))
    long = bench_long(small.model.n_heads, small.model.head_dim, args.long_lengths)
    wait = ({"wait_policy": bench_wait_policy(args.config, args.set, args.policy_rounds)}
            if args.policy_rounds else {})
    parts = {"sizes": {name: size.describe() for name, size in sizes.items()}, "train": train,
             "kernels": kernels, "options": options, "flops": flops, "decoding": decoding,
             "long": long, **wait}
    summary, fallbacks = summarise(parts), summary_fallbacks(parts)
    return {
        **header, **parts,
        "summary": summary, "summary_fallbacks": fallbacks,
        "targets": judge_targets(summary, BENCH_TARGETS, fallbacks),
        "old_targets": judge_targets(summary, EARLIER_BENCH_TARGETS, fallbacks),
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "wall_seconds": round(time.time() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the bench (or only rewrite its report) and write its files."""
    args = parse_args(argv)
    if args.report_only:
        update_benchmarks(read_bench_results(BENCH_JSON))
        return 0
    command = portable_command(["python -m repro.bench",
                                *(sys.argv[1:] if argv is None else argv)])
    try:
        results = run_bench(args, command)
    except (ConfigError, CheckpointError) as err:
        raise SystemExit(f"error: {err}") from None
    BENCH_JSON.parent.mkdir(parents=True, exist_ok=True)
    BENCH_JSON.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    written = update_benchmarks(results)
    log(f"wrote {BENCH_JSON}, {', '.join(map(str, written))} in "
        f"{results['wall_seconds'] / 60:.1f} min: {json.dumps(results['summary'])}")
    return 0
