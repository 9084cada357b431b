"""Part e: decoding test2016 with the repro's settings (greedy and the config's beam, with the
incremental cache), and the cache against naive decoding on one batch of sources.

The model decoded is a trained checkpoint (``--checkpoint``, else the small config's
``final.pt`` from ``make repro``). Without one, or without Multi30k to decode, the bench
trains the small model for a few steps here instead: the result then says so in its ``model``
label (it starts with ``fallback:``), the report prints that label beside every number it
gives, and no target counts it as met. ``--require-trained`` refuses the fallback instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from dgl_transformer import GraphTransformer
from dgl_transformer.mt.configs import RunConfig
from dgl_transformer.mt.generate import Translator, output_limit, translate_ids
from dgl_transformer.nn.decoding import beam_search, greedy
from dgl_transformer.training import build_optimizer

from .corpus import Size, test_set
from .results import (
    FALLBACK,
    CacheComparison,
    DecodeTiming,
    DecodingResult,
    DecodingSettings,
    portable,
)
from .timing import log, timed
from .training import bench_step

#: The brief training's warm-up, as a fraction of its updates. The config's warm-up (600
#: updates for the repro) is longer than a whole brief run, whose learning rate would then
#: never reach the config's peak; a fifth of the run reaches it.
BRIEF_WARMUP_FRACTION = 0.2


@dataclass
class DecodingModel:
    """The model to decode with, the test sources in its vocabulary, the mean length of their
    references, and the provenance labels of the model and of the sources."""

    model: GraphTransformer
    test: list[list[int]]
    ref_len: float
    label: str
    corpus: str


def final_checkpoint(cfg: RunConfig) -> Path:
    """Where ``make repro`` leaves the trained model of ``cfg``."""
    return Path(cfg.train.out_dir) / "final.pt"


def trained_checkpoint(checkpoint: Path | None, cfg: RunConfig) -> Path | None:
    """``checkpoint`` if given, else ``cfg``'s ``final.pt`` if it exists, else None."""
    final = final_checkpoint(cfg)
    return checkpoint or (final if final.is_file() else None)


def decoding_model(size: Size, checkpoint: Path | None, train_steps: int) -> DecodingModel:
    """The trained model (:func:`trained_checkpoint`) on test2016, or, without it or without
    Multi30k, the size's model after ``train_steps`` updates here (labelled a fallback)."""
    corpus = size.corpus
    path = trained_checkpoint(checkpoint, size.cfg)
    if path is not None and corpus.root is not None:
        translator = Translator.from_checkpoint(path)
        test, ref_len = test_set(translator.pipeline, corpus.root)
        return DecodingModel(translator.model, test, ref_len, portable(path), corpus.test_source)
    missing = (f"no {portable(final_checkpoint(size.cfg))}" if path is None
               else f"{portable(path)} needs Multi30k's test set")
    label = f"{FALLBACK}trained {train_steps} steps here, {missing}"
    log(f"decoding model: {label}")
    return DecodingModel(brief_training(size, train_steps), corpus.test, corpus.test_ref_len,
                         label, corpus.test_source)


def brief_training(size: Size, steps: int) -> GraphTransformer:
    """The size's model after ``steps`` updates with the config's optimiser settings (warm-up
    over :data:`BRIEF_WARMUP_FRACTION` of them, then 1/sqrt)."""
    t = size.cfg.train
    torch.manual_seed(t.seed)
    model = GraphTransformer(size.model).train()
    opt, sched = build_optimizer(
        model.parameters(), lr=t.lr, warmup_steps=max(1, int(steps * BRIEF_WARMUP_FRACTION)),
        betas=t.betas, weight_decay=t.weight_decay)
    for i, batch in enumerate(size.batches()[:steps]):
        loss = bench_step(model, opt, sched, *size.pairs(batch), size.cfg)
        if i % 20 == 0 or i == steps - 1:
            log(f"brief training step {i + 1}/{steps}: loss {loss:.2f}")
    return model.eval()


def bench_decoding(cfg: RunConfig, decoding: DecodingModel) -> DecodingResult:
    """test2016 with the repro's decoding settings (greedy, and the config's beam); then cache
    vs naive on one batch."""
    e = cfg.eval
    settings: DecodingSettings = {
        "beam_size": e.beam_size, "length_penalty": e.length_penalty,
        "max_len_a": e.max_len_a, "max_len_b": e.max_len_b, "batch_sentences": e.batch_sentences}
    timings: dict[str, DecodeTiming] = {}
    test = decoding.test
    for name, beam in (("greedy", 1), ("beam", e.beam_size)):
        seconds, hyps = timed(translate_ids, decoding.model, test, beam_size=beam,
                              **{k: v for k, v in settings.items() if k != "beam_size"})
        timings[name] = {
            "seconds": round(seconds, 2), "sentences_per_s": round(len(test) / seconds, 1),
            "mean_output_len": round(float(np.mean([len(h) for h in hyps])), 2)}
        log(f"test2016 {name}: {seconds:.1f}s")
    return {"model": decoding.label, "corpus": decoding.corpus,
            "reference_mean_len": round(decoding.ref_len, 2), "settings": settings,
            "sentences": len(test), "greedy": timings["greedy"], "beam": timings["beam"],
            "cache_vs_naive": cache_vs_naive(cfg, decoding.model, test)}


def cache_vs_naive(
    cfg: RunConfig, model: GraphTransformer, test: list[list[int]]
) -> CacheComparison:
    """Greedy and beam search with the incremental cache and naive, on the middle batch (by
    source length) of the length-sorted batching."""
    e = cfg.eval
    order = sorted((s for s in test if s), key=len)
    first = (len(order) // e.batch_sentences // 2) * e.batch_sentences
    batch = [torch.tensor(s[: model.cfg.max_len]) for s in order[first : first + e.batch_sentences]]
    max_len = output_limit(max(len(s) for s in batch), e.max_len_a, e.max_len_b,
                           model.cfg.max_len)
    decoders = {"greedy": partial(greedy, model, batch, max_len),
                "beam": partial(beam_search, model, batch, e.beam_size, max_len, e.length_penalty)}
    compared = {}
    for name, decode in decoders.items():
        # incremental before and after naive, so a drift in the machine's load averages out
        (before, a), (slow, b), (after, _) = (
            timed(decode, incremental=inc) for inc in (True, False, True))
        fast = (before + after) / 2
        compared[name] = {
            "incremental_seconds": round(fast, 2), "naive_seconds": round(slow, 2),
            "incremental_runs": [round(before, 2), round(after, 2)],
            "incremental_over_naive": round(slow / fast, 2),
            "same_output_fraction": round(
                float(np.mean([torch.equal(x, y) for x, y in zip(a, b, strict=True)])), 3),
        }
        log(f"{name} on one batch: incremental {fast:.1f}s, naive {slow:.1f}s")
    return {"sentences": len(batch), "max_len": max_len,
            "mean_source_len": round(float(np.mean([len(s) for s in batch])), 2),
            "greedy": compared["greedy"], "beam": compared["beam"]}
