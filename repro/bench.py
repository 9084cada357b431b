"""``make bench``: the graph Transformer against its dense twin and tutorial-style DGL attention.

    OMP_NUM_THREADS=2 python -m repro.bench [--config repro/configs/default.yaml]

Everything runs in one process (plus one child for part c), on the same batches, and is
written to ``repro/results/bench.json``, ``repro/results/bench.png`` and ``BENCHMARKS.md``:

a. training throughput (target tokens/s of forward, backward, clipping and an Adam step) of
   :class:`GraphTransformer`, :class:`DenseTransformer` and the tutorial-style
   :class:`~repro.bench_kernels.UdfGraphTransformer`, at the config's model size and at
   d_model 512 with 6+6 layers, on length-bucketed and on random batches. The models take
   turns on each batch (the order rotates), so a change in the machine's load hits all three;
   ratios are medians of per-batch ratios;
b. attention kernels alone (forward + backward on one batch's three graphs);
c. decoding test2016 (greedy and beam 4, the repro's decoding settings) with the incremental
   cache, and the cache against naive decoding (the decoder re-run on whole prefixes) on one
   batch of sources;
d. one long sequence (child process ``repro.bench_long``): time and peak memory of complete
   graph, window graph and dense attention;
e. achieved GFLOP/s of a training step against torch matmuls of the step's own shapes;
f. graph and dense throughput with OpenMP's idle threads spinning or sleeping (child
   processes ``repro.bench_threads``, since the policy is fixed when OpenMP starts).

Multi30k comes from ``$MULTI30K_DIR`` or the config's data root;
without it, synthetic batches with Multi30k's length distribution are used (and said so).
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # before torch loads OpenMP, and only when run, not imported
    # Idle OpenMP threads sleep instead of spinning. On a machine shared with other processes,
    # spinning threads steal the cores that the busy ones need (see BENCHMARKS.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import dgl  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from dgl_transformer import DenseTransformer, GraphTransformer, TransformerConfig  # noqa: E402
from dgl_transformer.mt.batching import make_batches  # noqa: E402
from dgl_transformer.mt.configs import (  # noqa: E402
    RunConfig,
    add_overrides_argument,
    load_config,
    overrides_args,
)
from dgl_transformer.mt.data import DataError  # noqa: E402
from dgl_transformer.mt.evaluate import translate_ids  # noqa: E402
from dgl_transformer.mt.text import TextPipeline  # noqa: E402
from dgl_transformer.mt.translate import load_translator  # noqa: E402
from dgl_transformer.nn import graphs  # noqa: E402
from dgl_transformer.nn.attention import graph_attention  # noqa: E402
from dgl_transformer.nn.batch import PackedBatch  # noqa: E402
from dgl_transformer.nn.decoding import beam_search, greedy  # noqa: E402
from dgl_transformer.training import train_step, warmup_inverse_sqrt  # noqa: E402

from .bench_kernels import UdfGraphTransformer, frames_attention, udf_attention  # noqa: E402
from .bench_report import write_markdown, write_plot  # noqa: E402
from .bench_tutorial import TutorialStyleTransformer  # noqa: E402
from .run import git_commit, machine  # noqa: E402

RESULTS = Path("repro/results")
MARKDOWN = Path("BENCHMARKS.md")
MODELS: dict[str, type[GraphTransformer] | type[DenseTransformer]] = {
    "graph": GraphTransformer, "dense": DenseTransformer, "udf": TutorialStyleTransformer,
    "udf_kernel": UdfGraphTransformer,
}
LARGE = {"d_model": 512, "n_heads": 8, "d_ff": 2048, "n_enc_layers": 6, "n_dec_layers": 6}
LONG_LENGTHS = (128, 256, 512, 1024, 2048, 4096)
WAIT_POLICIES = ("ACTIVE", "PASSIVE", "default")  # "default": OMP_WAIT_POLICY unset
WINDOW = 16  # window graph: 33 neighbours per token
WARMUP_PAIRS = 32
#: Multi30k training split, lc_tok 8k BPE: subword lengths (mean, sd) of source and target,
#: used only to draw synthetic batches when the data is absent.
SYNTHETIC_LENGTHS = {"src": (14.1, 4.7), "tgt": (14.5, 5.3)}
#: The issue's targets, each oriented so that larger is better (except the seconds).
TARGETS = {
    "train_graph_over_dense_random": (">=", 1.0),
    "train_graph_over_dense_bucketed": (">=", 0.9),
    "train_graph_over_udf": (">=", 3.0),
    "beam4_incremental_over_naive": (">=", 5.0),
    "test2016_beam4_seconds": ("<=", 60.0),
    "len4096_window_over_dense_speed": (">=", 3.0),
    "len4096_dense_over_window_memory": (">=", 10.0),
}
#: Numbers this run does not measure, shown beside ours for orientation only.
ANCHORS = {
    "dgl_example_6x6_d512_target_tokens_per_s": {
        "value": 406, "source": "DGL's deleted Transformer example (UDF attention, one big "
        "graph per batch), 6+6 layers, d_model 512, batches of 128 sentences, 2 threads, "
        "measured earlier on this kind of machine"},
    "dgl_example_2x2_d512_target_tokens_per_s": {
        "value": 1134, "source": "the same example with 2+2 layers"},
}


@dataclass
class Corpus:
    """Encoded training pairs and test sources, and where they came from."""

    src: list[Tensor]
    tgt: list[Tensor]
    test: list[list[int]]
    source: str
    root: Path | None = None  # the Multi30k copy used, if any

    def lengths(self) -> tuple[list[int], list[int]]:
        """Token-budget lengths of every training pair: source tokens, decoder positions."""
        return ([len(s) for s in self.src],
                [PackedBatch.decoder_length(len(t)) for t in self.tgt])

    def batches(self, cfg: RunConfig, bucketed: bool = True) -> list[list[int]]:
        """The config's shuffled token-budget batches of the training pairs (epoch 0)."""
        return make_batches(*self.lengths(), cfg.train.max_tokens, shuffle=True,
                            seed=cfg.train.seed, bucketed=bucketed)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Wall seconds of ``fn(*args, **kwargs)``, and its result."""
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - started, out


# -- data ---------------------------------------------------------------------------------


def data_roots(cfg: RunConfig) -> list[Path]:
    """Where Multi30k may be, in order: ``$MULTI30K_DIR``, the config's root."""
    names = [os.environ.get("MULTI30K_DIR"), cfg.data.root]
    return [Path(n) for n in names if n]


