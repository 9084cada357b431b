"""Training throughput under one OpenMP wait policy, run as a child process by ``repro.bench``.

    OMP_WAIT_POLICY=ACTIVE python -m repro.bench_threads --config repro/configs/default.yaml

The policy is read once, when the OpenMP runtime starts, so each policy needs its own process;
the parent alternates them. Runs one warm-up and ``--batches`` measured bucketed batches of the
graph and dense models at the config's size, and prints one JSON object: target tokens/s per
model (median over batches).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from dgl_transformer.batching import make_batches
from dgl_transformer.run_config import load_config

from .bench import load_corpus, make_models, median, model_config, timed, train_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.bench_threads", description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--batches", type=int, default=2)
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.set)
    corpus = load_corpus(cfg)
    models = make_models(model_config(cfg, "default"), ["graph", "dense"])
    batches = make_batches([len(s) for s in corpus.src], [len(t) + 1 for t in corpus.tgt],
                           cfg.train.max_tokens, shuffle=True, seed=cfg.train.seed)
    rates: dict[str, list[float]] = {name: [] for name in models}
    for i, batch in enumerate(batches[: 1 + args.batches]):
        src, tgt = [corpus.src[j] for j in batch], [corpus.tgt[j] for j in batch]
        for name in models:
            seconds = timed(train_step, *models[name], src, tgt, cfg)[0]
            if i:  # the first batch warms up
                rates[name].append(sum(len(t) + 1 for t in tgt) / seconds)
    json.dump({"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
               "threads": torch.get_num_threads(),
               "tgt_tokens_per_s": {n: round(median(r), 1) for n, r in rates.items()}},
              sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
