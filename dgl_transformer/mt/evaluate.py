"""Scoring: the BLEU scores the project reports, one per published protocol, of a checkpoint on
a Multi30k split or on any files.

    dgl-transformer evaluate --checkpoint runs/default/final.pt               # every test set
    dgl-transformer evaluate --checkpoint ... --split val
    dgl-transformer evaluate --checkpoint ... --src in.en --ref ref.de [--ref-tok ref.tok.de]

Every score is one of the published protocols of ``mt/bleu.py`` (``bleu_cased``, ``bleu_dgl``,
``bleu_tok_lc``, ``bleu_lc``), with sacreBLEU's signature and its 95% bootstrap interval.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from ..nn.batch import PackedBatch
from ..nn.model import GraphTransformer
from ..training import smoothed_and_nll
from .batching import make_batches
from .bleu import bleu_scores
from .checkpoint import CheckpointError
from .command import main as run_command
from .configs import ConfigError, EvalSection
from .corpus import Split
from .data import DEFAULT_DEST, MIRROR_ENV, DataError, available_test_sets, fetch, read_split
from .generate import (
    Translator,
    add_translator_arguments,
    translate_ids,
    translator_from_args,
    truncated,
)
from .text import TextPipeline
from .translate import read_file


@torch.no_grad()
def mean_nll(model: GraphTransformer, batches: Iterable[PackedBatch]) -> float:
    """NLL per target token over ``batches`` (teacher-forced, no label smoothing), in eval
    mode."""
    model.eval()
    nll = tokens = 0.0
    for batch in batches:
        nll += float(smoothed_and_nll(model(batch), batch.gold, 0.0)[1])
        tokens += batch.num_target_tokens
    return nll / tokens


def validation_scores(
    model: GraphTransformer, split: Split, pipeline: TextPipeline, max_tokens: int,
    settings: EvalSection, sentences: int = 0,
) -> dict[str, float]:
    """What training validates with, and every analysis that compares models on val:
    ``val_nll`` over the whole split, and greedy BLEU of its first ``sentences`` (0: all):
    ``val_bleu_greedy`` on the ``bleu_tok_lc`` protocol, ``val_bleu_cased``, ``val_bleu_dgl``.
    The model is left in eval mode."""
    batches = (model.collate([split.src[i] for i in pairs], [split.tgt[i] for i in pairs])
               for pairs in make_batches(*split.lengths(), max_tokens, shuffle=False))
    nll = mean_nll(model, batches)
    n = sentences or len(split.src)
    hyps = translate_ids(model, [s.tolist() for s in split.src[:n]],
                         **{**settings.decoding(), "beam_size": 1})
    plain = [pipeline.decode_tgt(h, plain=True) for h in hyps]
    bleu = bleu_scores(plain, split.refs_raw[:n], split.refs_tok[:n], pipeline.tgt_lang)
    return {"val_nll": nll, "val_bleu_greedy": bleu["bleu_tok_lc"],
            "val_bleu_cased": bleu["bleu_cased"], "val_bleu_dgl": bleu["bleu_dgl"]}


def _check_sizes(sources: Sequence[object], refs_raw: Sequence[str],
                 refs_tok: Sequence[str] | None) -> None:
    if len(sources) != len(refs_raw) or (refs_tok is not None and len(refs_tok) != len(refs_raw)):
        sizes = f"{len(sources)} sources, {len(refs_raw)} references" + (
            f", {len(refs_tok)} tokenised references" if refs_tok is not None else "")
        raise DataError(f"evaluate: {sizes}: every source needs its reference")


def _translate_and_score(
    translator: Translator, translate: Callable[[], list[str]], refs_raw: Sequence[str],
    refs_tok: Sequence[str] | None,
) -> tuple[list[str], dict[str, object]]:
    """Run ``translate``; its output, every protocol's score, the decoding time and count."""
    started = time.perf_counter()
    hyps = translate()
    seconds = time.perf_counter() - started
    return hyps, {**bleu_scores(hyps, refs_raw, refs_tok, translator.pipeline.tgt_lang,
                                intervals=True),
                  "decode_seconds": round(seconds, 1), "sentences": len(hyps)}


def evaluate_ids(
    translator: Translator, sources: Sequence[Sequence[int]], refs_raw: Sequence[str],
    refs_tok: Sequence[str] | None = None, **decode: object,
) -> tuple[list[str], dict[str, object]]:
    """Translate source ids and score them on every protocol: the translations, and the
    scores with their signatures, the decoding time, the sentence count and how many sources
    were longer than the model's ``max_len`` (cut, with a warning: see ``translate_ids``)."""
    _check_sizes(sources, refs_raw, refs_tok)
    hyps, scores = _translate_and_score(
        translator, lambda: translator.translate_encoded(sources, **decode), refs_raw, refs_tok)
    return hyps, {**scores, "sources_cut": truncated(sources, translator.model.cfg.max_len)}


