"""The benchmark's variants compute what they claim (correctness only, never timings)."""

from pathlib import Path

import pytest
import torch

from dgl_transformer import GraphTransformer, TransformerConfig
from dgl_transformer.nn import graphs
from dgl_transformer.nn.attention import graph_attention
from dgl_transformer.nn.decoding import beam_search
from repro.bench import attention_flops, summarise_training, targets_met
from repro.bench_kernels import UdfGraphTransformer, frames_attention, udf_attention
from repro.bench_long import measure
from repro.bench_report import markdown
from repro.bench_tutorial import TutorialStyleTransformer, batch_graph

SRC, TGT = [3, 1, 7, 12], [5, 2, 1, 9]
GRAPHS = {
    "complete": (graphs.complete_graph(SRC), sum(SRC), sum(SRC)),
    "causal": (graphs.causal_graph(TGT), sum(TGT), sum(TGT)),
    "cross": (graphs.cross_graph(SRC, TGT), sum(TGT), sum(SRC)),
    "window": (graphs.window_graph(SRC, 2), sum(SRC), sum(SRC)),
}


def small_config(**overrides) -> TransformerConfig:
    base = dict(src_vocab=40, tgt_vocab=40, d_model=32, n_heads=4, d_ff=48, n_enc_layers=2,
                n_dec_layers=2, dropout=0.0, max_len=40, share_embeddings=True)
    return TransformerConfig(**{**base, **overrides})


@pytest.mark.parametrize("kernel", [frames_attention, udf_attention])
@pytest.mark.parametrize("name", list(GRAPHS))
def test_kernels_equal_graph_attention(kernel, name):
    graph, n_dst, n_src = GRAPHS[name]
    q = torch.randn(n_dst, 4, 8, requires_grad=True)  # scaled scores stay inside [-5, 5]
    k, v = torch.randn(n_src, 4, 8, requires_grad=True), torch.randn(n_src, 4, 8)
    out, weights = kernel(graph, q, k, v, return_weights=True)
    ref, ref_weights = graph_attention(graph, q, k, v, return_weights=True)
    assert torch.allclose(out, ref, atol=1e-5) and torch.allclose(weights, ref_weights, atol=1e-6)
    grads = torch.autograd.grad(out.sum(), (q, k))
    ref_grads = torch.autograd.grad(ref.sum(), (q, k))
    for g, r in zip(grads, ref_grads, strict=True):
        assert torch.allclose(g, r, atol=1e-5)


@pytest.mark.parametrize("variant", [UdfGraphTransformer, TutorialStyleTransformer])
def test_bench_variants_equal_graph_model(variant):
    """Same logits and the same gradient for every parameter, so the bench compares only how
    the same function is computed."""
    cfg = small_config(share_embeddings=False)
    torch.manual_seed(0)
    graph_model = GraphTransformer(cfg)
    other = variant(cfg)
    other.load_state_dict(graph_model.state_dict())
    src = [torch.randint(4, 40, (n,)) for n in SRC]
    tgt = [torch.randint(4, 40, (n,)) for n in TGT]
    ref, out = graph_model(src, tgt), other(src, tgt)
    assert torch.allclose(ref, out, atol=1e-5)
    (ref**2).sum().backward()
    (out**2).sum().backward()
    named = dict(other.named_parameters())
    for name, p in graph_model.named_parameters():
        assert torch.allclose(p.grad, named[name].grad, atol=1e-4), name


