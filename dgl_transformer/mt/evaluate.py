"""Decoding many sentences, and the three BLEU scores the project reports.

* ``bleu_cased``: sacreBLEU on plain (detokenised) text against the raw cased references,
  default ``13a`` tokenisation: the number to compare with modern papers.
* ``bleu_lc``: the same, lowercased.
* ``bleu_tok_lc``: against the official lowercased, Moses-tokenised, escaped references
  (``*.lc.norm.tok.*``). Hypotheses go through the same steps (lowercase, punctuation
  normalisation, Moses tokenisation with escaping) and sacreBLEU scores with
  ``tokenize="none"``: the protocol of DGL's example and of the multimodal-MT literature.
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu
import torch

from ..nn.model import GraphTransformer
from .text import preprocess


@torch.no_grad()
def translate_ids(
    model: GraphTransformer,
    sources: Sequence[Sequence[int]],
    beam_size: int = 4,
    length_penalty: float = 0.6,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    batch_sentences: int = 200,
) -> list[list[int]]:
    """Translate id sequences in length-sorted batches; output in input order.

    Empty sources give empty outputs; a source longer than the model's ``max_len`` keeps its
    first ``max_len`` ids (callers that must not lose input say so to the user).
    """
    model.eval()
    limit = model.cfg.max_len
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    order = [i for i in order if len(sources[i]) > 0]
    out: list[list[int]] = [[] for _ in sources]
    for start in range(0, len(order), batch_sentences):
        chunk = order[start : start + batch_sentences]
        src = [torch.tensor(list(sources[i])[:limit], dtype=torch.int64) for i in chunk]
        max_len = int(max_len_a * max(len(s) for s in src) + max_len_b)
        hyps = model.translate(src, beam_size, max_len, length_penalty)
        for i, h in zip(chunk, hyps, strict=True):
            out[i] = h.tolist()
    return out


def _score(metric: sacrebleu.BLEU, hyps: Sequence[str], refs: Sequence[str]) -> float:
    if len(hyps) != len(refs):
        raise ValueError(f"BLEU: {len(hyps)} hypotheses but {len(refs)} references")
    return round(metric.corpus_score(list(hyps), [list(refs)]).score, 2)


def bleu_scores(
    hyps_plain: Sequence[str], refs_raw: Sequence[str], refs_tok: Sequence[str], tgt_lang: str
) -> dict[str, float | str]:
    """``bleu_cased``, ``bleu_lc``, ``bleu_tok_lc`` and their sacreBLEU signatures."""
    hyps_tok = [preprocess(h, tgt_lang) for h in hyps_plain]
    runs = (
        ("bleu_cased", sacrebleu.BLEU(), hyps_plain, refs_raw),
        ("bleu_lc", sacrebleu.BLEU(lowercase=True), hyps_plain, refs_raw),
        ("bleu_tok_lc", sacrebleu.BLEU(tokenize="none", force=True), hyps_tok, refs_tok),
    )
    scores: dict[str, float | str] = {}
    for key, metric, hyps, refs in runs:
        scores[key] = _score(metric, hyps, refs)
        scores[f"{key}_signature"] = str(metric.get_signature())
    return scores


def bleu_tok_lc(hyps_plain: Sequence[str], refs_tok: Sequence[str], tgt_lang: str) -> float:
    """BLEU against official lowercased tokenised references (see the module docstring)."""
    hyps_tok = [preprocess(h, tgt_lang) for h in hyps_plain]
    return _score(sacrebleu.BLEU(tokenize="none", force=True), hyps_tok, refs_tok)
