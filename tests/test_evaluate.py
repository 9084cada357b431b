"""The BLEU protocols, pinned on hand-checked sentence pairs.

Expected scores come from n-gram matches counted by hand (written next to each case), not
from sacreBLEU: BLEU = 100 * BP * (p1 * p2 * p3 * p4) ** (1/4), and BP = 1 when the
hypothesis is as long as the reference. No case below has a zero count, so sacreBLEU's
smoothing never applies.
"""

import math

import pytest
from multi30k_mirror import MIRROR, NEEDS_MIRROR

from dgl_transformer.mt.bleu import (
    PROTOCOLS,
    bleu_cased,
    bleu_dgl,
    bleu_scores,
    bleu_tok_lc,
    dgl_tokenize,
    protocol_bleu,
)
from dgl_transformer.mt.data import read_split
from dgl_transformer.mt.text import preprocess

REF = "Ein Mann im T-Shirt spielt Fußball."
REF_TOK_LC = "ein mann im t-shirt spielt fußball ."  # what the official lc.norm.tok files hold


def bleu(*precisions: float) -> float:
    """Hand route: 100 * geometric mean of the four n-gram precisions (BP = 1)."""
    return round(100 * math.prod(precisions) ** 0.25, 2)


@pytest.mark.parametrize(("lang", "text", "tokens"), [
    # intra-word hyphens become @-@; the sentence-final full stop is split off
    ("de", REF, "Ein Mann im T @-@ Shirt spielt Fußball ."),
    # a free-standing dash stays '-'; '?' is split off
    ("de", "Ein schwarz-weißer Hund springt über eine E-Gitarre - oder nicht?",
     "Ein schwarz @-@ weißer Hund springt über eine E @-@ Gitarre - oder nicht ?"),
    # German: an apostrophe becomes its own token; no &apos; &quot; &amp; &lt; &gt; escapes
    ("de", 'Des Mann\'s Ball, 3-4 "Kinder" & <Eltern>.',
     'Des Mann \' s Ball , 3 @-@ 4 " Kinder " & < Eltern > .'),
    # English: the apostrophe stays on the clitic ('s, 't), as in tokenizer.perl -l en
    ("en", "A man's T-shirt doesn't fit.", "A man 's T @-@ shirt doesn 't fit ."),
])
def test_dgl_tokenisation(lang, text, tokens):
    assert dgl_tokenize(text, lang) == tokens


def test_exact_match_scores_100_on_every_protocol():
    hyps = [REF, "Des Mann's Hund spielt mit einem Ball."]
    refs_tok = [preprocess(r, "de") for r in hyps]
    scores = bleu_scores(hyps, hyps, refs_tok, "de")
    assert [scores[p] for p in PROTOCOLS] == [100.0] * len(PROTOCOLS)
    assert list(scores)[:2] == ["bleu_cased", "bleu_cased_signature"]


def test_case_difference_counts_for_cased_protocols_only():
    hyp = "ein Mann im T-Shirt spielt Fußball."  # only the first word's case differs
    assert preprocess(REF, "de") == REF_TOK_LC
    scores = bleu_scores([hyp], [REF], [REF_TOK_LC], "de")
    # 13a: 7 tokens (T-Shirt one token), the first one wrong -> 6/7, 5/6, 4/5, 3/4
    assert scores["bleu_cased"] == bleu(6 / 7, 5 / 6, 4 / 5, 3 / 4) == 80.91
    # DGL: 9 tokens (T @-@ Shirt), the first one wrong -> 8/9, 7/8, 6/7, 5/6
    assert scores["bleu_dgl"] == bleu(8 / 9, 7 / 8, 6 / 7, 5 / 6) == 86.33
    assert scores["bleu_tok_lc"] == scores["bleu_lc"] == 100.0


def test_hyphen_split_enters_the_ngram_counts():
    hyp = "Ein Mann im T-Shirt spielt Tennis."  # one word differs, near the end
    # DGL: 9 tokens, token 8 of 9 wrong: 2 of 8 bigrams, 2 of 7 trigrams, 2 of 6 4-grams hold it
    assert bleu_dgl([hyp], [REF], "de") == bleu(8 / 9, 6 / 8, 5 / 7, 4 / 6) == 75.06
    # 13a: 7 tokens, token 6 of 7 wrong -> 6/7, 4/6, 3/5, 2/4
    assert bleu_cased([hyp], [REF]) == bleu(6 / 7, 4 / 6, 3 / 5, 2 / 4) == 64.35
    # T-Hemd vs T-Shirt: split, "T" and "@-@" still match and only token 6 of 9 is wrong
    # (held by 2 of 8 bigrams, 3 of 7 trigrams, 4 of 6 4-grams)
    t_hemd = "Ein Mann im T-Hemd spielt Fußball."
    assert dgl_tokenize(t_hemd, "de") == "Ein Mann im T @-@ Hemd spielt Fußball ."
    assert bleu_dgl([t_hemd], [REF], "de") == bleu(8 / 9, 6 / 8, 4 / 7, 2 / 6) == 59.69


def test_apostrophes():
    ref = "Der Hund des Mann's ist sehr groß."
    # DGL: "Der Hund des Mann ' s ist sehr groß ." (10 tokens); the hypothesis with "Manns"
    # has 8, so the brevity penalty applies: BP = exp(1 - 10/8). Matches: 7 of 8 unigrams,
    # 5 of 7 bigrams, 3 of 6 trigrams, 1 of 5 4-grams (only "ist sehr groß .")
    hyp = "Der Hund des Manns ist sehr groß."
    expected = 100 * math.exp(1 - 10 / 8) * (7 / 8 * 5 / 7 * 3 / 6 * 1 / 5) ** 0.25
    assert bleu_dgl([hyp], [ref], "de") == round(expected, 2) == 38.94
    assert bleu_dgl([ref], [ref], "de") == 100.0
    assert bleu_tok_lc([ref], [preprocess(ref, "de")], "de") == 100.0
    assert preprocess(ref, "de") == "der hund des mann &apos; s ist sehr groß ."  # escaped


def test_signatures_name_the_settings():
    scores = bleu_scores([REF], [REF], [REF_TOK_LC], "de")
    fields = {p: dict(f.split(":", 1) for f in str(scores[f"{p}_signature"]).split("|"))
              for p in PROTOCOLS}
    assert fields["bleu_cased"]["tok"] == "13a" and fields["bleu_cased"]["case"] == "mixed"
    assert fields["bleu_dgl"]["tok"] == "none" and fields["bleu_dgl"]["case"] == "mixed"
    assert fields["bleu_tok_lc"]["tok"] == "none"
    assert fields["bleu_lc"]["tok"] == "13a" and fields["bleu_lc"]["case"] == "lc"
    assert all(f["nrefs"] == "1" for f in fields.values())


def test_bad_input_gives_one_line_errors():
    with pytest.raises(ValueError, match="bleu_dgl: 2 hypotheses but 1 references"):
        bleu_dgl(["a", "b"], ["a"], "de")
    with pytest.raises(ValueError, match="unknown BLEU protocol 'bleu_x'"):
        protocol_bleu("bleu_x", [], [], "de")


@NEEDS_MIRROR
def test_tok_lc_of_the_raw_references_is_almost_100():
    """The official tok files are the raw ones through the same steps (1013/1014 lines)."""
    raw, tok = read_split(MIRROR, "val", "de"), read_split(MIRROR, "val", "de", "tok")
    assert 99.9 < bleu_tok_lc(raw, tok, "de") < 100.0
