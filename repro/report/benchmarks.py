"""``BENCHMARKS.md`` from ``repro/results/bench.json``: the page, section by section.

Every number in the page comes from the JSON a run of ``make bench`` wrote; only the prose
that explains the method is fixed here. A number that rests on a fallback is printed with the
fallback's label beside it. ``python -m repro.bench --report-only`` (or ``python -m
repro.report benchmarks``) regenerates the page and ``bench.png`` from an existing JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..bench.results import BenchResults
from . import viewer
from .bench_findings import earlier_targets_section, optimisations_section, unmet_targets_section
from .bench_format import labelled, markdown_table, verdict
from .bench_plot import write_bench_plot
from .bench_tables import (
    decoding_section,
    flops_section,
    kernels_section,
    long_section,
    options_section,
    profile_section,
    training_section,
    wait_policy_section,
)
from .markers import markers, write_section

BENCH_JSON = Path("repro/results/bench.json")
BENCH_PLOT = Path("repro/results/bench.png")
BENCHMARKS_PAGE = Path("BENCHMARKS.md")

BENCH_METHOD = """\
## How it is measured

* **Sizes.** `small` is the repro's model (`--config`, `repro/configs/default.yaml`: d_model
  128, 4 heads, FFN 256, 4+4 layers, cased raw text, joint 8k BPE); `d256` the model of the
  earlier lowercased runs (`--d256-config`, `repro/configs/lowercase.yaml`: d_model 256,
  4 heads, FFN 1024, 3+3 layers, lowercased tokenised text, joint 8k BPE). Each size reads its
  own data variant and token budget from its config. Decoding, the long sequences and the
  wait-policy probe use the small size. Without a usable copy of Multi30k a size runs on
  synthetic ids with Multi30k's length distribution; its data label then starts with
  "fallback:".
* **One process, same batches.** Batches are drawn with the project's `make_batches` (token
  budget `train.max_tokens` of the config; *bucketed* = length-sorted buckets as in training,
  *random* = random pairs). On each batch the models take one training step in turn
  (collate with graph construction, forward, label-smoothed loss, backward, gradient
  clipping, Adam), the order rotating from batch to batch, after one warm-up step each on a
  few pairs (optimizer state, first-call set-up). Throughput is target tokens (with EOS) per
  second, the median over batches; a ratio "graph over X" is the median of the per-batch
  ratios X time / graph time (above 1: the graph model is faster), so a change in the
  machine's load between batches cancels out. The models start from identical weights.
* **Models.** `graph` is `GraphTransformer` (packed batches, no padding, DGL built-in kernels
  called through `dgl.ops`); `dense` is `DenseTransformer` (the same parameters, batches padded
  to the longest sentence, `F.scaled_dot_product_attention`; its linear layers and output
  projection also run on padding); `udf` is the same network computed the way DGL's original
  Transformer tutorial did it (`repro/bench/tutorial.py`): one graph per batch holding all
  three edge sets, each attention run on its range of edge ids with `send_and_recv`; token
  states kept in the graph's node frame and read and written by node id around every
  sub-layer; separate q, k and v projections; scores from a Python edge function, a separate
  exp pass, then sums of `v * exp` and `exp` divided. `udf_kernel` keeps `graph`'s data flow
  and swaps only the attention kernel for the tutorial's (`repro/bench/variants.py`), which
  separates what the kernel costs from what the data flow costs. All four start from the same
  weights and compute the same function (tests/test_bench.py). The tutorial-style models run
  at the small size only.
* **Attention kernels alone** run forward and backward on the three graphs of the first
  bucketed batch, each kernel once per round, the order rotating, medians. `graph` is the
  model's kernel; `dgl autograd` the same three DGL calls differentiated by DGL itself;
  `frames` the built-in kernels called the message-passing way (inputs set on the graph's
  node frames, results read from its frames); `gather/scatter (torch)` plain PyTorch indexing
  along the edge list, a comparison point only; `dense (SDPA)` the dense model's kernel on the
  padded batch with its masks. The attention GFLOP/s count 12 x edges x d_model (scores and
  weighted sums, forward and backward) over the three graphs, divided by `graph`'s time.
