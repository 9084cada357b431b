"""The tables of ``BENCHMARKS.md``, one section per part of the bench, every number read
from ``bench.json``; each numbered section returns its lines."""

from __future__ import annotations

from typing import Any

from ..bench.results import (
    LONG_ATTENTION_KINDS,
    TRAINING_MODEL_NAMES,
    BenchResults,
    DecodingResult,
    FlopsResult,
    LongResult,
    OptionsResult,
    TrainingResult,
    WaitPolicyResult,
    is_fallback,
)
from .bench_format import markdown_table, pct, step_ms


def training_section(train: dict[str, dict[str, TrainingResult]]) -> list[str]:
    """Part a: tokens/s and ratios per size and batching."""
    out = ["## Training throughput (target tokens/s)", ""]
    rows = []
    for size, t in train.items():
        for batching in ("bucketed", "random"):
            b = t[batching]
            tps, over = b["tgt_tokens_per_s"], b["graph_over"]
            rows.append([size, batching, len(b["batches"]),
                         *(tps.get(m, "") for m in TRAINING_MODEL_NAMES),
                         *(over.get(m, "") for m in TRAINING_MODEL_NAMES[1:]),
                         b["dense_padding_fraction"]])
    return out + markdown_table(["size", "batching", "batches", *TRAINING_MODEL_NAMES,
                                 "graph/dense", "graph/udf", "graph/udf_kernel", "dense padding"],
                                rows)


def kernels_section(r: BenchResults) -> list[str]:
    """Part b: each kernel's ms on each graph, per size."""
    out = ["## Attention kernels alone (ms, forward + backward)", ""]
    for size, k in r["kernels"].items():
        names = list(k["sum_ms"])
        b = k["batch"]
        out += [f"`{size}`: {k['heads']} heads of {k['head_dim']} dimensions, the three graphs "
                f"of one bucketed batch ({b['sentences']} pairs, {b['src_tokens']} source and "
                f"{b['tgt_tokens']} target tokens).", ""]
        rows = [[case, g["edges"], *(g["ms"][n] for n in names)]
                for case, g in k["graphs"].items()]
        rows.append(["sum", "", *(k["sum_ms"][n] for n in names)])
        rows.append(["time / graph", "", *(k["graph_over"][n] for n in names)])
        out += markdown_table(["graph", "edges", *names], rows)
        out += [f"The model's attention takes {k['graph_over_sdpa']}x the time of SDPA on the "
                f"padded batch, and does {k['attention_gflop']} GFLOP of useful work at "
                f"{k['attention_gflop_per_s']} GFLOP/s.", ""]
    return out


def profile_section(r: BenchResults) -> list[str]:
    """Part b: each piece of the model's attention, once and per training step."""
    out = ["## Profile of the model's attention, kernel by kernel", ""]
    for size, k in r["kernels"].items():
        step = step_ms(r, size)
        out += [f"`{size}`: the three graphs of the batch above; per training step (each kernel "
                f"once per layer, the graphs built once) against the graph model's step on the "
                f"same batch, {step:.0f} ms.", ""]
        rows = []
        for piece, p in k["profile"].items():
            per_step = k["profile_step_ms"][piece]
            rows.append([piece, p["ms"], p.get("gflop_per_s", ""), per_step,
                         pct(per_step, step)])
        total = sum(k["profile_step_ms"].values())
        rows.append(["all", round(sum(p["ms"] for p in k["profile"].values()), 2), "",
                     round(total, 2), pct(total, step)])
        out += markdown_table(["piece", "ms (three graphs, once)", "GFLOP/s", "ms per step",
                               "share of the step"], rows)
    return out


def options_section(o: dict[str, OptionsResult]) -> list[str]:
    """Part c: each DGL-level option's ratio at every size."""
    sizes = list(o)
    first = o[sizes[0]]
    out = ["## DGL-level options (attention of every layer, with / without the option)", "",
           f"Attention of every layer of a training step, graphs built, forward and backward: "
           f"medians over {first['rounds']} rounds, the model's path "
           + ", ".join(f"{o[s]['ms']['model']} ms (`{s}`)" for s in sizes)
           + ". Below 1: the option is faster.", ""]
    rows = [["DGL's OpenMP threads equal to torch's",
             *(f"{o[s]['threads']['dgl']} = {o[s]['threads']['torch']}" for s in sizes),
             "nothing to set", ""]]
    for option, entry in first["options"].items():
        ratios = [o[s]["options"][option]["with_over_without"] for s in sizes]
        rows.append([option, *ratios, "kept" if entry["kept"] else "not kept",
                     "yes" if all(x < 1 for x in ratios) else "no"])
    return out + markdown_table(["option", *(f"`{s}`" for s in sizes), "in the model",
                                 "faster at every size in this run"], rows) + [
        "DGL and torch load the same OpenMP runtime (libgomp), so `dgl.utils.get_num_threads()` "
        "is torch's count and follows `torch.set_num_threads`: there is nothing to set. What "
        "the others change, read from DGL 1.1.3's CPU kernels: repeating the per-head weights "
        "lets the weighted sums (the SpMM forward and the three of the backward) leave the "
        "broadcast naive loop for libxsmm; building the formats in collate lets the reverse "
        "graphs of the backward share the CSR instead of rebuilding it in every layer; one "
        "graph object per batch builds each graph and its formats once. Chunks of heads do not "
        "shorten the per-edge loops that cost (the SDDMM's dot is as long as a head, the "
        "naive SpMM loops element by element either way) and add calls; int32 indices change "
        "only the index loads; DGL makes strided operands contiguous itself.", ""]


