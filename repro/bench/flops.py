"""Part d: achieved GFLOP/s of a training step, against torch matmuls of the step's own shapes
and one large square matmul."""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dgl_transformer import TransformerConfig

from .corpus import Size, batch_stats
from .results import FlopsResult
from .timing import median, timed
from .training import bench_step, make_models

#: The side of the square matrix product that stands for the machine's matmul speed.
SQUARE_MATMUL = 2048


class GemmShapes(TorchDispatchMode):
    """Counts the ``(m, k, n)`` shape of every matrix product torch runs while active."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: Counter[tuple[int, int, int]] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        ops = torch.ops.aten
        if func in (ops.mm.default, ops.addmm.default):
            a, b = args[-2:]
            self.shapes[(a.shape[0], a.shape[1], b.shape[1])] += 1
        return func(*args, **(kwargs or {}))


def bench_flops(size: Size, batch: list[int], repeats: int) -> FlopsResult:
    """Useful FLOPs of one training step on a bucketed batch, per second, vs plain matmuls."""
    models = make_models(size.model, size.cfg, ["graph", "dense"])
    src, tgt = size.pairs(batch)
    for name in models:
        bench_step(*models[name], src, tgt, size.cfg)  # warm-up
    with GemmShapes() as gemms:
        bench_step(*models["graph"], src, tgt, size.cfg)
    gemm_flops = sum(2 * m * k * n * c for (m, k, n), c in gemms.shapes.items())
    lens_s, lens_t = size.corpus.lengths()
    attn_flops = attention_flops(size.model, [lens_s[i] for i in batch],
                                 [lens_t[i] for i in batch])
    useful = gemm_flops + attn_flops
    step: dict[str, list[float]] = {n: [] for n in models}
    for _ in range(repeats):
        for n in models:
            step[n].append(timed(bench_step, *models[n], src, tgt, size.cfg)[0])
    gemm_alone = sum(c * _matmul_seconds(m, k, n, repeats) for (m, k, n), c in gemms.shapes.items())
    big = SQUARE_MATMUL
    peak = 2 * big**3 / _matmul_seconds(big, big, big, repeats)
    return {
        "batch": batch_stats(src, tgt),
        "useful_gflop": round(useful / 1e9, 2),
        "gemm_gflop": round(gemm_flops / 1e9, 2),
        "attention_gflop": round(attn_flops / 1e9, 3),
        "gemm_shapes": len(gemms.shapes),
        "step_seconds": {n: round(median(t), 3) for n, t in step.items()},
        "step_gflop_per_s": {n: round(useful / median(t) / 1e9, 1) for n, t in step.items()},
        "same_gemms_alone_seconds": round(gemm_alone, 3),
        "same_gemms_alone_gflop_per_s": round(gemm_flops / gemm_alone / 1e9, 1),
        "matmul_2048_gflop_per_s": round(peak / 1e9, 1),
    }


def attention_flops(model_cfg: TransformerConfig, s_len: list[int], t_len: list[int]) -> int:
    """Scores and weighted sums over every edge, forward and backward (3x forward)."""
    enc = sum(n * n for n in s_len)
    dec = sum(n * (n + 1) // 2 for n in t_len)
    cross = sum(a * b for a, b in zip(s_len, t_len, strict=True))
    edges = enc * model_cfg.n_enc_layers + (dec + cross) * model_cfg.n_dec_layers
    return 3 * 4 * edges * model_cfg.d_model


def _matmul_seconds(m: int, k: int, n: int, repeats: int) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)
    return median([timed(torch.mm, a, b)[0] for _ in range(repeats)])
