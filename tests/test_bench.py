"""The benchmark's variants compute what they claim (correctness only, never timings), the
model's kept kernel options change no result, and each part returns every piece it names.
What the summary and the targets make of the results: tests/test_bench_summary.py; the page:
tests/test_report_benchmarks.py."""

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import dgl
import pytest
import torch

from dgl_transformer import GraphTransformer, PackedBatch, TransformerConfig
from dgl_transformer.mt.configs import load_config
from dgl_transformer.nn import attention, graphs
from dgl_transformer.nn.attention import graph_attention
from dgl_transformer.nn.decoding import beam_search
from repro.bench.corpus import Size, synthetic_corpus
from repro.bench.flops import attention_flops
from repro.bench.kernels import PROFILE_PIECES, bench_kernels
from repro.bench.long import measure
from repro.bench.options import DGL_OPTIONS, bench_options, chunked_attention
from repro.bench.threads import bench_wait_policy
from repro.bench.training import summarise_training
from repro.bench.tutorial import TutorialStyleTransformer, batch_graph
from repro.bench.variants import (
    UdfGraphTransformer,
    dgl_autograd_attention,
    frames_attention,
    gather_scatter_attention,
    udf_attention,
)

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


def operands(name: str) -> tuple[dgl.DGLGraph, torch.Tensor, torch.Tensor, torch.Tensor]:
    graph, n_dst, n_src = GRAPHS[name]
    q = torch.randn(n_dst, 4, 8, requires_grad=True)  # scaled scores stay inside [-5, 5]
    k, v = torch.randn(n_src, 4, 8, requires_grad=True), torch.randn(n_src, 4, 8,
                                                                      requires_grad=True)
    return graph, q, k, v


def assert_same_attention(out, ref, grads_of) -> None:
    """Same output, and the same gradients of ``grads_of`` for a random upstream gradient."""
    assert torch.allclose(out, ref, atol=1e-5)
    upstream = torch.randn_like(ref)
    grads = torch.autograd.grad(out, grads_of, upstream, retain_graph=True)
    ref_grads = torch.autograd.grad(ref, grads_of, upstream, retain_graph=True)
    for g, r in zip(grads, ref_grads, strict=True):
        assert torch.allclose(g, r, atol=1e-5)


@pytest.mark.parametrize(
    "kernel", [frames_attention, udf_attention, dgl_autograd_attention, gather_scatter_attention])
@pytest.mark.parametrize("name", list(GRAPHS))
def test_kernels_equal_graph_attention(kernel, name):
    graph, q, k, v = operands(name)
    out, weights = kernel(graph, q, k, v, return_weights=True)
    ref, ref_weights = graph_attention(graph, q, k, v, return_weights=True)
    assert torch.allclose(weights, ref_weights, atol=1e-6)
    assert_same_attention(out, ref, (q, k, v))


@pytest.mark.parametrize("name", list(GRAPHS))
def test_repeated_weights_give_dgl_autograd_results(name, monkeypatch):
    """The kept kernel (weights repeated into a buffer, own backward) against DGL's own
    autograd: with the buffer, with DGL's broadcast fallback, with dropout, and with only some
    inputs needing a gradient."""
    graph, q, k, v = operands(name)
    ref = dgl_autograd_attention(graph, q, k, v)
    assert_same_attention(graph_attention(graph, q, k, v), ref, (q, k, v))
    monkeypatch.setattr(attention, "WIDE_WEIGHTS_MAX_BYTES", 0)  # too large: broadcast kernel
    assert_same_attention(graph_attention(graph, q, k, v), ref, (q, k, v))
    monkeypatch.undo()
    torch.manual_seed(3)
    dropped = graph_attention(graph, q, k, v, dropout=0.5)
    torch.manual_seed(3)
    assert_same_attention(dropped, dgl_autograd_attention(graph, q, k, v, dropout=0.5), (q, k, v))
    only_q = graph_attention(graph, q, k.detach(), v.detach())
    assert_same_attention(only_q, ref, (q,))


def test_repeated_weights_reuse_one_buffer():
    graph, q, k, v = operands("complete")
    graph_attention(graph, q, k, v).sum().backward()
    buffer = attention._buffer.tensor
    graph_attention(graph, q, k, v).sum().backward()
    smaller, q2, k2, v2 = operands("window")
    graph_attention(smaller, q2, k2, v2).sum().backward()
    assert attention._buffer.tensor.data_ptr() == buffer.data_ptr()


