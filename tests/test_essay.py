"""The essay's decision rule (repro/essay.py) on recorded runs made up from test2016's
references: a clear improvement on every one of three seeds is decided, a mixed one is not,
and one with fewer seeds whose test intervals lie on one side of zero wants seeds."""

import json

import numpy as np
import pytest
from multi30k_mirror import MIRROR, NEEDS_MIRROR

from dgl_transformer.mt.data import DataError, read_split
from repro import essay

pytestmark = NEEDS_MIRROR


def record(folder, name: str, seed: int, keep: float, val: float) -> None:
    """A result file and its translations: the references with words dropped at random."""
    refs = read_split(MIRROR, "test_2016_flickr", "de", "raw")
    rng = np.random.default_rng([seed, int(keep * 100)])
    lines = [" ".join(w for w in r.split() if rng.random() < keep) for r in refs]
    (folder / "outputs").mkdir(exist_ok=True)
    (folder / "outputs" / f"{name}.test_2016_flickr.de").write_text(
        "".join(f"{line}\n" for line in lines))
    config = {"data": {"tgt_lang": "de"}, "eval": {"protocol": "bleu_cased"},
              "train": {"seed": seed}}
    (folder / f"{name}.json").write_text(json.dumps({
        "name": name, "config": config, "train_steps": 650,
        "scores": {"val": {"bleu_cased": val}}}))


@pytest.fixture()
def experiments(tmp_path):
    for seed, suffix in ((1, ""), (2, "_seed2"), (3, "_seed3")):
        record(tmp_path, f"graph_complete{suffix}", seed, 0.7, 30.0)
        record(tmp_path, f"graph_window_1{suffix}", seed, 0.8, 33.0 + seed)  # better on all
        record(tmp_path, f"heads_1{suffix}", seed, 0.69 if seed == 1 else 0.8, 30.5)  # mixed
    record(tmp_path, "graph_window_2", 1, 0.8, 33.0)  # better, on one seed only
    record(tmp_path, "graph_global_1", 1, 0.8, 29.0)  # better on test, not on val: one seed
    record(tmp_path, "aggregate_enc_mean_window_4", 1, 0.5, 20.0)  # not a seed of anything
    return tmp_path


def test_a_change_better_on_every_seed_is_decided_and_a_mixed_one_is_not(experiments):
    path = essay.write_verdicts(MIRROR, experiments)
    verdicts = {(v["baseline"], v["changed"]): v
                for v in json.loads(path.read_text())["verdicts"]}
    assert set(verdicts) == {("graph_complete", "graph_window_1"),
                             ("graph_complete", "graph_window_2"),
                             ("graph_complete", "graph_global_1"),
                             ("graph_complete", "heads_1")}
    window = verdicts["graph_complete", "graph_window_1"]
    assert window["verdict"] == "better" and window["seeds"] == [1, 2, 3]
    assert window["updates"] == [650] and window["val_delta_mean"] == 5.0
    assert window["val_delta_sd"] == pytest.approx(1.0, abs=0.01)
    assert all(s["test"]["ci95"][0] > 0 for s in window["per_seed"])
    heads = verdicts["graph_complete", "heads_1"]
    assert heads["verdict"] == "not decided"
    assert heads["per_seed"][0]["test"]["ci95"][0] < 0
    one_seed = verdicts["graph_complete", "graph_window_2"]
    assert one_seed["verdict"] == "wants seeds" and one_seed["seeds"] == [1]
    assert one_seed["per_seed"][0]["test"]["ci95"][0] > 0
    # its val disagrees, but seeds 2 and 3 could outvote seed 1 there: it wants seeds too
    val_disagrees = verdicts["graph_complete", "graph_global_1"]
    assert val_disagrees["verdict"] == "wants seeds" and val_disagrees["val_delta_mean"] < 0


def test_the_command_names_the_pairs_that_want_seeds(experiments, monkeypatch, capsys):
    monkeypatch.setattr(essay, "EXPERIMENT_RESULTS", experiments)
    monkeypatch.setenv(essay.MIRROR_ENV, str(MIRROR))
    assert essay.main([]) == 0
    err = capsys.readouterr().err
    assert ("graph_window_2 against graph_complete wants seeds: test intervals on one side of "
            "zero on seeds [1]") in err
    assert "graph_window_1 against" not in err and "heads_1 against" not in err


def test_the_groups_take_seed_runs_only(experiments):
    folder, runs = essay.group_runs("graph_window_1", experiments)
    assert folder == experiments
    assert runs == {1: "graph_window_1", 2: "graph_window_1_seed2", 3: "graph_window_1_seed3"}
    assert essay.group_runs("aggregate_enc_mean", experiments)[1] == {}


def test_a_run_recorded_without_val_decoded_as_test_is_refused(experiments):
    path = experiments / "heads_1_seed2.json"
    r = json.loads(path.read_text())
    del r["scores"]["val"]
    path.write_text(json.dumps(r))
    with pytest.raises(DataError, match="heads_1_seed2: recorded before val was decoded"):
        essay.write_verdicts(MIRROR, experiments)