* **Kernel profile.** Each piece of the model's attention alone on the same graphs: building
  the graph from the lengths, building its CSR and CSC (on fresh graphs), SDDMM (the scores,
  `v_dot_u`), edge softmax and SpMM (the weighted sum), each forward and backward (from the
  forward's output, with a random upstream gradient). FLOPs per edge and head: SDDMM and SpMM
  2 d forward and 4 d backward (d: the head size), edge softmax 4 each way. "Per step" counts
  each kernel once per layer that attends along the graph, and the graphs once; the share is
  of the graph model's training step on the same batch (GFLOP/s table).
* **DGL-level options** time the attention of every layer of a training step on that batch:
  the three graphs built from the lengths, every layer's attention forward along them (`q`,
  `k`, `v` strided views of one fused projection, as in the model), one backward. The model's
  path runs against runs that differ from it in one option each, in rotating order; the ratio
  is the median per-round ratio of the time with the option over the time without it (below
  1: the option is faster).
* **GFLOP/s.** Useful FLOPs of one training step are the matrix products the graph model runs
  (counted by shape while it runs; no padding) plus the attention's scores and weighted sums
  over every edge (forward and backward). They are divided by each model's step time, and
  compared with plain `torch.mm` calls of exactly the step's matrix shapes, timed alone, and
  with one square matrix product.
* **Decoding** translates test2016 (source side) with `dgl_transformer.mt.generate.translate_ids`,
  the repro's decoding path and settings (length-sorted batches, `max_len = a * longest + b`,
  GNMT length penalty, the config's beam), with the incremental cache. The cache is then
  compared with naive decoding on the middle batch of that batching (the incremental time is
  the mean of a run before and a run after the naive one): naive re-runs the whole decoder
  over every hypothesis' full prefix at every step (the encoder still runs once, and the
  output projection only on the last position), for greedy and for beam search alike. Both
  use the same beam-search code; the fraction of identical outputs is reported. Decoding time
  grows with the output length, so the mean output length is reported beside the references'.
  The model is the small config's trained `final.pt` (or `--checkpoint`). Without one, or
  without Multi30k to decode, the bench trains a stand-in for `--train-steps` updates; its
  label, which starts with "fallback:", is printed beside every number that rests on it, and
  no target is judged on such a number (`--require-trained` refuses to run instead).
* **One long sequence** (child process `repro.bench.long`, forward only, no autograd): time is
  the median of three calls after a warm-up (one call when a call takes over a second); memory
  is how far the process' peak resident set (`VmHWM`, reset through `/proc/self/clear_refs`
  just before the call) rose above its resident set before the call, with glibc's mmap
  threshold fixed so freed blocks go back to the system. This sees DGL's and MKL's allocations,
  which `tracemalloc` cannot. The graph's own structure is measured when it is built and
  reported apart. `dense` is `F.scaled_dot_product_attention`, which on CPU runs a fused
  (flash-style) kernel that never stores the full score matrix; `dense materialised` writes
  `softmax(q k^T / sqrt(d)) v` out and stores it.
* **Threads.** `OMP_NUM_THREADS` comes from the Makefile; the bench sets
  `OMP_WAIT_POLICY=PASSIVE` unless the environment sets it, so that idle OpenMP threads sleep
  instead of spinning: on a machine shared with other processes, spinning threads take the
  cores that working threads need. Absolute times on a shared machine move with its load
  (recorded below); compare ratios measured in the same run.
"""


def read_bench_results(path: Path) -> BenchResults:
    """The results a run of ``make bench`` wrote; a one-line error if there are none."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SystemExit(f"error: {path}: no readable bench results ({err})") from None


def update_benchmarks(
    results: BenchResults, page: Path = BENCHMARKS_PAGE, plot: Path = BENCH_PLOT
) -> list[Path]:
    """Write the plot and the page from ``results``; the paths written."""
    write_bench_plot(results, plot)
    page.write_text(markdown(results), encoding="utf-8")
    return [plot, page]


