"""Part b: the attention kernels alone, forward and backward on one batch's three graphs, and a
profile of each piece of the model's attention (graph construction, format conversion, and
each DGL kernel forward and backward) in ms and GFLOP/s."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import dgl
import torch
import torch.nn.functional as F
from torch import Tensor

from dgl_transformer.nn import graphs
from dgl_transformer.nn.attention import Aggregate, EdgeScores, graph_attention

from .corpus import Size, batch_stats
from .results import KernelGraphResult, KernelResult, ProfileEntry
from .timing import median, take_turns
from .variants import (
    dgl_autograd_attention,
    frames_attention,
    gather_scatter_attention,
    udf_attention,
)

#: The kernels timed on the graphs (the dense model's SDPA is timed beside them).
GRAPH_KERNELS: dict[str, Callable[..., Tensor]] = {
    "graph": graph_attention, "dgl autograd": dgl_autograd_attention,
    "frames": frames_attention, "udf": udf_attention,
    "gather/scatter (torch)": gather_scatter_attention,
}
#: Useful floating-point operations per edge and head of each DGL kernel (``d``: head size);
#: graph construction and format conversion do none.
KERNEL_FLOPS: dict[str, Callable[[int], int]] = {
    "SDDMM forward": lambda d: 2 * d,  # q_i . k_j
    "SDDMM backward": lambda d: 4 * d,  # dq and dk: two weighted sums
    "edge softmax forward": lambda d: 4,  # subtract the maximum, exp, sum, divide
    "edge softmax backward": lambda d: 4,  # a * g, sum, a * sum, subtract
    "SpMM forward": lambda d: 2 * d,  # sum_j a_ij v_j
    "SpMM backward": lambda d: 4 * d,  # dv (a weighted sum) and da (a dot product)
}
PROFILE_PIECES = ("graph construction", "format conversion", *KERNEL_FLOPS)


@dataclass
class AttentionCase:
    """One of a batch's three attention graphs: how to build it, the lengths of its query and
    key sides, the dense model's mask kind, and how many layers of the model attend along it."""

    build: Callable[[], dgl.DGLGraph]
    q_len: list[int]
    k_len: list[int]
    mask: str | None
    layers: int

    def operands(self, heads: int, head_dim: int) -> tuple[Tensor, Tensor, Tensor]:
        """Seeded ``q``, ``k``, ``v`` leaves, strided views of one fused projection as in the
        model (scaled so the tutorial kernel's clamp never bites)."""
        torch.manual_seed(0)
        rows = max(sum(self.q_len), sum(self.k_len))
        x = (torch.randn(rows, 3, heads, head_dim) * 0.5).requires_grad_()
        return x[: sum(self.q_len), 0], x[: sum(self.k_len), 1], x[: sum(self.k_len), 2]


def attention_cases(size: Size, batch: list[int]) -> dict[str, AttentionCase]:
    """The encoder, decoder and cross graphs of ``batch``."""
    lens_s, lens_t = size.corpus.lengths()
    s, t = [lens_s[i] for i in batch], [lens_t[i] for i in batch]
    m = size.model
    return {
        "encoder": AttentionCase(partial(graphs.complete_graph, s), s, s, None, m.n_enc_layers),
        "decoder": AttentionCase(partial(graphs.causal_graph, t), t, t, "causal", m.n_dec_layers),
        "cross": AttentionCase(partial(graphs.cross_graph, s, t), t, s, None, m.n_dec_layers),
    }


def with_formats(graph: dgl.DGLGraph) -> dgl.DGLGraph:
    """``graph`` with every sparse format built, as ``PackedBatch.collate`` leaves it."""
    graph.create_formats_()
    return graph


