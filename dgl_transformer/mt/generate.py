"""Decoding text with a trained model: ids in batches, and the :class:`Translator`.

* :func:`output_limit`: the one rule for how long an output may grow.
* :func:`translate_ids` / :func:`scored_ids`: many id sequences, decoded in length-sorted
  batches (best output, or scored n-best lists).
* :class:`Translator`: a checkpoint's model and text pipeline together; plain text in, plain
  text (or scored n-best lists) out. ``dgl-transformer translate`` is a thin layer over it.

::

    from dgl_transformer.mt.generate import Translator

    translator = Translator.from_checkpoint("runs/default/final.pt")
    translator.translate(["A man in a blue shirt is standing on a ladder."])
    translator.nbest(["Two dogs play in the snow."], k=3)   # scored translations, best first
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..nn.config import TransformerConfig
from ..nn.decoding import Hypothesis, beam_search, translate
from ..nn.model import GraphTransformer
from .checkpoint import CheckpointError, TrainedModel
from .command import non_negative_float, positive_int
from .configs import ConfigError, EvalSection, RunConfig
from .text import TextPipeline


def output_limit(source_length: int, max_len_a: float, max_len_b: int, model_max: int) -> int:
    """How many target tokens a batch whose longest source has ``source_length`` tokens may
    produce: ``max_len_a * source_length + max_len_b``, at most the model's ``max_len``, at
    least 1. (Per batch, as in fairseq: a short sentence decoded beside a long one may grow
    longer than it would alone, which matters only if it never emits EOS.)"""
    return max(1, min(model_max, int(max_len_a * source_length + max_len_b)))


class SourceTooLong(UserWarning):
    """Sources longer than the model's ``max_len`` were cut to fit."""


def truncated(sources: Sequence[Sequence[int]], model_max: int) -> int:
    """How many of ``sources`` are longer than ``model_max`` (and would be cut)."""
    return sum(len(s) > model_max for s in sources)


def _decode_batches(
    model: GraphTransformer, sources: Sequence[Sequence[int]], settings: EvalSection,
    nbest: int | None,
) -> list[list[int]] | list[list[Hypothesis]]:
    """Decode the non-empty ``sources`` in length-sorted batches; results in input order
    (empty sources: ``[]``). Over-long sources are cut to the model's ``max_len`` with a
    :class:`SourceTooLong` warning."""
    limit = model.cfg.max_len
    cut = truncated(sources, limit)
    if cut:
        warnings.warn(f"{cut} source(s) longer than the model's max_len={limit} were cut to "
                      f"{limit} tokens", SourceTooLong, stacklevel=3)
    order = sorted((i for i in range(len(sources)) if len(sources[i])),
                   key=lambda i: len(sources[i]))
    out: list = [[] for _ in sources]
    s = settings
    for start in range(0, len(order), s.batch_sentences):
        chunk = order[start : start + s.batch_sentences]
        src = [torch.tensor(list(sources[i])[:limit], dtype=torch.int64) for i in chunk]
        steps = output_limit(max(len(x) for x in src), s.max_len_a, s.max_len_b, limit)
        if nbest is None:
            found = [h.tolist() for h in translate(model, src, s.beam_size, steps,
                                                    s.length_penalty)]
        else:
            found = beam_search(model, src, s.beam_size, steps, s.length_penalty, nbest=nbest)
        for i, result in zip(chunk, found, strict=True):
            out[i] = result
    return out


def translate_ids(
    model: GraphTransformer,
    sources: Sequence[Sequence[int]],
    beam_size: int = 4,
    length_penalty: float = 0.6,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    batch_sentences: int = 200,
) -> list[list[int]]:
    """Translate id sequences in length-sorted batches (greedy for ``beam_size=1``); output
    ids in input order. Empty sources give empty outputs; a source longer than the model's
    ``max_len`` keeps its first ``max_len`` ids, with a :class:`SourceTooLong` warning that
    counts them (the :class:`Translator` splits long text instead)."""
    settings = EvalSection(beam_size=beam_size, length_penalty=length_penalty,
                           max_len_a=max_len_a, max_len_b=max_len_b,
                           batch_sentences=batch_sentences)
    return _decode_batches(model, sources, settings, None)


