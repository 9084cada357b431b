"""The data every part of the bench runs on: Multi30k encoded by a size's config, or, when no
copy is usable, synthetic ids with Multi30k's length distribution (labelled a fallback)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dgl_transformer import TransformerConfig
from dgl_transformer.mt.batching import make_batches
from dgl_transformer.mt.configs import RunConfig, load_config
from dgl_transformer.mt.corpus import load_splits
from dgl_transformer.mt.data import DataError
from dgl_transformer.mt.text import TextPipeline
from dgl_transformer.nn.batch import PackedBatch

from .results import FALLBACK, BatchStats, SizeDescription, portable
from .timing import log

#: Multi30k training split, lc_tok 8k BPE: subword lengths (mean, sd) of source and target,
#: used only to draw synthetic batches when the data is absent.
SYNTHETIC_LENGTHS = {"src": (14.1, 4.7), "tgt": (14.5, 5.3)}
SYNTHETIC_LABEL = f"{FALLBACK}synthetic ids with Multi30k's length distribution, no Multi30k found"
#: The test set every size decodes and measures output lengths on.
TEST_SPLIT = "test_2016_flickr"


@dataclass
class Corpus:
    """Encoded training pairs and test sources, and where they came from: ``source`` labels
    the training pairs, ``test_source`` the test set (see ``results`` on labels)."""

    src: list[Tensor]
    tgt: list[Tensor]
    test: list[list[int]]
    test_ref_len: float  # mean length of the test references, in the same subwords
    source: str
    test_source: str
    root: Path | None = None  # the Multi30k copy used; None for synthetic ids

    def lengths(self) -> tuple[list[int], list[int]]:
        """Token-budget lengths of every training pair: source tokens, decoder positions."""
        return PackedBatch.pair_lengths(self.src, self.tgt)


@dataclass
class Size:
    """One model size: its config (model, data variant, token budget) and its corpus."""

    name: str
    config: str
    cfg: RunConfig
    corpus: Corpus

    @property
    def model(self) -> TransformerConfig:
        """The network of the config, with the config's vocabulary size."""
        return self.cfg.model_config(self.cfg.data.vocab_size)

    def batches(self, bucketed: bool = True) -> list[list[int]]:
        """The config's shuffled token-budget batches of the training pairs (epoch 0)."""
        return make_batches(*self.corpus.lengths(), self.cfg.train.max_tokens, shuffle=True,
                            seed=self.cfg.train.seed, bucketed=bucketed)

    def pairs(self, batch: list[int]) -> tuple[list[Tensor], list[Tensor]]:
        """The source and target tensors of the pairs a batch names."""
        return [self.corpus.src[j] for j in batch], [self.corpus.tgt[j] for j in batch]

    def describe(self) -> SizeDescription:
        """What results record of the size: config, model, token budget, data label."""
        return {"config": self.config, "model": self.model.to_dict(),
                "max_tokens": self.cfg.train.max_tokens, "data": self.corpus.source,
                "train_pairs": len(self.corpus.src), "test_sentences": len(self.corpus.test)}


def load_size(name: str, config: str, overrides: list[str]) -> Size:
    """The size ``name`` of ``config`` (with ``overrides``) and its corpus."""
    cfg = load_config(config, overrides)
    size = Size(name, config, cfg, load_corpus(cfg))
    log(f"{name}: {config}, {size.corpus.source}, {len(size.corpus.src)} training pairs")
    return size


def batch_stats(src: list[Tensor], tgt: list[Tensor]) -> BatchStats:
    """Real tokens, and the positions the dense model computes (padded to the longest)."""
    s, t = [len(x) for x in src], [PackedBatch.decoder_length(len(x)) for x in tgt]
    return {"sentences": len(s), "src_tokens": sum(s), "tgt_tokens": sum(t),
            "dense_positions": len(s) * (max(s) + max(t))}


def data_roots(cfg: RunConfig) -> list[tuple[str, Path]]:
    """Where Multi30k may be, in order, each with the label results record:
    ``$MULTI30K_DIR``, then the config's root."""
    mirror = os.environ.get("MULTI30K_DIR")
    found = [("$MULTI30K_DIR", Path(mirror))] if mirror else []
    return found + [(portable(cfg.data.root), Path(cfg.data.root))]


def test_set(pipeline: TextPipeline, root: Path) -> tuple[list[list[int]], float]:
    """test2016's encoded sources and the mean length of its encoded references."""
    src, ref = pipeline.read(root, TEST_SPLIT)
    ref_len = float(np.mean([len(pipeline.encode(t, pipeline.tgt_lang)) for t in ref]))
    return [pipeline.encode(s, pipeline.src_lang) for s in src], ref_len


def load_corpus(cfg: RunConfig) -> Corpus:
    """Multi30k through the project's pipeline, or synthetic ids if no copy is usable."""
    d = cfg.data
    for label, root in data_roots(cfg):
        try:
            pipeline = TextPipeline.train(root, d.variant, d.src_lang, d.tgt_lang, d.vocab_size)
            train, _, _ = load_splits(cfg, pipeline, root)
            test, ref_len = test_set(pipeline, root)
        except (DataError, OSError) as err:
            log(f"no usable Multi30k at {root}: {err}")
            continue
        return Corpus(train.src, train.tgt, test, ref_len, f"Multi30k {d.variant} ({label})",
                      f"Multi30k test2016, {d.variant} ({label})", root)
    log(f"no Multi30k found: {SYNTHETIC_LABEL}")
    return synthetic_corpus(d.vocab_size)


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
    test_src, test_tgt = sentences(test)
    return Corpus(src, tgt, [s.tolist() for s in test_src],
                  float(np.mean([len(t) for t in test_tgt])), SYNTHETIC_LABEL, SYNTHETIC_LABEL)
