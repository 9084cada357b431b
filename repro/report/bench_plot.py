"""``repro/results/bench.png``: six panels of ``bench.json`` (training throughput, the kernel
profile, the DGL-level options, cache against naive decoding, long-sequence time and memory)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ..bench.results import LONG_ATTENTION_KINDS, TRAINING_MODEL_NAMES, BenchResults
from .bench_format import step_ms
from .figures import plt, save_figure


def write_bench_plot(r: BenchResults, path: Path) -> None:
    """Six panels: training throughput, the kernel profile, the DGL-level options, cache vs
    naive decoding, long-sequence time and memory."""
    fig, ax = plt.subplots(2, 3, figsize=(17, 8.5))
    groups = [(size, b) for size in r["train"] for b in ("bucketed", "random")]
    models = TRAINING_MODEL_NAMES
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        values = [r["train"][s][b]["tgt_tokens_per_s"].get(model, 0) for s, b in groups]
        ax[0, 0].bar([g + i * width for g in range(len(groups))], values, width, label=model)
    ax[0, 0].set_xticks([g + width * (len(models) - 1) / 2 for g in range(len(groups))],
                        [f"{s}\n{b}" for s, b in groups])
    ax[0, 0].set_ylabel("target tokens / s")
    ax[0, 0].set_title("training throughput")
    ax[0, 0].legend()

    sizes = list(r["kernels"])
    pieces = list(r["kernels"][sizes[0]]["profile_step_ms"])
    for i, size in enumerate(sizes):
        share = [100 * r["kernels"][size]["profile_step_ms"][p] / step_ms(r, size)
                 for p in pieces]
        ax[0, 1].barh([y + i * 0.4 for y in range(len(pieces))], share, 0.4, label=size)
    ax[0, 1].set_yticks([y + 0.2 for y in range(len(pieces))], pieces)
    ax[0, 1].invert_yaxis()
    ax[0, 1].set_xlabel("% of the graph model's training step")
    ax[0, 1].set_title("attention, kernel by kernel")
    ax[0, 1].legend()

    options = list(r["options"][sizes[0]]["options"])
    for i, size in enumerate(sizes):
        ratios = [r["options"][size]["options"][o]["with_over_without"] for o in options]
        ax[0, 2].barh([y + i * 0.4 for y in range(len(options))], ratios, 0.4, label=size)
    ax[0, 2].axvline(1.0, color="black", linewidth=0.8)
    ax[0, 2].set_yticks([y + 0.2 for y in range(len(options))],
                        [textwrap.fill(o, 30) for o in options])
    ax[0, 2].invert_yaxis()
    ax[0, 2].set_xlabel("time with / without the option")
    ax[0, 2].set_title("DGL-level options (attention of every layer)")
    ax[0, 2].legend()

    c = r["decoding"]["cache_vs_naive"]
    names = ("greedy", "beam")
    for i, (key, label) in enumerate((("incremental_seconds", "incremental cache"),
                                      ("naive_seconds", "naive re-run"))):
        ax[1, 0].bar([n + i * 0.4 for n in range(len(names))], [c[n][key] for n in names], 0.4,
                     label=label)
    ax[1, 0].set_xticks([n + 0.2 for n in range(len(names))], names)
    ax[1, 0].set_ylabel("seconds")
    ax[1, 0].set_title(f"decoding one batch of {c['sentences']} test2016 sources")
    ax[1, 0].legend()

    g = r["long"]
    for kind in LONG_ATTENTION_KINDS:
        lengths = [int(n) for n in g[kind]]
        ax[1, 1].loglog(lengths, [g[kind][str(n)]["ms"] for n in lengths], "o-", label=kind)
        ax[1, 2].loglog(lengths, [max(g[kind][str(n)]["peak_mib"], 1e-2) for n in lengths],
                        "o-", label=kind)
    for a, label in ((ax[1, 1], "ms"), (ax[1, 2], "peak memory growth, MiB")):
        a.set_xscale("log", base=2)
        a.set_xlabel("sequence length")
        a.set_ylabel(label)
        a.legend()
    ax[1, 1].set_title("one long sequence: time (forward)")
    ax[1, 2].set_title("one long sequence: peak memory (forward)")
    fig.suptitle(f"make bench on {r['machine']['cpu']}, {r['threads']} threads")
    save_figure(fig, path, dpi=100)