def load_corpus(cfg: RunConfig) -> Corpus:
    """Multi30k through the project's pipeline, or synthetic ids if no copy is usable."""
    from dgl_transformer.mt.train import load_splits

    for root in data_roots(cfg):
        try:
            d = cfg.data
            pipeline = TextPipeline.train(root, d.variant, d.src_lang, d.tgt_lang, d.vocab_size)
            train, _, _ = load_splits(cfg, pipeline, root)
            test_src, _ = pipeline.read(root, "test_2016_flickr")
        except (DataError, OSError) as err:
            log(f"no usable Multi30k at {root}: {err}")
            continue
        test = [pipeline.encode(s, pipeline.src_lang) for s in test_src]
        return Corpus(train.src, train.tgt, test, f"Multi30k {d.variant} ({root})", root)
    return synthetic_corpus(cfg.data.vocab_size)


def synthetic_corpus(vocab: int, pairs: int = 29000, test: int = 1000) -> Corpus:
    """Random ids with Multi30k's subword length distribution (gamma-shaped, correlated)."""
    rng = np.random.default_rng(0)

    def lengths(side: str, base: np.ndarray) -> np.ndarray:
        mean, sd = SYNTHETIC_LENGTHS[side]
        return np.clip(np.round(base * mean + rng.normal(0, 0.3 * sd, len(base))), 3, 60)

    def sentences(n: int) -> tuple[list[Tensor], list[Tensor]]:
        shape = (SYNTHETIC_LENGTHS["src"][0] / SYNTHETIC_LENGTHS["src"][1]) ** 2
        base = rng.gamma(shape, 1 / shape, n)  # mean 1, shared by both sides
        return tuple(  # type: ignore[return-value]
            [torch.randint(4, vocab, (int(n_tok),)) for n_tok in lengths(side, base)]
            for side in ("src", "tgt")
        )

    src, tgt = sentences(pairs)
    test_src, _ = sentences(test)
    return Corpus(src, tgt, [s.tolist() for s in test_src], "synthetic (no Multi30k found)")


