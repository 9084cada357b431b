"""BLEU as the project reports it: the published protocols, and how sure a score is.

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

**How sure a score is.** Corpus BLEU is a function of sums of per-sentence statistics
(hypothesis and reference lengths, matched and total n-grams). Resampling the test set's
sentences with replacement and recomputing BLEU from the resampled sums gives its spread
(Koehn, 2004). The resampling is sacreBLEU's: ``numpy.random.default_rng(12345)`` (sacreBLEU's
default ``SACREBLEU_SEED``), 1,000 resamples, and the 95% interval between the resampled
scores ranked ``n // 40`` from each end, so :func:`bootstrap_interval` gives the interval
behind sacreBLEU's ``--confidence`` (``mu +- ci``). The statistics come from sacreBLEU's own
scorer (:meth:`sacrebleu.BLEU.sentence_score`, :meth:`sacrebleu.BLEU.compute_bleu`) under the
protocol's preparation (:data:`PROTOCOLS`).

* :func:`sentence_statistics`: one row of statistics per sentence, for one protocol.
* :func:`bootstrap_interval`: the 95% interval of one system's BLEU.
* :func:`paired_bootstrap`: a system against a baseline on the same resamples: the difference,
  its 95% interval, and the share of resamples in which the system does not beat the
  baseline (a one-sided p-value, Koehn's paired bootstrap).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sacrebleu

from .text import moses, preprocess


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
    hyps_plain: Sequence[str], refs_raw: Sequence[str], refs_tok: Sequence[str] | None,
    tgt_lang: str, intervals: bool = False,
) -> dict[str, object]:
    """Every protocol's score (``bleu_cased`` first) and its ``<name>_signature``;
    ``bleu_tok_lc`` only with the official tokenised references ``refs_tok``. With
    ``intervals``, each score's 95% bootstrap interval too, as ``<name>_ci95`` (``[low,
    high]``, sacreBLEU's resampling: :func:`bootstrap_interval`)."""
    scores: dict[str, object] = {}
    for protocol in PROTOCOLS:
        if protocol == "bleu_tok_lc" and refs_tok is None:
            continue
        refs = refs_tok if protocol == "bleu_tok_lc" else refs_raw
        scores[protocol], scores[f"{protocol}_signature"] = protocol_bleu(
            protocol, hyps_plain, refs, tgt_lang
        )
        if intervals:
            stats = sentence_statistics(protocol, hyps_plain, refs, tgt_lang)
            scores[f"{protocol}_ci95"] = bootstrap_interval(stats)
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

#: sacreBLEU's defaults for bootstrap resampling.
SAMPLES, SEED = 1000, 12345
ORDER = 4  # BLEU's n-gram orders (sacreBLEU's default)


def sentence_statistics(
    protocol: str, hyps_plain: Sequence[str], refs: Sequence[str], lang: str
) -> np.ndarray:
    """``[sentences, 2 + 2 * 4]``: hypothesis length, reference length, matched n-grams and
    total n-grams (n = 1..4) of each sentence under ``protocol`` (:data:`PROTOCOLS`);
    their column sums give the protocol's corpus BLEU (:func:`corpus_bleu`)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown BLEU protocol '{protocol}' (known: {', '.join(PROTOCOLS)})")
    if len(hyps_plain) != len(refs):
        raise ValueError(f"{protocol}: {len(hyps_plain)} hypotheses but {len(refs)} references")
    options, prepare_hyp, prepare_ref = PROTOCOLS[protocol]
    metric = sacrebleu.BLEU(**options, effective_order=True)
    rows = []
    for hyp, ref in zip(hyps_plain, refs, strict=True):
        hyp = prepare_hyp(hyp, lang) if prepare_hyp else hyp
        ref = prepare_ref(ref, lang) if prepare_ref else ref
        s = metric.sentence_score(hyp, [ref])
        rows.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
    return np.array(rows, dtype=np.int64).reshape(len(rows), 2 + 2 * ORDER)


def corpus_bleu(stats: np.ndarray) -> float:
    """Corpus BLEU (sacreBLEU's defaults: exponential smoothing, order 4) of the sentences
    whose statistics are the rows of ``stats``."""
    total = stats.sum(0).tolist()
    return sacrebleu.BLEU.compute_bleu(
        correct=total[2 : 2 + ORDER], total=total[2 + ORDER :], sys_len=total[0],
        ref_len=total[1], smooth_method="exp").score


def _resampled(stats: Sequence[np.ndarray], samples: int, seed: int) -> list[np.ndarray]:
    """BLEU of each of ``stats`` on the same ``samples`` resamples of the sentences."""
    n = len(stats[0])
    rng = np.random.default_rng(seed)
    idxs = rng.choice(n, size=(samples, n), replace=True)
    return [np.array([corpus_bleu(s[i]) for i in idxs]) for s in stats]


def _interval(scores: np.ndarray) -> list[float]:
    """The 95% interval of resampled scores as sacreBLEU takes it (``n // 40`` from each end)."""
    ranked = np.sort(scores)
    cut = len(ranked) // 40
    return [round(float(ranked[cut]), 2), round(float(ranked[len(ranked) - cut - 1]), 2)]


def bootstrap_interval(
    stats: np.ndarray, samples: int = SAMPLES, seed: int = SEED
) -> list[float]:
    """The 95% bootstrap interval ``[low, high]`` of the corpus BLEU of ``stats``."""
    return _interval(_resampled([stats], samples, seed)[0])


def paired_bootstrap(
    baseline: np.ndarray, system: np.ndarray, samples: int = SAMPLES, seed: int = SEED
) -> dict[str, object]:
    """``system`` against ``baseline`` (statistics of the same sentences): the BLEU
    difference, its 95% interval over paired resamples, and ``p_not_better``, the share of
    resamples in which the system does not score higher."""
    if baseline.shape != system.shape:
        raise ValueError(f"paired_bootstrap: {len(baseline)} baseline sentences but "
                         f"{len(system)} system sentences")
    base, sys_ = _resampled([baseline, system], samples, seed)
    diff = sys_ - base
    return {"delta": round(corpus_bleu(system) - corpus_bleu(baseline), 2),
            "ci95": _interval(diff), "p_not_better": round(float(np.mean(diff <= 0)), 4),
            "samples": samples}