def bench_kernels(size: Size, batch: list[int], repeats: int) -> KernelResult:
    """Forward + backward of each attention kernel on the batch's three graphs, and the
    profile of the model's (:func:`kernel_profile`)."""
    m = size.model
    heads, dk = m.n_heads, m.head_dim
    cases: dict[str, KernelGraphResult] = {}
    for name, case in attention_cases(size, batch).items():
        graph = with_formats(case.build())
        q, k, v = case.operands(heads, dk)
        fns = {kname: _graph_kernel_step(kernel, graph, q, k, v)
               for kname, kernel in GRAPH_KERNELS.items()}
        fns["dense (SDPA)"] = _dense_kernel_step(q, k, v, case.q_len, case.k_len, case.mask)
        seconds = take_turns(fns, repeats)
        cases[name] = {
            "edges": graph.num_edges(), "layers": case.layers,
            "ms": {n: round(median(t) * 1e3, 2) for n, t in seconds.items()},
            "profile": kernel_profile(case, heads, dk, repeats),
        }
    total = {n: sum(c["ms"][n] for c in cases.values()) for n in next(iter(cases.values()))["ms"]}
    gflop = round(12 * sum(c["edges"] for c in cases.values()) * m.d_model / 1e9, 3)
    return {
        "heads": heads, "head_dim": dk, "batch": batch_stats(*size.pairs(batch)), "graphs": cases,
        "sum_ms": {n: round(t, 2) for n, t in total.items()},
        "graph_over": {n: round(t / total["graph"], 3) for n, t in total.items()},
        "graph_over_sdpa": round(total["graph"] / total["dense (SDPA)"], 2),
        "attention_gflop": gflop,  # as flops.attention_flops
        "attention_gflop_per_s": round(gflop / total["graph"] * 1e3, 2),
        "profile": {piece: _profile_entry(
            sum(c["profile"][piece]["ms"] for c in cases.values()),
            sum(c["profile"][piece].get("gflop", 0.0) for c in cases.values()))
            for piece in PROFILE_PIECES},
        # a training step runs each kernel once per layer, and builds the graphs once
        "profile_step_ms": {piece: round(sum(
            c["profile"][piece]["ms"] * (c["layers"] if piece in KERNEL_FLOPS else 1)
            for c in cases.values()), 2) for piece in PROFILE_PIECES},
    }


def _profile_entry(ms: float, gflop: float) -> ProfileEntry:
    entry: ProfileEntry = {"ms": round(ms, 3)}
    if gflop:
        entry.update(gflop=round(gflop, 4), gflop_per_s=round(gflop / ms * 1e3, 2))
    return entry


def kernel_profile(
    case: AttentionCase, heads: int, dk: int, repeats: int
) -> dict[str, ProfileEntry]:
    """Median ms (and GFLOP/s) of each piece of the model's attention on one graph: building
    it, its format conversion (on fresh graphs), and each DGL kernel forward and backward."""
    graph = with_formats(case.build())
    fresh = iter([case.build() for _ in range(repeats + 1)])
    q, k, v = (t.detach().contiguous().requires_grad_() for t in case.operands(heads, dk))
    scores = EdgeScores.apply(graph, q, k)
    s_leaf = scores.detach().requires_grad_()
    weights = dgl.ops.edge_softmax(graph, s_leaf)
    w_leaf = weights.detach().requires_grad_()
    out = Aggregate.apply(graph, v, w_leaf)
    ds, dw, do = (torch.randn_like(t) for t in (scores, weights, out))
    fns: dict[str, Callable[[], Any]] = {
        "graph construction": case.build,
        "format conversion": lambda: next(fresh).create_formats_(),
        "SDDMM forward": lambda: EdgeScores.apply(graph, q, k),
        "SDDMM backward": lambda: torch.autograd.grad(scores, (q, k), ds, retain_graph=True),
        "edge softmax forward": lambda: dgl.ops.edge_softmax(graph, s_leaf),
        "edge softmax backward": lambda: torch.autograd.grad(
            weights, s_leaf, dw, retain_graph=True),
        "SpMM forward": lambda: Aggregate.apply(graph, v, w_leaf),
        "SpMM backward": lambda: torch.autograd.grad(out, (v, w_leaf), do, retain_graph=True),
    }
    seconds = take_turns(fns, repeats)
    work = graph.num_edges() * heads
    return {piece: _profile_entry(median(seconds[piece]) * 1e3,
                                  work * KERNEL_FLOPS[piece](dk) / 1e9 if piece in KERNEL_FLOPS
                                  else 0.0)
            for piece in PROFILE_PIECES}


def _graph_kernel_step(
    kernel: Callable[..., Tensor], graph: dgl.DGLGraph, q: Tensor, k: Tensor, v: Tensor
) -> Callable[[], None]:
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]

    def step() -> None:
        kernel(graph, *leaves).sum().backward()

    return step


def _dense_kernel_step(
    q: Tensor, k: Tensor, v: Tensor, q_len: list[int], k_len: list[int], mask_kind: str | None
) -> Callable[[], None]:
    """The dense model's attention on the padded batch (mask as it builds it)."""
    def pad(x: Tensor, lens: list[int]) -> Tensor:
        rows = torch.nn.utils.rnn.pad_sequence(list(x.detach().split(lens)), batch_first=True)
        return rows.transpose(1, 2).contiguous().requires_grad_()  # [B, H, T, dk]

    qp, kp, vp = pad(q, q_len), pad(k, k_len), pad(v, k_len)
    real_k = torch.arange(kp.shape[2])[None, :] < torch.tensor(k_len)[:, None]
    mask = real_k[:, None, None, :]
    if mask_kind == "causal":
        pos = torch.arange(qp.shape[2])
        mask = mask & (pos[None, :] <= pos[:, None])[None, None]

    def step() -> None:
        F.scaled_dot_product_attention(qp, kp, vp, mask).sum().backward()

    return step
