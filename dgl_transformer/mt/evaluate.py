"""Decoding many sentences, and the BLEU scores the project reports, one per published protocol.

Every score is sacreBLEU's corpus BLEU of detokenised (plain) model output, prepared as each
protocol prescribes, and is reported with sacreBLEU's signature:

* ``bleu_cased``: sacreBLEU's default (``13a`` tokenisation, cased) against the raw cased
  references: the modern standard, comparable with recent papers.
* ``bleu_dgl``: DGL's example (``tokenizer.perl -a -no-escape`` on the raw files, then
  ``multi-bleu.perl`` without ``-lc``): hypotheses and raw references both go through
  :func:`dgl_tokenize` and sacreBLEU scores the tokens as they are (``tokenize="none"``), cased.
* ``bleu_tok_lc``: against the official lowercased, Moses-tokenised, escaped references
  (``*.lc.norm.tok.*``). Hypotheses go through the same steps (lowercase, punctuation
  normalisation, Moses tokenisation with escaping) and sacreBLEU scores with
  ``tokenize="none"``: the protocol of Transformer-Tiny and the multimodal-MT literature.
* ``bleu_lc``: ``bleu_cased`` lowercased (kept because older result files have it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sacrebleu
import torch

from ..nn.model import GraphTransformer
from .text import moses, preprocess


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


def dgl_tokenize(text: str, lang: str) -> str:
    """DGL's tokenisation: Moses ``tokenizer.perl -a -no-escape -l <lang>`` (via sacremoses).

    Cased, no punctuation normalisation, no XML escaping, and aggressive hyphen splitting: a
    hyphen between letters or digits becomes its own token ``@-@`` (``T-Shirt`` ->
    ``T @-@ Shirt``); tokens are joined by single spaces.
    """
    return moses(lang)[1].tokenize(
        text, aggressive_dash_splits=True, escape=False, return_str=True
    )


#: How each protocol scores: sacreBLEU's options, then how hypotheses and references are
#: prepared (``None``: used as given). The reference set is raw text, except for bleu_tok_lc.
PROTOCOLS: dict[str, tuple[dict[str, object], Callable[[str, str], str] | None,
                           Callable[[str, str], str] | None]] = {
    "bleu_cased": ({}, None, None),
    "bleu_dgl": ({"tokenize": "none", "force": True}, dgl_tokenize, dgl_tokenize),
    "bleu_tok_lc": ({"tokenize": "none", "force": True}, preprocess, None),
    "bleu_lc": ({"lowercase": True}, None, None),
}


def protocol_bleu(
    protocol: str, hyps_plain: Sequence[str], refs: Sequence[str], lang: str
) -> tuple[float, str]:
    """BLEU (rounded to 2 decimals) and sacreBLEU signature of one of :data:`PROTOCOLS`."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown BLEU protocol '{protocol}' (known: {', '.join(PROTOCOLS)})")
    options, prepare_hyp, prepare_ref = PROTOCOLS[protocol]
    if len(hyps_plain) != len(refs):
        raise ValueError(f"{protocol}: {len(hyps_plain)} hypotheses but {len(refs)} references")
    hyps = [prepare_hyp(h, lang) for h in hyps_plain] if prepare_hyp else list(hyps_plain)
    refs = [prepare_ref(r, lang) for r in refs] if prepare_ref else list(refs)
    metric = sacrebleu.BLEU(**options)
    score = metric.corpus_score(hyps, [refs]).score
    return round(score, 2), str(metric.get_signature())


def bleu_scores(
    hyps_plain: Sequence[str], refs_raw: Sequence[str], refs_tok: Sequence[str], tgt_lang: str
) -> dict[str, float | str]:
    """Every protocol's score (``bleu_cased`` first) and its ``<name>_signature``."""
    scores: dict[str, float | str] = {}
    for protocol in PROTOCOLS:
        refs = refs_tok if protocol == "bleu_tok_lc" else refs_raw
        scores[protocol], scores[f"{protocol}_signature"] = protocol_bleu(
            protocol, hyps_plain, refs, tgt_lang
        )
    return scores


def bleu_cased(hyps_plain: Sequence[str], refs_raw: Sequence[str]) -> float:
    """``bleu_cased``: sacreBLEU's default against raw references (see the module docstring)."""
    return protocol_bleu("bleu_cased", hyps_plain, refs_raw, "")[0]


def bleu_dgl(hyps_plain: Sequence[str], refs_raw: Sequence[str], tgt_lang: str) -> float:
    """``bleu_dgl``: DGL's cased tokenised BLEU against raw references (module docstring)."""
    return protocol_bleu("bleu_dgl", hyps_plain, refs_raw, tgt_lang)[0]


def bleu_tok_lc(hyps_plain: Sequence[str], refs_tok: Sequence[str], tgt_lang: str) -> float:
    """BLEU against official lowercased tokenised references (see the module docstring)."""
    return protocol_bleu("bleu_tok_lc", hyps_plain, refs_tok, tgt_lang)[0]
