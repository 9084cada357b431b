"""Training throughput under one OpenMP wait policy, run as a child process by ``repro.bench``.

    OMP_WAIT_POLICY=ACTIVE python -m repro.bench_threads --config repro/configs/default.yaml

The policy is read once, when the OpenMP runtime starts, so each policy needs its own process;
the parent alternates them. After one warm-up step on a few pairs, runs ``--batches`` bucketed
batches through the graph and dense models at the config's size, and prints one JSON object:
target tokens/s per model (median over batches).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from dgl_transformer.mt.configs import add_overrides_argument, load_config

from . import bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.bench_threads", description=__doc__)
    parser.add_argument("--config", required=True)
    add_overrides_argument(parser)
    parser.add_argument("--batches", type=int, default=1)
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.set)
    corpus = bench.load_corpus(cfg)
    models = bench.make_models(bench.model_config(cfg, "default"), ["graph", "dense"])
    warm = bench.WARMUP_PAIRS
    for trainee in models.values():
        bench.bench_step(*trainee, corpus.src[:warm], corpus.tgt[:warm], cfg)
    lens_t = corpus.lengths()[1]
    rates: dict[str, list[float]] = {name: [] for name in models}
    for batch in corpus.batches(cfg)[: args.batches]:
        src, tgt = [corpus.src[j] for j in batch], [corpus.tgt[j] for j in batch]
        for name in models:
            seconds = bench.timed(bench.bench_step, *models[name], src, tgt, cfg)[0]
            rates[name].append(sum(lens_t[j] for j in batch) / seconds)
    json.dump({"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
               "threads": torch.get_num_threads(),
               "tgt_tokens_per_s": {n: round(bench.median(r), 1) for n, r in rates.items()}},
              sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