def test_collate_builds_every_format_once():
    """The kept option "formats in collate": the batch's graphs hold COO, CSR and CSC, so the
    reverse graphs of the backward share them."""
    batch = PackedBatch.collate([torch.arange(4, 4 + n) for n in SRC],
                                [torch.arange(4, 4 + n) for n in TGT])
    for graph in (batch.enc_graph, batch.dec_graph, batch.cross_graph):
        assert graph.formats()["not created"] == []
        assert dgl.reverse(graph).formats()["not created"] == []


def test_dgl_threads_follow_torch():
    """No option to set: DGL and torch share one OpenMP runtime."""
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            assert dgl.utils.get_num_threads() == n
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("name", list(GRAPHS))
def test_option_runs_compute_the_same_attention(name):
    """The DGL-level options the bench measures but the model does not keep change no result:
    heads in chunks, int32 indices, contiguous operands."""
    graph, q, k, v = operands(name)
    ref = graph_attention(graph, q, k, v)
    for chunk in (1, 2):
        assert_same_attention(chunked_attention(graph, q, k, v, chunk=chunk), ref, (q, k, v))
    assert torch.equal(graph_attention(graph.int(), q, k, v), ref)
    assert torch.equal(graph_attention(graph, q.contiguous(), k, v), ref)


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
    # "graph over dense" is dense time / graph time: above 1, the graph model is faster
    assert out["graph_over"] == {"dense": 1.5, "udf": 3.0}
    assert out["tgt_tokens_per_s"]["graph"] == 100.0
    assert out["dense_padding_fraction"] == 0.5


@pytest.fixture(scope="module")
def tiny() -> tuple[Size, list[int], dict, dict]:
    """A tiny size on synthetic data, its first batch, and the kernel and option parts of the
    bench run on it once (structure only; the timings mean nothing)."""
    overrides = ["model.d_model=16", "model.n_heads=2", "model.d_ff=16", "model.n_enc_layers=1",
                 "model.n_dec_layers=2", "data.vocab_size=40", "train.max_tokens=300"]
    config = "repro/configs/default.yaml"
    size = Size("small", config, load_config(config, overrides), synthetic_corpus(40, 64, 8))
    batch = size.batches()[0]
    return size, batch, bench_kernels(size, batch, 1), bench_options(size, batch, 1)


def test_kernel_profile_has_every_piece(tiny):
    size, batch, kernels, _ = tiny
    assert list(kernels["graphs"]) == ["encoder", "decoder", "cross"]
    layers = {"encoder": 1, "decoder": 2, "cross": 2}
    for name, g in kernels["graphs"].items():
        assert g["layers"] == layers[name] and list(g["profile"]) == list(PROFILE_PIECES)
        assert "gflop_per_s" not in g["profile"]["graph construction"]
        assert g["profile"]["SpMM backward"]["gflop"] == pytest.approx(
            g["edges"] * 2 * 4 * 8 / 1e9, abs=1e-4)  # 2 heads of 8, 4 d per edge and head
    assert kernels["graph_over_sdpa"] > 0 and kernels["attention_gflop_per_s"] > 0
    per_step = sum(g["profile"]["SDDMM forward"]["ms"] * g["layers"]
                   for g in kernels["graphs"].values())
    assert kernels["profile_step_ms"]["SDDMM forward"] == pytest.approx(per_step, abs=0.01)
    assert set(kernels["sum_ms"]) == {"graph", "dgl autograd", "frames", "udf",
                                      "gather/scatter (torch)", "dense (SDPA)"}


def test_options_part_measures_every_option(tiny):
    _, _, _, options = tiny
    assert list(options["options"]) == list(DGL_OPTIONS)
    for option, (run, kept) in DGL_OPTIONS.items():
        entry = options["options"][option]
        assert entry["run"] == run and entry["kept"] == kept and entry["with_over_without"] > 0
        assert run in options["ms"]
    assert options["threads"]["dgl"] == options["threads"]["torch"]


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("kind", ["complete", "window", "dense", "dense_materialised"])
def test_long_sequence_measure_runs(kind):
    m = measure(kind, 64, 2, 8, 4)
    assert m["ms"] > 0 and m["peak_mib"] >= 0 and m["edges"] == (
        64 * 64 if kind != "window" else graphs.window_graph([64], 4).num_edges())


def test_wait_policy_probe_runs_each_policy(monkeypatch):
    """Children get the policy in their environment (none for "default"), and `--set` only
    with overrides (argparse rejects an empty one)."""
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