# -- a. training throughput ------------------------------------------------------------------


def model_config(cfg: RunConfig, size: str) -> TransformerConfig:
    base = cfg.model_config(cfg.data.vocab_size)
    return replace(base, **LARGE) if size == "large" else base


Trainee = tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]


def bench_step(
    model: torch.nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LambdaLR,
    src: list[Tensor], tgt: list[Tensor], cfg: RunConfig,
) -> float:
    """One update as the trainer does it: collate (graphs included) and ``train_step``;
    returns the loss."""
    t = cfg.train
    return train_step(model, model.collate(src, tgt), opt, sched,
                      label_smoothing=t.label_smoothing, clip_norm=t.clip_norm).loss


def make_models(model_cfg: TransformerConfig, names: Sequence[str]) -> dict[str, Trainee]:
    """The named models with identical weights, in training mode, each with its Adam and its
    warm-up schedule."""
    torch.manual_seed(0)
    models = {name: MODELS[name](model_cfg).train() for name in names}
    first = next(iter(models.values()))
    trainees = {}
    for name, m in models.items():
        m.load_state_dict(first.state_dict())
        opt = torch.optim.Adam(m.parameters(), lr=1e-4, betas=(0.9, 0.98))
        trainees[name] = (m, opt, warmup_inverse_sqrt(opt, 100))
    return trainees


def batch_stats(src: list[Tensor], tgt: list[Tensor]) -> dict[str, int]:
    """Real tokens, and the positions the dense model computes (padded to the longest)."""
    s, t = [len(x) for x in src], [PackedBatch.decoder_length(len(x)) for x in tgt]
    return {"sentences": len(s), "src_tokens": sum(s), "tgt_tokens": sum(t),
            "dense_positions": len(s) * (max(s) + max(t))}


def bench_training(cfg: RunConfig, corpus: Corpus, size: str, repeats: int) -> dict[str, Any]:
    """Throughput of every model on the same ``repeats`` batches, bucketed and random, after
    one warm-up step each on a few pairs (first-call work: optimizer state, DGL's set-up)."""
    model_cfg = model_config(cfg, size)
    models = make_models(model_cfg, list(MODELS))
    for trainee in models.values():
        bench_step(*trainee, corpus.src[:WARMUP_PAIRS], corpus.tgt[:WARMUP_PAIRS], cfg)
    out: dict[str, Any] = {"model": model_cfg.to_dict(), "max_tokens": cfg.train.max_tokens}
    for batching in ("bucketed", "random"):
        batches = corpus.batches(cfg, bucketed=batching == "bucketed")
        rows = []
        for i, batch in enumerate(batches[:repeats]):
            src, tgt = [corpus.src[j] for j in batch], [corpus.tgt[j] for j in batch]
            names = list(models)
            names = names[i % len(names):] + names[: i % len(names)]  # rotate who goes first
            seconds = {n: timed(bench_step, *models[n], src, tgt, cfg)[0] for n in names}
            rows.append({**batch_stats(src, tgt), "seconds": seconds})
            log(f"train {size} {batching} batch {i}: "
                + ", ".join(f"{n} {s:.2f}s" for n, s in seconds.items()))
        out[batching] = summarise_training(rows)
    return out


