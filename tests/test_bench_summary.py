"""What the bench makes of its parts: the summary numbers, the targets, and the fallbacks, which
are labelled, never counted as meeting a target, and refused with ``--require-trained``; and
the config's optimiser in every model the bench trains."""

import pytest
from committed_bench import COMMITTED, FALLBACK_MODEL, TRAINED_MODEL, with_decoding_model

from dgl_transformer.mt.configs import load_config
from repro.bench import cli
from repro.bench.corpus import SYNTHETIC_LABEL, Size, synthetic_corpus
from repro.bench.decoding import decoding_model
from repro.bench.results import FALLBACK, is_fallback, portable, portable_command
from repro.bench.summary import (
    BENCH_TARGETS,
    EARLIER_BENCH_TARGETS,
    SUMMARY_MEASURES,
    judge_targets,
    summarise,
    summary_fallbacks,
)
from repro.bench.training import make_models
from repro.report.benchmarks import read_bench_results


def test_the_summary_reads_each_part_of_the_committed_run():
    assert summarise(COMMITTED) == COMMITTED["summary"]
    assert list(SUMMARY_MEASURES)[:len(BENCH_TARGETS)] == list(BENCH_TARGETS)
    assert set(EARLIER_BENCH_TARGETS) <= set(SUMMARY_MEASURES)


def test_targets_are_judged_in_their_direction():
    summary = {
        "train_graph_over_dense_small_random": 1.5, "train_graph_over_dense_small_bucketed": 0.8,
        "train_graph_over_dense_d256_random": 1.9, "train_graph_over_dense_d256_bucketed": 0.95,
        "attention_graph_over_sdpa_ms": 3.9, "translate_sentences_per_second": 20.0,
        "len4096_window_over_dense_speed": 3.0,
    }
    met = {k: v["met"] for k, v in judge_targets(summary, BENCH_TARGETS, {}).items()}
    assert [k for k, ok in met.items() if not ok] == [
        "train_graph_over_dense_small_bucketed", "attention_graph_over_sdpa_ms"]


def test_a_fallback_model_meets_no_target_however_fast():
    """The bench's own model, trained 100 steps when no checkpoint exists, decodes fast enough to
    beat the target; the target is not judged on it."""
    results = with_decoding_model(COMMITTED, FALLBACK_MODEL)
    fallbacks = summary_fallbacks(results)
    assert is_fallback(FALLBACK_MODEL)
    assert fallbacks == {"translate_sentences_per_second": FALLBACK_MODEL,
                         "beam_incremental_over_naive": FALLBACK_MODEL}
    verdict = judge_targets(results["summary"], BENCH_TARGETS, fallbacks)
    assert results["summary"]["translate_sentences_per_second"] >= 16.7
    assert verdict["translate_sentences_per_second"] == {
        "target": ">= 16.7", "met": None, "not_judged": FALLBACK_MODEL}
    assert judge_targets(results["summary"], BENCH_TARGETS, {})[
        "translate_sentences_per_second"]["met"] is True


def test_the_committed_run_decoded_a_trained_model():
    """``make bench --require-trained`` wrote it: no number rests on a stand-in, and its verdicts
    are the ones the bench judges from its summary."""
    assert not is_fallback(COMMITTED["decoding"]["model"])
    assert summary_fallbacks(COMMITTED) == {}
    assert COMMITTED["targets"] == judge_targets(COMMITTED["summary"], BENCH_TARGETS, {})
    assert summary_fallbacks(with_decoding_model(COMMITTED, TRAINED_MODEL)) == {}


def test_a_synthetic_corpus_is_a_fallback_for_every_number_of_its_size():
    results = with_decoding_model(COMMITTED, TRAINED_MODEL)
    results["sizes"]["small"]["data"] = SYNTHETIC_LABEL
    fallbacks = summary_fallbacks(results)
    small = [k for k, m in SUMMARY_MEASURES.items() if "small" in m.rests_on]
    assert sorted(fallbacks) == sorted(small) and len(small) == 5
    assert set(fallbacks.values()) == {SYNTHETIC_LABEL}
    verdicts = judge_targets(results["summary"], BENCH_TARGETS, fallbacks)
    assert [k for k, v in verdicts.items() if v["met"] is None] == [
        k for k in BENCH_TARGETS if k in small]


def test_result_files_carry_no_absolute_path():
    strings = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            strings.append(value)

    walk(COMMITTED)
    assert not [s for s in strings if s.startswith("/") or " /" in s or "(/" in s]


def test_paths_are_recorded_relative_or_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert portable(tmp_path / "runs" / "a" / "final.pt") == "runs/a/final.pt"
    assert portable("/somewhere/else/multi30k") == ".../multi30k"
    assert portable("data/multi30k") == "data/multi30k"
    assert portable_command(["python -m repro.bench", "--checkpoint", "/x/y/final.pt"]) == \
        "python -m repro.bench --checkpoint .../final.pt"


@pytest.fixture(scope="module")
def synthetic_size() -> Size:
    overrides = ["model.d_model=16", "model.n_heads=2", "model.d_ff=16", "model.n_enc_layers=1",
                 "model.n_dec_layers=1", "data.vocab_size=40", "train.max_tokens=300",
                 "train.out_dir=runs/no_such_run"]
    config = "repro/configs/default.yaml"
    return Size("small", config, load_config(config, overrides), synthetic_corpus(40, 64, 8))


def test_the_fallback_decoding_model_says_what_it_is(synthetic_size):
    decoding = decoding_model(synthetic_size, None, train_steps=2)
    assert decoding.label == f"{FALLBACK}trained 2 steps here, no runs/no_such_run/final.pt"
    assert decoding.corpus == SYNTHETIC_LABEL
    assert len(decoding.test) == 8


def test_bench_models_take_the_configs_optimiser(synthetic_size):
    """Adam and the warm-up of the config (``build_optimizer``), not constants of the bench."""
    t = synthetic_size.cfg.train
    for _, opt, sched in make_models(synthetic_size.model, synthetic_size.cfg,
                                     ["graph", "dense"]).values():
        group = opt.param_groups[0]
        assert group["initial_lr"] == t.lr and group["betas"] == tuple(t.betas)
        assert group["weight_decay"] == t.weight_decay
        assert sched.lr_lambdas[0](t.warmup_steps - 1) == 1.0  # peak at the config's warm-up


def test_require_trained_refuses_in_one_line_before_running(tmp_path):
    with pytest.raises(SystemExit) as refused:
        cli.main(["--require-trained", "--set", f"train.out_dir={tmp_path / 'none'}"])
    message = str(refused.value.code)
    assert message.startswith("error: --require-trained: no trained model") and "\n" not in message


def test_report_without_results_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as refused:
        read_bench_results(tmp_path / "bench.json")
    assert str(refused.value.code).startswith("error: ") and "\n" not in str(refused.value.code)