def test_tutorial_batch_graph_holds_the_three_edge_sets():
    g, eids, enc, dec = batch_graph(torch.tensor(SRC), torch.tensor(TGT))
    assert g.num_nodes() == sum(SRC) + sum(TGT) and enc.tolist() == list(range(sum(SRC)))
    sizes = {"enc": sum(n * n for n in SRC), "dec": sum(n * (n + 1) // 2 for n in TGT),
             "cross": sum(s * t for s, t in zip(SRC, TGT, strict=True))}
    assert {k: len(v) for k, v in eids.items()} == sizes
    u, v = g.find_edges(eids["cross"])
    assert bool((u < sum(SRC)).all()) and bool((v >= sum(SRC)).all())
    u, v = g.find_edges(eids["dec"])
    assert bool((u <= v).all()) and bool((u >= sum(SRC)).all())


def test_naive_beam_search_equals_cached():
    torch.manual_seed(1)
    model = GraphTransformer(small_config(dropout=0.1)).eval()
    src = [torch.randint(4, 40, (n,)) for n in (1, 6, 13, 3)]
    cached = beam_search(model, src, 3, 12, incremental=True)
    naive = beam_search(model, src, 3, 12, incremental=False)
    assert [c.tolist() for c in cached] == [n.tolist() for n in naive]


def test_attention_flops_counts_every_edge():
    cfg = small_config(n_enc_layers=1, n_dec_layers=1)
    # encoder 2*2 + 3*3 edges, decoder causal 3 + 1, cross 2*2 + 3*1
    edges = 13 + 4 + 7
    assert attention_flops(cfg, [2, 3], [2, 1]) == 3 * 4 * edges * cfg.d_model


def test_training_summary_pairs_batches():
    rows = [
        {"src_tokens": 10, "tgt_tokens": 100, "dense_positions": 220,
         "seconds": {"graph": 1.0, "dense": 2.0, "udf": 4.0}},
        {"src_tokens": 10, "tgt_tokens": 100, "dense_positions": 220,
         "seconds": {"graph": 2.0, "dense": 3.0, "udf": 5.0}},
        {"src_tokens": 10, "tgt_tokens": 100, "dense_positions": 220,
         "seconds": {"graph": 1.0, "dense": 1.0, "udf": 3.0}},
    ]
    out = summarise_training(rows)
    assert out["graph_over"] == {"dense": 1.5, "udf": 3.0}
    assert out["tgt_tokens_per_s"]["graph"] == 100.0
    assert out["dense_padding_fraction"] == 0.5


def test_targets_are_judged_in_their_direction():
    summary = {
        "train_graph_over_dense_random": 1.0, "train_graph_over_dense_bucketed": 0.8,
        "train_graph_over_udf": 3.5, "beam4_incremental_over_naive": 5.0,
        "test2016_beam4_seconds": 61.0, "len4096_window_over_dense_speed": 3.0,
        "len4096_dense_over_window_memory": 10.0,
    }
    met = {k: v["met"] for k, v in targets_met(summary).items()}
    assert [k for k, ok in met.items() if not ok] == [
        "train_graph_over_dense_bucketed", "test2016_beam4_seconds"]


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("kind", ["complete", "window", "dense", "dense_materialised"])
def test_long_sequence_measure_runs(kind):
    m = measure(kind, 64, 2, 8, 4)
    assert m["ms"] > 0 and m["peak_mib"] >= 0 and m["edges"] == (
        64 * 64 if kind != "window" else graphs.window_graph([64], 4).num_edges())


def test_markdown_renders_every_number_from_the_results():
    train_part = {"batches": [{}], "tgt_tokens_per_s": {"graph": 11.5, "dense": 12.5, "udf": 13.5,
                                                        "udf_kernel": 14.5},
                  "graph_over": {"dense": 1.25, "udf": 3.25, "udf_kernel": 2.75},
                  "dense_padding_fraction": 0.125}
    model = small_config().to_dict()
    long_one = {"ms": 7.5, "peak_mib": 8.5, "structure_mib": 0.0}
    results = {
        "machine": {"cpu": "cpu", "cores": 2, "python": "3", "platform": "linux"},
        "threads": 2, "omp_wait_policy": "PASSIVE", "torch_version": "t", "dgl_version": "d",
        "git_commit": "abc", "config": "c.yaml", "data": {"source": "synthetic"},
        "load_average_start": [1], "load_average_end": [2], "wall_seconds": 99.5,
        "summary": {"train_graph_over_udf": 3.25},
        "targets": {"train_graph_over_udf": {"target": ">= 3.0", "met": True}},
        "train": {"default": {"model": model, "max_tokens": 600, "bucketed": train_part,
                              "random": train_part}},
        "kernels": {"heads": 4, "head_dim": 8, "sum_ms": {"graph (dgl.ops)": 1.0},
                    "graph_over": {"graph (dgl.ops)": 1.0, "frames": 1.125, "udf": 1.375},
                    **{c: {"edges": 5, "ms": {"graph (dgl.ops)": 0.5}}
                       for c in ("encoder", "decoder", "cross")}},
        "flops": {"batch": {"sentences": 1, "src_tokens": 2, "tgt_tokens": 3},
                  "useful_gflop": 4.5, "gemm_gflop": 4.25, "gemm_shapes": 6,
                  "attention_gflop": 0.25, "step_seconds": {"graph": 0.75},
                  "step_gflop_per_s": {"graph": 6.0}, "same_gemms_alone_seconds": 0.5,
                  "same_gemms_alone_gflop_per_s": 8.5, "matmul_2048_gflop_per_s": 9.5},
        "decoding": {"model": "m", "sentences": 10, "settings": {
            "batch_sentences": 5, "max_len_a": 1.5, "max_len_b": 7, "length_penalty": 0.5},
            "greedy": {"seconds": 1.5, "sentences_per_s": 6.5, "mean_output_len": 4.5},
            "beam4": {"seconds": 2.5, "sentences_per_s": 4.0, "mean_output_len": 5.5},
            "cache_vs_naive": {"sentences": 5, "mean_source_len": 3.5, "max_len": 12, **{
                n: {"incremental_seconds": 1.0, "naive_seconds": 5.5,
                    "incremental_over_naive": 5.5, "same_output_fraction": 1.0}
                for n in ("greedy", "beam4")}}},
        "long": {"heads": 4, "head_dim": 8, "window_size": 3, "ratios_at_longest": {
            "length": 64, "dense_over_window_speed": 3.5, "complete_over_window_speed": 1.5,
            "dense_over_window_memory": 0.5, "dense_materialised_over_window_memory": 2.5,
            "complete_over_window_memory": 4.5}, **{
            k: {"64": long_one} for k in ("complete", "window", "dense", "dense_materialised")}},
        "anchors": {"a": {"value": 406, "source": "elsewhere"}},
    }
    page = markdown(results)
    for number in ("3.25", "11.5", "99.5", "7.5 ms, 8.5 MiB", "9.5", "5.5", "406"):
        assert number in page
    assert "Targets not met" not in page  # every target met in this result
    assert "takes 1.375x the time of ours" in page and "`frames` takes 1.125x" in page
    assert "take 2.75x (bucketed)" in page and "3.25x (bucketed)" in page

    results["targets"] = {k: {"target": ">= 10", "met": False}
                          for k in ("train_graph_over_udf", "len4096_dense_over_window_memory",
                                    "beam4_incremental_over_naive")}
    page = markdown(results)
    assert "Targets not met" in page
    # headroom 8.5 / 6.0 = 1.42; bound 3.25 * 1.42 = 4.60; output 64 x 4 x 8 floats = 0.0 MiB
    assert "only 1.42x faster" in page and "about 4.60" in page and "64 the dense path" in page
    assert "naive decoder takes 5.5 s and the cache 1.0 s" in page


def test_wait_policy_probe_runs_each_policy(monkeypatch):
    """Children get the policy in their environment (none for "default"), and `--set` only
    with overrides (argparse rejects an empty one)."""
    import json
    import subprocess
    from types import SimpleNamespace

    from repro.bench import bench_wait_policy

    seen = []

    def fake_run(cmd, env, capture_output, text, check):
        seen.append((cmd, env.get("OMP_WAIT_POLICY")))
        rate = {"ACTIVE": 1.0, "PASSIVE": 2.0, None: 4.0}[env.get("OMP_WAIT_POLICY")]
        out = {"omp_wait_policy": env.get("OMP_WAIT_POLICY"),
               "tgt_tokens_per_s": {"graph": rate, "dense": rate}}
        return SimpleNamespace(stdout=json.dumps(out))

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    out = bench_wait_policy("c.yaml", [], 2)
    assert [p for _, p in seen] == ["ACTIVE", "PASSIVE", None] * 2
    assert all("--set" not in cmd for cmd, _ in seen)
    assert out["tgt_tokens_per_s"]["default"] == {"graph": 4.0, "dense": 4.0}
    assert out["passive_over_active"] == {"graph": 2.0, "dense": 2.0}
    bench_wait_policy("c.yaml", ["train.seed=3"], 1)
    assert seen[-1][0][-2:] == ["--set", "train.seed=3"]