def scored_ids(
    model: GraphTransformer, sources: Sequence[Sequence[int]], settings: EvalSection, k: int
) -> list[list[Hypothesis]]:
    """The ``k`` best outputs of each source (beam search with ``settings``, batched as
    :func:`translate_ids` batches), best first, with their scores; empty sources: ``[]``."""
    return _decode_batches(model, sources, settings, k)


@dataclass(frozen=True)
class Translation:
    """One scored translation: plain text, its target ids, the sum of their
    log-probabilities, and the length-penalised score that ranked it."""

    text: str
    ids: list[int]
    logprob: float
    score: float


def _pieces(ids: list[int], limit: int) -> list[list[int]]:
    """``ids`` cut into consecutive runs of at most ``limit``."""
    return [ids[i : i + limit] for i in range(0, len(ids), limit)] or [[]]


class Translator:
    """A trained model with its text pipeline and decoding settings (``settings``: the
    checkpoint's ``eval`` section; each call may override the beam, the length penalty and
    the batch size).

    Sentences longer than the model's ``max_len`` (in subwords) are translated in
    consecutive pieces whose translations are joined, never cut; ``long_lines`` lists, for
    the last call, each such sentence's (0-based) index and length in subwords.
    """

    def __init__(self, model: GraphTransformer, pipeline: TextPipeline,
                 settings: EvalSection | None = None, config: RunConfig | None = None) -> None:
        self.model, self.pipeline = model.eval(), pipeline
        self.settings = settings or EvalSection()
        self.config = config
        self.long_lines: list[tuple[int, int]] = []

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> Translator:
        """Load a ``final.pt`` (or any :class:`TrainedModel` file) onto ``device``.

        Anything wrong with the file raises a one-line :class:`CheckpointError` naming it; a
        device torch cannot use, a one-line :class:`ConfigError`.
        """
        state = TrainedModel.load(path)
        try:
            pipeline = TextPipeline.from_state(state.pipeline)
            cfg = TransformerConfig.from_dict(state.model_config)
            run_cfg = RunConfig.from_dict(state.run_config, "run_config")
            model = GraphTransformer(cfg)
            model.load_state_dict(state.model)
        except KeyError as err:
            raise CheckpointError(f"{path}: checkpoint lacks {err}") from None
        # what the validators raise (ValueError: configs, DataError: the text pipeline;
        # TypeError: a config of the wrong shape) and load_state_dict (RuntimeError: weights)
        except (ValueError, TypeError, RuntimeError) as err:
            raise CheckpointError(f"{path}: unusable checkpoint ({_first_line(err)})") from None
        vocab = pipeline.tokenizer.vocab_size
        if (cfg.src_vocab, cfg.tgt_vocab) != (vocab, vocab):
            raise CheckpointError(
                f"{path}: vocabulary mismatch: the model expects {cfg.src_vocab}/{cfg.tgt_vocab} "
                f"ids, its subword model has {vocab}")
        try:
            model = model.to(torch.device(device))
        except (RuntimeError, AssertionError) as err:  # torch's words for "no such device"
            raise ConfigError(f"device {str(device)!r} is not available ({_first_line(err)})"
                              ) from None
        return cls(model, pipeline, run_cfg.eval, run_cfg)

    def _settings(self, beam_size: int | None, length_penalty: float | None,
                  batch_size: int | None) -> EvalSection:
        """The checkpoint's settings with the given overrides, checked."""
        s = replace(self.settings, **{k: v for k, v in (
            ("beam_size", beam_size), ("length_penalty", length_penalty),
            ("batch_sentences", batch_size)) if v is not None})
        if s.beam_size < 1 or s.batch_sentences < 1 or not s.length_penalty >= 0:
            raise ConfigError(f"beam size and batch size must be >= 1 and the length penalty "
                              f">= 0, got {s.beam_size}, {s.batch_sentences}, "
                              f"{s.length_penalty}")
        return s

    def _chunks(self, sentences: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """Source ids of every piece, and the sentence each piece belongs to."""
        if isinstance(sentences, str):
            raise TypeError("give a list of sentences, not one string")
        limit, chunks, owner = self.model.cfg.max_len, [], []
        self.long_lines = []
        for n, sentence in enumerate(sentences):
            ids = self.pipeline.encode_src(sentence) if sentence.strip() else []
            if len(ids) > limit:
                self.long_lines.append((n, len(ids)))
            for chunk in _pieces(ids, limit):
                chunks.append(chunk)
                owner.append(n)
        return chunks, owner

    def _text(self, ids: Sequence[int]) -> str:
        """Plain text of target ids, whitespace runs (line separators too) as single spaces."""
        return " ".join(self.pipeline.decode_tgt(list(ids), plain=True).split()) if ids else ""

    def translate(
        self, sentences: Sequence[str], *, beam_size: int | None = None,
        length_penalty: float | None = None, batch_size: int | None = None,
    ) -> list[str]:
        """One plain-text translation per sentence."""
        chunks, owner = self._chunks(sentences)
        out: list[list[str]] = [[] for _ in sentences]
        texts = self.translate_encoded(chunks, beam_size=beam_size,
                                       length_penalty=length_penalty, batch_size=batch_size)
        for n, text in zip(owner, texts, strict=True):
            out[n].append(text)
        return [" ".join(p for p in parts if p) for parts in out]

    def translate_encoded(
        self, sources: Sequence[Sequence[int]], *, beam_size: int | None = None,
        length_penalty: float | None = None, batch_size: int | None = None,
    ) -> list[str]:
        """Plain-text translations of source ids (cut, not split, when over-long: see
        :func:`translate_ids`)."""
        s = self._settings(beam_size, length_penalty, batch_size)
        return [self._text(h) for h in translate_ids(self.model, sources, **s.decoding())]

    def nbest(
        self, sentences: Sequence[str], k: int, *, beam_size: int | None = None,
        length_penalty: float | None = None, batch_size: int | None = None,
    ) -> list[list[Translation]]:
        """The ``k`` best translations of each sentence, best first, with their scores.

        Beam search with ``beam_size`` (default: the larger of ``k`` and the checkpoint's
        beam), which must be at least ``k``; batched as :meth:`translate` batches, so the
        first translation is :meth:`translate`'s output. A sentence longer than ``max_len``
        gets one translation: the best of each piece, joined (scores added). An empty
        sentence gets one empty translation.
        """
        if k < 1:
            raise ConfigError(f"nbest must be >= 1, got {k}")
        s = self._settings(max(k, self.settings.beam_size) if beam_size is None else beam_size,
                           length_penalty, batch_size)
        if s.beam_size < k:
            raise ConfigError(f"{k} best translations need a beam of at least {k}, "
                              f"got {s.beam_size}")
        chunks, owner = self._chunks(sentences)
        pieces: list[list[list[Hypothesis]]] = [[] for _ in sentences]
        for n, found in zip(owner, scored_ids(self.model, chunks, s, k), strict=True):
            pieces[n].append(found)
        result = []
        for parts in pieces:
            if len(parts) == 1:
                result.append([Translation(self._text(h.tokens.tolist()), h.tokens.tolist(),
                                           h.logprob, h.score) for h in parts[0]]
                              or [Translation("", [], 0.0, 0.0)])
            else:
                best = [p[0] for p in parts]
                ids = [t for h in best for t in h.tokens.tolist()]
                result.append([Translation(" ".join(self._text(h.tokens.tolist()) for h in best),
                                           ids, sum(h.logprob for h in best),
                                           sum(h.score for h in best))])
        return result


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def add_translator_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the commands that decode with a checkpoint (translate, evaluate)."""
    parser.add_argument("--checkpoint", required=True, help="a final.pt written by training")
    parser.add_argument("--beam", "--beam-size", dest="beam", type=positive_int,
                        help="beam size (default: the checkpoint's eval.beam_size; 1: greedy)")
    parser.add_argument("--length-penalty", type=non_negative_float,
                        help="GNMT length penalty alpha (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=positive_int, help="sentences decoded together")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument("--threads", type=positive_int, help="CPU threads (torch)")


def translator_from_args(args: argparse.Namespace) -> Translator:
    """The :class:`Translator` those options describe (threads set, model on its device)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return Translator.from_checkpoint(args.checkpoint, device=args.device)
