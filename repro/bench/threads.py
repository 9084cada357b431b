"""Part g: training throughput with OpenMP's idle threads spinning (ACTIVE), sleeping (PASSIVE)
or left to OpenMP's default (spin a while, then sleep).

The policy is read once, when the OpenMP runtime starts, so :func:`bench_wait_policy` runs
each policy in its own child process, in turn::

    OMP_WAIT_POLICY=ACTIVE python -m repro.bench.threads --config repro/configs/default.yaml

The child takes one warm-up step on a few pairs, runs ``--batches`` bucketed batches through
the graph and dense models of the config, and prints one JSON object: target tokens/s per
model (median over batches).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

from dgl_transformer.mt.configs import add_overrides_argument, overrides_args

from .corpus import load_size
from .results import WaitPolicyResult, WaitPolicyRun
from .timing import log, median, timed
from .training import bench_step, make_models, warm_up

WAIT_POLICIES = ("ACTIVE", "PASSIVE", "default")  # "default": OMP_WAIT_POLICY unset
PROBED_MODELS = ("graph", "dense")


def bench_wait_policy(config: str, overrides: list[str], rounds: int) -> WaitPolicyResult:
    """Graph and dense throughput under each of :data:`WAIT_POLICIES`, ``rounds`` times: one
    child process each, in turn."""
    runs: list[WaitPolicyRun] = []
    cmd = [sys.executable, "-m", "repro.bench.threads", "--config", config,
           *overrides_args(overrides)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    for _ in range(rounds):
        for policy in WAIT_POLICIES:
            policy_env = env if policy == "default" else {**env, "OMP_WAIT_POLICY": policy}
            done = subprocess.run(cmd, env=policy_env, capture_output=True, text=True, check=True)
            runs.append({**json.loads(done.stdout), "omp_wait_policy": policy})
            log(f"wait policy {policy}: {runs[-1]['tgt_tokens_per_s']}")
    per_policy = {
        policy: {n: round(median([r["tgt_tokens_per_s"][n] for r in runs
                                  if r["omp_wait_policy"] == policy]), 1) for n in PROBED_MODELS}
        for policy in WAIT_POLICIES
    }
    return {
        "runs": runs, "tgt_tokens_per_s": per_policy,
        "passive_over_active": {n: round(per_policy["PASSIVE"][n] / per_policy["ACTIVE"][n], 2)
                                for n in PROBED_MODELS},
    }


def main(argv: list[str] | None = None) -> int:
    """The child: throughput under the policy this process started with."""
    parser = argparse.ArgumentParser(prog="python -m repro.bench.threads", description=__doc__)
    parser.add_argument("--config", required=True)
    add_overrides_argument(parser)
    parser.add_argument("--batches", type=int, default=1)
    args = parser.parse_args(argv)
    size = load_size("probe", args.config, args.set)
    models = make_models(size.model, size.cfg, PROBED_MODELS)
    warm_up(models, size)
    lens_t = size.corpus.lengths()[1]
    rates: dict[str, list[float]] = {name: [] for name in models}
    for batch in size.batches()[: args.batches]:
        src, tgt = size.pairs(batch)
        for name in models:
            seconds = timed(bench_step, *models[name], src, tgt, size.cfg)[0]
            rates[name].append(sum(lens_t[j] for j in batch) / seconds)
    run: WaitPolicyRun = {"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                          "threads": torch.get_num_threads(),
                          "tgt_tokens_per_s": {n: round(median(r), 1) for n, r in rates.items()}}
    json.dump(run, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