def flops_section(flops: dict[str, FlopsResult]) -> list[str]:
    """Part d: achieved GFLOP/s of a step against plain matmuls."""
    out = ["## Achieved GFLOP/s of a training step", ""]
    for size, f in flops.items():
        b = f["batch"]
        out += [f"`{size}`: one bucketed batch ({b['sentences']} pairs, {b['src_tokens']} source "
                f"and {b['tgt_tokens']} target tokens): {f['useful_gflop']} useful GFLOP "
                f"({f['gemm_gflop']} in {f['gemm_shapes']} matrix-product shapes, "
                f"{f['attention_gflop']} in attention).", ""]
        rows = [[f"{n} training step", f["step_seconds"][n], f["step_gflop_per_s"][n]]
                for n in f["step_seconds"]]
        rows.append(["the step's matrix products alone (torch.mm)",
                     f["same_gemms_alone_seconds"], f["same_gemms_alone_gflop_per_s"]])
        rows.append(["one 2048 x 2048 x 2048 torch.mm", "", f["matmul_2048_gflop_per_s"]])
        out += markdown_table(["what", "seconds", "GFLOP/s"], rows)
    return out


def decoding_section(d: DecodingResult) -> list[str]:
    """Part e: what was decoded (labels), how fast, and cache against naive."""
    s, c = d["settings"], d["cache_vs_naive"]
    stand_in = is_fallback(d["model"])
    out = ["## Decoding test2016 (small model)", "",
           f"Model: {d['model']}; sources: {d['corpus']}."
           + (" Every number of this section comes from that stand-in, not from a trained "
              "model, and counts towards no target." if stand_in else "")
           + f" {d['sentences']} sentences in batches of "
           f"{s['batch_sentences']}, beam {s['beam_size']}, max_len = {s['max_len_a']} x "
           f"longest source + {s['max_len_b']}, length penalty {s['length_penalty']}; the "
           f"references have {d['reference_mean_len']} subwords on average.", ""]
    out += markdown_table(["decoder", "seconds", "sentences/s", "mean output length"], [
        [name, d[name]["seconds"], d[name]["sentences_per_s"], d[name]["mean_output_len"]]
        for name in ("greedy", "beam")
    ])
    stretch = d["beam"]["mean_output_len"] / d["reference_mean_len"]
    out += [f"Decoding time grows with the output length: the beam's outputs are {stretch:.2f}x "
            "as long as the references here"
            + (" (a model trained this briefly repeats itself until max_len, so a fully "
               "trained model decodes faster)"
               if stretch > 1.2 and stand_in else "") + ".", ""]
    out += [f"Incremental cache vs naive re-running, on one batch of {c['sentences']} sources "
            f"(mean source length {c['mean_source_len']}, max_len {c['max_len']}):", ""]
    return out + markdown_table(["decoder", "incremental s", "naive s", "naive / incremental",
                                 "same output"], [
        [name, c[name]["incremental_seconds"], c[name]["naive_seconds"],
         c[name]["incremental_over_naive"], c[name]["same_output_fraction"]]
        for name in ("greedy", "beam")
    ])


def long_section(g: LongResult) -> list[str]:
    """Part f: each kind of attention at each length."""
    out = ["## One long sequence (forward, ms and peak MiB)", "",
           f"{g['heads']} heads of {g['head_dim']} dimensions; the window graph links tokens at "
           f"most {g['window_size']} apart. Graph structure memory in brackets.", ""]
    rows = []
    for n in g["window"]:
        row: list[Any] = [n]
        for kind in LONG_ATTENTION_KINDS:
            m = g[kind][n]
            extra = f" [{m['structure_mib']}]" if m["structure_mib"] else ""
            row.append(f"{m['ms']} ms, {m['peak_mib']} MiB{extra}")
        rows.append(row)
    r = g["ratios_at_longest"]
    return out + markdown_table(["length", *LONG_ATTENTION_KINDS], rows) + [
        f"At length {r['length']}, the window graph is {r['dense_over_window_speed']}x as fast "
        f"as dense and {r['complete_over_window_speed']}x as fast as the complete graph; dense "
        f"(SDPA) needs {r['dense_over_window_memory']}x its peak memory, dense materialised "
        f"{r['dense_materialised_over_window_memory']}x and the complete graph "
        f"{r['complete_over_window_memory']}x.", ""]


def wait_policy_section(w: WaitPolicyResult) -> list[str]:
    """Part g: throughput under each OpenMP wait policy."""
    policies = list(w["tgt_tokens_per_s"])
    out = ["## OpenMP wait policy (target tokens/s, training, small size)", "",
           f"Each run is its own process, the policies ({', '.join(policies)}: "
           "`OMP_WAIT_POLICY` unset) in turn; medians over "
           f"{len(w['runs']) // len(policies)} runs each, on the first bucketed batches.", ""]
    rows = [[policy, *(w["tgt_tokens_per_s"][policy][n] for n in ("graph", "dense"))]
            for policy in policies]
    rows.append(["PASSIVE / ACTIVE", *(w["passive_over_active"][n] for n in ("graph", "dense"))])
    return out + markdown_table(["OMP_WAIT_POLICY", "graph", "dense"], rows)