def evaluate_split(
    translator: Translator, root: Path, split: str, limit: int = 0, **decode: object
) -> tuple[list[str], dict[str, object]]:
    """:func:`evaluate_ids` on a Multi30k split (``val``, ``test_2016_flickr``, ...) under
    ``root``, or its first ``limit`` sentences (0: all): sources in the form the subword model
    was trained on, against the raw and the official tokenised references."""
    pipeline = translator.pipeline
    n = limit or None
    sources = pipeline.read(root, split)[0][:n]
    ids = [pipeline.encode(s, pipeline.src_lang) for s in sources]
    return evaluate_ids(translator, ids, read_split(root, split, pipeline.tgt_lang, "raw")[:n],
                        read_split(root, split, pipeline.tgt_lang, "tok")[:n], **decode)


def evaluate_text(
    translator: Translator, sources: Sequence[str], refs_raw: Sequence[str],
    refs_tok: Sequence[str] | None = None, **decode: object,
) -> tuple[list[str], dict[str, object]]:
    """Translate plain-text ``sources`` exactly as ``dgl-transformer translate`` does (long
    sentences in pieces, never cut) and score them like :func:`evaluate_ids`, counting the
    sentences translated in pieces (``sources_in_pieces``)."""
    _check_sizes(sources, refs_raw, refs_tok)
    hyps, scores = _translate_and_score(
        translator, lambda: translator.translate(sources, **decode), refs_raw, refs_tok)
    return hyps, {**scores, "sources_in_pieces": len(translator.long_lines)}


HELP = "score a checkpoint on a Multi30k split or on files, with every BLEU protocol"
ERRORS = (ConfigError, DataError, CheckpointError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``dgl-transformer evaluate``'s options."""
    add_translator_arguments(parser)
    parser.add_argument("--data", type=Path, help=f"Multi30k root (default: ${MIRROR_ENV}, "
                        "else the checkpoint's data.root, fetched if absent)")
    parser.add_argument("--split", action="append",
                        help="a Multi30k split, e.g. val (repeatable; default: every test set)")
    parser.add_argument("--src", help="source sentences, one per line (instead of --split)")
    parser.add_argument("--ref", help="raw reference translations of --src, one per line")
    parser.add_argument("--ref-tok", help="official lowercased tokenised references of --src "
                        "(for bleu_tok_lc)")
    parser.add_argument("--json", help="also write the scores to this JSON file")


def _data_root(args: argparse.Namespace, translator: Translator) -> Path:
    """``--data``, else the mirror, else the checkpoint's data root (fetched if needed)."""
    if args.data:
        return args.data
    if os.environ.get(MIRROR_ENV):
        return Path(os.environ[MIRROR_ENV])
    root = Path(translator.config.data.root if translator.config else DEFAULT_DEST)
    report = fetch(root, langs=(translator.pipeline.src_lang, translator.pipeline.tgt_lang))
    if report.fetched:
        print(report.summary(), file=sys.stderr)
    return root


def command(args: argparse.Namespace) -> int:
    """``dgl-transformer evaluate``: every protocol's score with its sacreBLEU signature."""
    if bool(args.src) != bool(args.ref) or (args.ref_tok and not args.src):
        raise ConfigError("--src and --ref go together (and --ref-tok needs them)")
    if args.src and args.split:
        raise ConfigError("give --split or --src/--ref, not both")
    translator = translator_from_args(args)
    options = {"beam_size": args.beam, "length_penalty": args.length_penalty,
               "batch_size": args.batch_size}
    results: dict[str, dict[str, object]] = {}
    if args.src:
        refs_tok = read_file(args.ref_tok) if args.ref_tok else None
        _, results[args.src] = evaluate_text(translator, read_file(args.src),
                                             read_file(args.ref), refs_tok, **options)
    else:
        root, pipeline = _data_root(args, translator), translator.pipeline
        splits = args.split or available_test_sets(root, pipeline.src_lang, pipeline.tgt_lang,
                                                    "raw")
        if not splits:
            raise DataError(f"{root}: no verified {pipeline.src_lang}-{pipeline.tgt_lang} test "
                            f"set: fetch it with `dgl-transformer data --dest {root}`")
        for split in splits:
            _, results[split] = evaluate_split(translator, root, split, **options)
    for name, scores in results.items():
        print(name)
        for key, value in scores.items():
            if not key.endswith(("_signature", "_ci95")):
                ci, signature = scores.get(f"{key}_ci95"), scores.get(f"{key}_signature")
                print(f"  {key:<16s} {value}" + (f"  95% CI [{ci[0]}, {ci[1]}]" if ci else "")
                      + (f"  ({signature})" if signature else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m dgl_transformer.mt.evaluate``: ``dgl-transformer evaluate``."""
    return run_command("python -m dgl_transformer.mt.evaluate", HELP, add_arguments, command,
                       ERRORS, argv)


if __name__ == "__main__":
    sys.exit(main())