def _model_line(m: dict[str, Any]) -> str:
    return (f"d_model {m['d_model']}, {m['n_heads']} heads, d_ff {m['d_ff']}, "
            f"{m['n_enc_layers']}+{m['n_dec_layers']} layers, vocabulary {m['tgt_vocab']}, "
            f"shared embeddings {m['share_embeddings']}")


def run_section(r: BenchResults) -> list[str]:
    """The title, the machine and the run, and the two sizes with the data each read."""
    mach = r["machine"]
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`OMP_NUM_THREADS=2 python -m repro.bench`) from "
        "`repro/results/bench.json`; `python -m repro.bench --report-only` rewrites this page "
        "and the plot from that file. Do not edit by hand.",
        "",
        "## Machine and run",
        "",
        f"* CPU: {mach['cpu']}, {mach['cores']} cores; {r['threads']} threads (DGL's OpenMP "
        f"threads: {r['dgl_threads']}), OMP_WAIT_POLICY={r['omp_wait_policy']}",
        f"* torch {r['torch_version']}, DGL {r['dgl_version']}, Python {mach['python']}, "
        f"{mach['platform']}",
        f"* commit {r['git_commit']}",
        f"* load average (1, 5, 15 min) at start {r['load_average_start']}, at end "
        f"{r['load_average_end']}; the bench took {r['wall_seconds']} s",
        "",
    ]
    return out + markdown_table(["size", "config", "model", "data", "batches of at most"], [
        [f"`{name}`", f"`{s['config']}`", _model_line(s["model"]), s["data"],
         f"{s['max_tokens']} tokens"] for name, s in r["sizes"].items()])


def summary_section(r: BenchResults) -> list[str]:
    """The targets, then the measurements without one; each value with its fallbacks' labels."""
    targets, old, fallbacks = r["targets"], r["old_targets"], r["summary_fallbacks"]
    out = ["![benchmark plots](repro/results/bench.png)", "", "## Summary", ""]
    out += markdown_table(["measure", "value", "target", "met"], [
        [f"`{k}`", labelled(r["summary"][k], fallbacks, k), t["target"], verdict(t)]
        for k, t in targets.items()])
    out += ["Measurements without a target (earlier targets that a CPU does not reliably meet "
            "are explained under \"Earlier targets, now measurements\"):", ""]
    return out + markdown_table(["measurement", "value", "earlier target", "met in this run"], [
        [f"`{k}`", labelled(v, fallbacks, k), old[k]["target"] if k in old else "",
         verdict(old[k], "yes", "no") if k in old else ""]
        for k, v in r["summary"].items() if k not in targets])


def markdown(r: BenchResults) -> str:
    """The whole page."""
    out = run_section(r) + summary_section(r)
    out += training_section(r["train"]) + kernels_section(r) + profile_section(r)
    out += options_section(r["options"]) + flops_section(r["flops"])
    out += decoding_section(r["decoding"]) + long_section(r["long"])
    out += optimisations_section(r) + unmet_targets_section(r) + earlier_targets_section(r)
    if "wait_policy" in r:
        out += wait_policy_section(r["wait_policy"])
    out += ["## Anchors (not measured by this run)", ""]
    out += [f"* {a['value']} target tokens/s: {a['source']}" for a in r["anchors"].values()]
    return "\n".join(out + ["", BENCH_METHOD] + viewer_block())


def viewer_block() -> list[str]:
    """The attention viewer's section (``repro/report/viewer.py``), between its markers, from
    its own result file; nothing if that was never measured."""
    results = viewer.read_results()
    if results is None:
        return []
    begin, end = markers(viewer.SECTION)
    return [begin, viewer.section(results), end, ""]


def update_viewer_section(page: Path = BENCHMARKS_PAGE) -> None:
    """Rewrite only the viewer's section of ``page`` from its result file."""
    results = viewer.read_results()
    if results is None:
        raise SystemExit(f"error: {viewer.VIEWER_JSON}: no viewer measurement "
                         "(python -m repro.report.viewer)")
    write_section(page, viewer.SECTION, viewer.section(results))
