"""Training throughput under one OpenMP wait policy, run as a child process by ``repro.bench``.

    OMP_WAIT_POLICY=ACTIVE python -m repro.bench_threads --config repro/configs/default.yaml

The policy is read once, when the OpenMP runtime starts, so each policy needs its own process;
the parent alternates them. After one warm-up step on a few pairs, runs ``--batches`` bucketed
batches through the graph and dense models of the config, and prints one JSON object:
target tokens/s per model (median over batches).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from dgl_transformer.mt.configs import add_overrides_argument

from . import bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.bench_threads", description=__doc__)
    parser.add_argument("--config", required=True)
    add_overrides_argument(parser)
    parser.add_argument("--batches", type=int, default=1)
    args = parser.parse_args(argv)
    size = bench.load_size("probe", args.config, args.set)
    models = bench.make_models(size.model, ["graph", "dense"])
    warm = bench.WARMUP_PAIRS
    for trainee in models.values():
        bench.bench_step(*trainee, size.corpus.src[:warm], size.corpus.tgt[:warm], size.cfg)
    lens_t = size.corpus.lengths()[1]
    rates: dict[str, list[float]] = {name: [] for name in models}
    for batch in size.batches()[: args.batches]:
        src, tgt = size.pairs(batch)
        for name in models:
            seconds = bench.timed(bench.bench_step, *models[name], src, tgt, size.cfg)[0]
            rates[name].append(sum(lens_t[j] for j in batch) / seconds)
    json.dump({"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
               "threads": torch.get_num_threads(),
               "tgt_tokens_per_s": {n: round(bench.median(r), 1) for n, r in rates.items()}},
              sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