def summarise_training(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median tokens/s per model and median per-batch ratios (graph over each other)."""
    names = list(rows[0]["seconds"])
    tps = {n: [r["tgt_tokens"] / r["seconds"][n] for r in rows] for n in names}
    return {
        "batches": rows,
        "tgt_tokens_per_s": {n: round(median(v), 1) for n, v in tps.items()},
        "graph_over": {
            n: round(median([r["seconds"][n] / r["seconds"]["graph"] for r in rows]), 3)
            for n in names if n != "graph"
        },
        "dense_padding_fraction": round(
            1 - sum(r["src_tokens"] + r["tgt_tokens"] for r in rows)
            / sum(r["dense_positions"] for r in rows), 3),
    }


# -- b. attention kernels alone --------------------------------------------------------------


def bench_kernels(
    cfg: RunConfig, corpus: Corpus, repeats: int
) -> dict[str, Any]:
    """Forward + backward of each attention kernel on one bucketed batch's three graphs."""
    model_cfg = model_config(cfg, "default")
    heads, dk = model_cfg.n_heads, model_cfg.head_dim
    lens_s, lens_t = corpus.lengths()
    batch = corpus.batches(cfg)[0]
    s_len, t_len = [lens_s[i] for i in batch], [lens_t[i] for i in batch]
    cases = {
        "encoder": (graphs.complete_graph(s_len), s_len, s_len, None),
        "decoder": (graphs.causal_graph(t_len), t_len, t_len, "causal"),
        "cross": (graphs.cross_graph(s_len, t_len), t_len, s_len, None),
    }
    kernels: dict[str, Callable[..., Tensor]] = {
        "graph (dgl.ops)": graph_attention, "frames": frames_attention, "udf": udf_attention,
    }
    out: dict[str, Any] = {"heads": heads, "head_dim": dk}
    for case, (graph, q_len, k_len, mask_kind) in cases.items():
        torch.manual_seed(0)
        q = torch.randn(sum(q_len), heads, dk) * 0.5
        k, v = torch.randn(sum(k_len), heads, dk) * 0.5, torch.randn(sum(k_len), heads, dk)
        fns = {name: _graph_kernel_step(kernel, graph, q, k, v)
               for name, kernel in kernels.items()}
        fns["dense (SDPA)"] = _dense_kernel_step(q, k, v, q_len, k_len, mask_kind)
        for fn in fns.values():
            fn()  # warm-up (sparse formats, kernel selection)
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                times[name].append(timed(fn)[0])
        out[case] = {"edges": graph.num_edges(),
                     "ms": {n: round(median(t) * 1e3, 2) for n, t in times.items()}}
    total = {n: sum(out[c]["ms"][n] for c in cases) for n in out["encoder"]["ms"]}
    out["sum_ms"] = {n: round(t, 2) for n, t in total.items()}
    out["graph_over"] = {n: round(t / total["graph (dgl.ops)"], 3) for n, t in total.items()}
    return out


def _graph_kernel_step(kernel, graph, q: Tensor, k: Tensor, v: Tensor) -> Callable[[], None]:
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]

    def step() -> None:
        kernel(graph, *leaves).sum().backward()

    return step


def _dense_kernel_step(
    q: Tensor, k: Tensor, v: Tensor, q_len: list[int], k_len: list[int], mask_kind: str | None
) -> Callable[[], None]:
    """The dense model's attention on the padded batch (mask as it builds it)."""
    def pad(x: Tensor, lens: list[int]) -> Tensor:
        rows = torch.nn.utils.rnn.pad_sequence(list(x.split(lens)), batch_first=True)
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


# -- c. decoding -----------------------------------------------------------------------------


def decoding_model(
    cfg: RunConfig, corpus: Corpus, checkpoint: Path | None, train_steps: int
) -> tuple[GraphTransformer, list[list[int]], str]:
    """A trained model and the test sources in its vocabulary, and what the model is.

    Uses ``checkpoint``, else the run's ``final.pt``/``last.pt``/``prev.pt``, else trains
    the config's model for ``train_steps`` updates here.
    """
    run_dir = Path(cfg.train.out_dir)
    found = [p for p in (run_dir / n for n in ("final.pt", "last.pt", "prev.pt")) if p.is_file()]
    path = checkpoint or next(iter(found), None)
    if path is not None and corpus.root is not None:
        model, pipeline, _ = load_translator(path)
        test_src, _ = pipeline.read(corpus.root, "test_2016_flickr")
        test = [pipeline.encode(s, pipeline.src_lang) for s in test_src]
        return model, test, f"checkpoint {path}"
    model = brief_training(cfg, corpus, train_steps)
    return model, corpus.test, f"trained here for {train_steps} steps ({corpus.source})"


