"""Bootstrap intervals and paired comparisons of corpus BLEU (mt/bleu.py), checked against
sacreBLEU's own scores and resampling, on test2016's references."""

import json

import numpy as np
import pytest
import sacrebleu
from multi30k_mirror import MIRROR, NEEDS_MIRROR

from dgl_transformer.mt.bleu import (
    PROTOCOLS,
    SAMPLES,
    SEED,
    _interval,
    _resampled,
    bleu_scores,
    bootstrap_interval,
    corpus_bleu,
    paired_bootstrap,
    protocol_bleu,
    sentence_statistics,
)
from dgl_transformer.mt.data import read_split

pytestmark = NEEDS_MIRROR


@pytest.fixture(scope="module")
def refs() -> dict[str, list[str]]:
    return {form: read_split(MIRROR, "test_2016_flickr", "de", form) for form in ("raw", "tok")}


def degraded(refs: list[str], keep: float, seed: int) -> list[str]:
    """A system: each reference with words dropped at random."""
    rng = np.random.default_rng(seed)
    return [" ".join(w for w in r.split() if rng.random() < keep) for r in refs]


def test_the_tok_lc_reference_of_test2016_has_12103_tokens(refs):
    """Transformer-Tiny's log reports ``reflen=12103``: our bleu_tok_lc references are theirs."""
    stats = sentence_statistics("bleu_tok_lc", refs["tok"], refs["tok"], "de")
    assert int(stats[:, 1].sum()) == 12103


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_statistics_give_sacrebleus_corpus_score(refs, protocol):
    ref = refs["tok" if protocol == "bleu_tok_lc" else "raw"]
    hyps = degraded(refs["raw"], 0.8, 0)
    stats = sentence_statistics(protocol, hyps, ref, "de")
    assert round(corpus_bleu(stats), 2) == protocol_bleu(protocol, hyps, ref, "de")[0]


def test_interval_is_sacrebleus_bootstrap(refs):
    hyps = degraded(refs["raw"], 0.8, 0)
    low, high = bootstrap_interval(sentence_statistics("bleu_cased", hyps, refs["raw"], "de"))
    theirs = sacrebleu.BLEU().corpus_score(hyps, [refs["raw"]], n_bootstrap=1000)
    score = theirs.score
    assert low < score < high
    # sacreBLEU reports the same interval as mean +- half its width
    assert (high - low) / 2 == pytest.approx(theirs._ci, abs=0.006)
    assert bleu_scores(hyps, refs["raw"], None, "de", intervals=True)["bleu_cased_ci95"] == [
        low, high]


def test_paired_bootstrap_tells_a_better_system_from_noise(refs):
    ref = refs["raw"]
    weak, strong, twin = (sentence_statistics("bleu_cased", degraded(ref, keep, seed), ref, "de")
                          for keep, seed in ((0.7, 1), (0.8, 2), (0.7, 1)))
    better = paired_bootstrap(weak, strong)
    assert better["delta"] > 0 and better["ci95"][0] > 0 and better["p_not_better"] < 0.01
    assert better["delta"] == round(corpus_bleu(strong) - corpus_bleu(weak), 2)
    worse = paired_bootstrap(strong, weak)
    assert worse["ci95"][1] < 0 and worse["p_not_better"] > 0.99
    same = paired_bootstrap(weak, twin)
    assert same["delta"] == 0 and same["ci95"] == [0.0, 0.0]
    close = paired_bootstrap(weak, sentence_statistics(
        "bleu_cased", degraded(ref, 0.7, 3), ref, "de"))  # another draw of the same system
    assert close["ci95"][0] < 0 < close["ci95"][1]
    with pytest.raises(ValueError, match="paired_bootstrap: 1000 baseline sentences but 10"):
        paired_bootstrap(weak[:1000], strong[:10])


def test_paired_resamples_are_sacrebleus_paired_bootstrap(refs):
    """The paired interval is taken over exactly the resamples of sacreBLEU's paired bootstrap
    test (``sacrebleu --paired-bs``): each system's resampled scores agree with its own."""
    ref = refs["raw"]
    systems = [("weak", degraded(ref, 0.7, 1)), ("strong", degraded(ref, 0.8, 2))]
    _, theirs = sacrebleu.significance.PairedTest(
        systems, {"BLEU": sacrebleu.BLEU()}, [ref], test_type="bs", n_samples=SAMPLES)()
    ours = _resampled([sentence_statistics("bleu_cased", hyps, ref, "de")
                       for _, hyps in systems], SAMPLES, SEED)
    for scores, result in zip(ours, theirs["BLEU"], strict=True):
        assert scores.mean() == pytest.approx(result.mean, abs=1e-4)
        low, high = _interval(scores)  # rounded to 0.01
        assert (high - low) / 2 == pytest.approx(result.ci, abs=0.006)


def test_compare_records_a_paired_comparison_of_two_recorded_runs(refs, tmp_path):
    from repro import compare

    (tmp_path / "outputs").mkdir()
    for name, keep, seed in (("base", 0.7, 1), ("better", 0.8, 2)):
        config = {"data": {"tgt_lang": "de"}, "eval": {"protocol": "bleu_cased"}}
        (tmp_path / f"{name}.json").write_text(json.dumps({"name": name, "config": config}))
        lines = degraded(refs["raw"], keep, seed)
        (tmp_path / "outputs" / f"{name}.test_2016_flickr.de").write_text(
            "".join(f"{line}\n" for line in lines))
    args = ["base", "better", "--results", str(tmp_path)]
    assert compare.main(args) == 0
    assert compare.main(args) == 0  # the same comparison again replaces the entry
    (entry,) = json.loads((tmp_path / "comparisons.json").read_text())["comparisons"]
    assert entry["protocol"] == "bleu_cased" and entry["delta"] > 0 and entry["ci95"][0] > 0
    assert entry["system_bleu"] == protocol_bleu(
        "bleu_cased", degraded(refs["raw"], 0.8, 2), refs["raw"], "de")[0]
    assert compare.main(["base", "nothing", "--results", str(tmp_path)]) == 1
