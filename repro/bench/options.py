"""Part c: the DGL-level options, each worth what it changes in the attention of every layer of
one training step (threads, int32 indices, formats built in collate, contiguous operands,
heads in chunks, one graph for all layers, weights repeated so SpMM takes libxsmm)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import dgl
import torch
from torch import Tensor

from dgl_transformer.nn.attention import graph_attention

from .corpus import Size
from .kernels import attention_cases, with_formats
from .results import OptionsResult, OptionVerdict
from .timing import median, take_turns
from .variants import dgl_autograd_attention

#: Each DGL-level option: the run that differs from the model's path in that option alone,
#: and whether the model's path has the option (then the run is without it).
DGL_OPTIONS = {
    "per-head weights repeated so SpMM takes libxsmm": ("DGL's own autograd", True),
    "formats built once per batch in collate": ("formats built when first used", True),
    "one graph object for all layers, forward and backward": ("new graphs for each layer", True),
    "int32 graph indices": ("int32 indices", False),
    "contiguous float32 operands": ("contiguous q, k, v", False),
    "heads in chunks of 2": ("heads in chunks of 2", False),
    "heads in chunks of 1": ("heads in chunks of 1", False),
}


def chunked_attention(graph: dgl.DGLGraph, q: Tensor, k: Tensor, v: Tensor, chunk: int) -> Tensor:
    """:func:`graph_attention` on groups of ``chunk`` heads, one call each, then concatenated:
    every DGL kernel runs shorter loops over more calls."""
    groups = zip(q.split(chunk, 1), k.split(chunk, 1), v.split(chunk, 1), strict=True)
    return torch.cat([graph_attention(graph, *qkv) for qkv in groups], 1)


def bench_options(size: Size, batch: list[int], rounds: int) -> OptionsResult:
    """Attention of every layer of a training step on one batch (its three graphs built, every
    layer's attention forward, one backward), along the model's path and along runs that differ
    from it in one option each (:data:`DGL_OPTIONS`)."""
    m = size.model
    cases = attention_cases(size, batch)
    operands = {name: case.operands(m.n_heads, m.head_dim) for name, case in cases.items()}

    def run(kernel: Callable[..., Tensor] = graph_attention,
            prepare: Callable[[dgl.DGLGraph], dgl.DGLGraph] = with_formats,
            per_layer: bool = False,
            operand: Callable[[Tensor], Tensor] = lambda t: t) -> Callable[[], None]:
        def step() -> None:
            built = {name: prepare(case.build()) for name, case in cases.items()}
            total = torch.zeros(())
            for name, case in cases.items():
                for _ in range(case.layers):
                    graph = prepare(case.build()) if per_layer else built[name]
                    total = total + kernel(graph, *map(operand, operands[name])).sum()
            total.backward()

        return step

    runs = {
        "model": run(),
        "DGL's own autograd": run(kernel=dgl_autograd_attention),
        "formats built when first used": run(prepare=lambda g: g),
        "new graphs for each layer": run(per_layer=True),
        "int32 indices": run(prepare=lambda g: with_formats(g.int())),
        "contiguous q, k, v": run(operand=Tensor.contiguous),
        "heads in chunks of 2": run(kernel=partial(chunked_attention, chunk=2)),
        "heads in chunks of 1": run(kernel=partial(chunked_attention, chunk=1)),
    }
    seconds = take_turns(runs, rounds)
    model = seconds["model"]
    options: dict[str, OptionVerdict] = {}
    for option, (name, kept) in DGL_OPTIONS.items():
        with_, without = (model, seconds[name]) if kept else (seconds[name], model)
        options[option] = {"run": name, "kept": kept, "with_over_without": round(
            median([a / b for a, b in zip(with_, without, strict=True)]), 3)}
    return {
        "rounds": rounds, "ms": {n: round(median(t) * 1e3, 1) for n, t in seconds.items()},
        "options": options,
        # DGL and torch share one OpenMP runtime: DGL's thread count is torch's, always
        "threads": {"torch": torch.get_num_threads(), "dgl": dgl.utils.get_num_threads()},
    }