def brief_training(cfg: RunConfig, corpus: Corpus, steps: int) -> GraphTransformer:
    """The config's model after ``steps`` updates (warm-up over a fifth of them, then 1/sqrt)."""
    model_cfg = model_config(cfg, "default")
    torch.manual_seed(cfg.train.seed)
    model = GraphTransformer(model_cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, betas=tuple(cfg.train.betas))
    sched = warmup_inverse_sqrt(opt, max(1, steps // 5))
    for i, batch in enumerate(corpus.batches(cfg)[:steps]):
        loss = bench_step(model, opt, sched, [corpus.src[j] for j in batch],
                          [corpus.tgt[j] for j in batch], cfg)
        if i % 20 == 0 or i == steps - 1:
            log(f"brief training step {i + 1}/{steps}: loss {loss:.2f}")
    return model.eval()


def bench_decoding(
    cfg: RunConfig, model: GraphTransformer, test: list[list[int]]
) -> dict[str, Any]:
    """test2016 with the repro's decoding settings; then cache vs naive on one batch."""
    e = cfg.eval
    settings = {"length_penalty": e.length_penalty, "max_len_a": e.max_len_a,
                "max_len_b": e.max_len_b, "batch_sentences": e.batch_sentences}
    out: dict[str, Any] = {"settings": settings, "sentences": len(test)}
    for name, beam in (("greedy", 1), ("beam4", 4)):
        seconds, hyps = timed(translate_ids, model, test, beam_size=beam, **settings)
        out[name] = {"seconds": round(seconds, 2), "sentences_per_s": round(len(test) / seconds, 1),
                     "mean_output_len": round(float(np.mean([len(h) for h in hyps])), 2)}
        log(f"test2016 {name}: {seconds:.1f}s")
    # cache vs naive: the middle batch (by source length) of the same length-sorted batching
    order = sorted((s for s in test if s), key=len)
    first = (len(order) // e.batch_sentences // 2) * e.batch_sentences
    batch = [torch.tensor(s[: model.cfg.max_len]) for s in order[first : first + e.batch_sentences]]
    max_len = int(e.max_len_a * max(len(s) for s in batch) + e.max_len_b)
    compare: dict[str, Any] = {"sentences": len(batch), "max_len": max_len,
                               "mean_source_len": round(float(np.mean([len(s) for s in batch])), 2)}
    decoders = {"greedy": partial(greedy, model, batch, max_len),
                "beam4": partial(beam_search, model, batch, 4, max_len, e.length_penalty)}
    for name, decode in decoders.items():
        # incremental before and after naive, so a drift in the machine's load averages out
        (before, a), (slow, b), (after, _) = (
            timed(decode, incremental=inc) for inc in (True, False, True))
        fast = (before + after) / 2
        compare[name] = {
            "incremental_seconds": round(fast, 2), "naive_seconds": round(slow, 2),
            "incremental_runs": [round(before, 2), round(after, 2)],
            "incremental_over_naive": round(slow / fast, 2),
            "same_output_fraction": round(
                float(np.mean([torch.equal(x, y) for x, y in zip(a, b, strict=True)])), 3),
        }
        log(f"{name} on one batch: incremental {fast:.1f}s, naive {slow:.1f}s")
    out["cache_vs_naive"] = compare
    return out


# -- d. one long sequence --------------------------------------------------------------------


def bench_long(heads: int, head_dim: int, lengths: Sequence[int]) -> dict[str, Any]:
    """Run :mod:`repro.bench_long` in a child process (see its docstring for the method)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    cmd = [sys.executable, "-m", "repro.bench_long", "--lengths", *map(str, lengths),
           "--heads", str(heads), "--head-dim", str(head_dim), "--window", str(WINDOW)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    out = {"heads": heads, "head_dim": head_dim, "window_size": WINDOW,
           "mode": "forward only, no autograd", **json.loads(done.stdout)}
    top = str(max(lengths))
    at = {kind: out[kind][top] for kind in ("complete", "window", "dense", "dense_materialised")}
    out["ratios_at_longest"] = {
        "length": int(top),
        "dense_over_window_speed": round(at["dense"]["ms"] / at["window"]["ms"], 2),
        "complete_over_window_speed": round(at["complete"]["ms"] / at["window"]["ms"], 2),
        "dense_over_window_memory": round(at["dense"]["peak_mib"] / at["window"]["peak_mib"], 2),
        "dense_materialised_over_window_memory": round(
            at["dense_materialised"]["peak_mib"] / at["window"]["peak_mib"], 2),
        "complete_over_window_memory": round(
            at["complete"]["peak_mib"] / at["window"]["peak_mib"], 2),
    }
    return out


# -- e. achieved GFLOP/s ---------------------------------------------------------------------


class GemmShapes(TorchDispatchMode):
    """Counts the ``(m, k, n)`` shape of every matrix product torch runs while active."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: Counter[tuple[int, int, int]] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        ops = torch.ops.aten
        if func in (ops.mm.default, ops.addmm.default):
            a, b = args[-2:]
            self.shapes[(a.shape[0], a.shape[1], b.shape[1])] += 1
        return func(*args, **(kwargs or {}))


def bench_flops(cfg: RunConfig, corpus: Corpus, repeats: int) -> dict[str, Any]:
    """Useful FLOPs of one training step on a bucketed batch, per second, vs plain matmuls."""
    model_cfg = model_config(cfg, "default")
    models = make_models(model_cfg, ["graph", "dense"])
    batch = corpus.batches(cfg)[1]
    src, tgt = [corpus.src[j] for j in batch], [corpus.tgt[j] for j in batch]
    for name in models:
        bench_step(*models[name], src, tgt, cfg)  # warm-up
    with GemmShapes() as gemms:
        bench_step(*models["graph"], src, tgt, cfg)
    gemm_flops = sum(2 * m * k * n * c for (m, k, n), c in gemms.shapes.items())
    lens_s, lens_t = corpus.lengths()
    attn_flops = attention_flops(model_cfg, [lens_s[i] for i in batch], [lens_t[i] for i in batch])
    useful = gemm_flops + attn_flops
    step = {n: [] for n in models}
    for _ in range(repeats):
        for n in models:
            step[n].append(timed(bench_step, *models[n], src, tgt, cfg)[0])
    gemm_alone = sum(c * _matmul_seconds(m, k, n, repeats) for (m, k, n), c in gemms.shapes.items())
    big = 2048
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


# -- f. OpenMP wait policy ------------------------------------------------------------------


def bench_wait_policy(config: str, overrides: list[str], rounds: int) -> dict[str, Any]:
    """Graph and dense throughput with idle OpenMP threads spinning (ACTIVE), sleeping
    (PASSIVE) or left to OpenMP's default (spin a while, then sleep): one child process each
    (``repro.bench_threads``), in turn."""
    runs = []
    cmd = [sys.executable, "-m", "repro.bench_threads", "--config", config,
           *overrides_args(overrides)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    for _ in range(rounds):
        for policy in WAIT_POLICIES:
            policy_env = env if policy == "default" else {**env, "OMP_WAIT_POLICY": policy}
            done = subprocess.run(cmd, env=policy_env, capture_output=True, text=True, check=True)
            runs.append({**json.loads(done.stdout), "omp_wait_policy": policy})
            log(f"wait policy {policy}: {runs[-1]['tgt_tokens_per_s']}")
    models = ("graph", "dense")
    per_policy = {
        policy: {n: round(median([r["tgt_tokens_per_s"][n] for r in runs
                                  if r["omp_wait_policy"] == policy]), 1) for n in models}
        for policy in WAIT_POLICIES
    }
    return {
        "runs": runs, "tgt_tokens_per_s": per_policy,
        "passive_over_active": {n: round(per_policy["PASSIVE"][n] / per_policy["ACTIVE"][n], 2)
                                for n in models},
    }


# -- summary and main ------------------------------------------------------------------------


def summarise(results: dict[str, Any]) -> dict[str, float]:
    """The issue's seven numbers, each oriented so that larger is better (except seconds);
    the long-sequence ones at the longest length measured."""
    train = results["train"]["default"]
    decode = results["decoding"]
    long = results["long"]["ratios_at_longest"]
    return {
        "train_graph_over_dense_random": train["random"]["graph_over"]["dense"],
        "train_graph_over_dense_bucketed": train["bucketed"]["graph_over"]["dense"],
        "train_graph_over_udf": train["bucketed"]["graph_over"]["udf"],
        "beam4_incremental_over_naive": decode["cache_vs_naive"]["beam4"]["incremental_over_naive"],
        "test2016_beam4_seconds": decode["beam4"]["seconds"],
        "len4096_window_over_dense_speed": long["dense_over_window_speed"],
        "len4096_dense_over_window_memory": long["dense_over_window_memory"],
    }


def targets_met(summary: dict[str, float]) -> dict[str, dict[str, Any]]:
    return {
        key: {"target": f"{op} {limit}",
              "met": summary[key] >= limit if op == ">=" else summary[key] <= limit}
        for key, (op, limit) in TARGETS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.bench", description=__doc__)
    parser.add_argument("--config", default="repro/configs/default.yaml")
    add_overrides_argument(parser)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="model for the decoding part (default: the config's run)")
    parser.add_argument("--train-steps", type=int, default=100,
                        help="updates to train a decoding model when no checkpoint exists")
    parser.add_argument("--repeats", type=int, default=4,
                        help="measured batches per batching at the default size")
    parser.add_argument("--large-repeats", type=int, default=2)
    parser.add_argument("--long-lengths", type=int, nargs="+", default=list(LONG_LENGTHS))
    parser.add_argument("--policy-rounds", type=int, default=2,
                        help="ACTIVE/PASSIVE pairs of the OpenMP wait-policy probe (0: skip)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite bench.png and BENCHMARKS.md from bench.json")
    args = parser.parse_args(argv)
    if args.checkpoint is not None and not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    json_path = RESULTS / "bench.json"
    if args.report_only:
        results = json.loads(json_path.read_text(encoding="utf-8"))
        write_plot(results, RESULTS / "bench.png")
        write_markdown(results, MARKDOWN)
        return 0
    started = time.time()
    cfg = load_config(args.config, args.set)
    results: dict[str, Any] = {
        "command": " ".join(["python -m repro.bench", *(sys.argv[1:] if argv is None else argv)]),
        "config": args.config, "overrides": args.set, "git_commit": git_commit(),
        "machine": machine(), "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "dgl_version": dgl.__version__, "torch_version": torch.__version__,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "anchors": ANCHORS,
    }
    corpus = load_corpus(cfg)
    results["data"] = {"source": corpus.source, "train_pairs": len(corpus.src),
                       "test_sentences": len(corpus.test)}
    log(f"data: {corpus.source}, {len(corpus.src)} training pairs")
    results["train"] = {
        "default": bench_training(cfg, corpus, "default", args.repeats),
        "large": bench_training(cfg, corpus, "large", args.large_repeats),
    }
    results["kernels"] = bench_kernels(cfg, corpus, 5)
    results["flops"] = bench_flops(cfg, corpus, 3)
    model, test, what = decoding_model(cfg, corpus, args.checkpoint, args.train_steps)
    results["decoding"] = {"model": what, **bench_decoding(cfg, model, test)}
    model_cfg = model_config(cfg, "default")
    results["long"] = bench_long(model_cfg.n_heads, model_cfg.head_dim, args.long_lengths)
    if args.policy_rounds:
        results["wait_policy"] = bench_wait_policy(args.config, args.set, args.policy_rounds)
    results["summary"] = summarise(results)
    results["targets"] = targets_met(results["summary"])
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_seconds"] = round(time.time() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_plot(results, RESULTS / "bench.png")
    write_markdown(results, MARKDOWN)
    log(f"wrote {json_path}, {RESULTS / 'bench.png'} and {MARKDOWN} "
        f"in {results['wall_seconds'] / 60:.1f} min: {json.dumps(results['summary'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
