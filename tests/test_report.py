"""The repro's results table and resume accounting (no training: the trainer is stubbed)."""

import json
import subprocess
from pathlib import Path

import pytest

from dgl_transformer.mt import checkpoint
from dgl_transformer.mt.configs import load_config
from dgl_transformer.mt.train import RESUMABLE_CHANGES, TrainingError
from repro import run
from repro.report.markers import read_section
from repro.report.repro_results import (
    PUBLISHED_BLEU_ANCHORS,
    RECIPE_SECTION,
    RESULTS_SECTION,
    SWEEP_SECTION,
    TARGETS_SECTION,
    _against,
    duration,
    headline,
    in_search,
    recipe_table,
    results_table,
    run_cells,
    score_cell,
    seeds_report,
    sweep_report,
    target_report,
    updates,
    wall_time,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "repro" / "configs"


def result(name: str, bleu: float, wall: float, resumed: dict | None) -> dict:
    return {
        "name": name, "threads": 2, "wall_seconds": wall, "resumed_from": resumed,
        "scores": {"test_2016_flickr": {"bleu_tok_lc": bleu, "bleu_cased": 1.5, "bleu_lc": 2.5}},
        "config": {"model": {"n_enc_layers": 3, "n_dec_layers": 3, "d_model": 256},
                   "eval": {"beam_size": 4}, "data": {"variant": "raw"}},
    }


def test_table_rows_come_from_result_files(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(result("a", 36.789, 3000, None)))
    resumed = {"checkpoint": "runs/a/last.pt", "step": 2000, "train_seconds": 3240.0}
    (tmp_path / "b.json").write_text(json.dumps(result("b", 38.123, 4200, resumed)))
    (tmp_path / "bench.json").write_text(json.dumps({"summary": {}}))  # not a repro result
    rows = results_table(tmp_path).splitlines()
    ours = [r for r in rows if "ours" in r]
    assert len(ours) == 2
    assert "**36.79**" in ours[0] and "| 50.0 min |" in ours[0]
    assert "**38.12**" in ours[1]
    assert "2.07 h: 54.0 min of training before resuming at step 2,000, then 70.0 min" \
        in ours[1]
    assert duration(3 * 3600 + 900) == "3.25 h"
    cells = [c.strip() for c in ours[0].split("|")[2:5]]  # cased, dgl, tok_lc
    assert cells == ["**1.50**", "-", "**36.79**"]  # an older result without bleu_dgl
    dgl = next(r for r in rows if "6+6 layers (word level)" in r)
    assert [c.strip() for c in dgl.split("|")[2:5]] == ["-", "35.41", "-"]
    tiny = next(r for r in rows if "Transformer-Tiny" in r)
    assert [c.strip() for c in tiny.split("|")[2:5]] == ["-", "-", "41.02"]


def test_a_lowercased_run_shows_no_cased_score():
    """A run trained on lowercased text writes lowercased German: scoring it cased measures
    only the case it never produces, so the table leaves those columns empty."""
    lowercased = result("lc", 40.5, 3000, None)
    lowercased["config"]["data"]["variant"] = "lc_tok"
    lowercased["scores"]["test_2016_flickr"]["bleu_dgl"] = 8.2
    assert run_cells(lowercased) == ["-", "-", "**40.50**"]
    raw = result("raw", 40.5, 3000, None)
    assert run_cells(raw)[0] == "**1.50**"


def test_the_recorded_results_each_have_their_row(monkeypatch):
    """One row per result file of a run that scored test2016 (not bench.json, not the
    default's search and seeds), with that file's scores in their protocols' columns (older
    files lack some), its updates, wall time and path; each after the published anchors of
    the protocol it leads with."""
    monkeypatch.chdir(ROOT)
    files = [p for p in sorted(Path("repro/results").glob("*.json"))
             if "test_2016_flickr" in json.loads(p.read_text()).get("scores", {})
             and not in_search(p.stem)]
    assert "default.json" in [p.name for p in files]
    rows = results_table(Path("repro/results")).splitlines()[2:]
    assert len(rows) == len(PUBLISHED_BLEU_ANCHORS) + len(files)
    names = [row.strip("|").split("|")[0].strip() for row in rows]
    for path in files:
        r = json.loads(path.read_text())
        row = next(row for row in rows if row.startswith(f"| **ours: {r['name']}**"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:] == [*run_cells(r), updates(r), wall_time(r), f"`{path.as_posix()}`"]
        anchors = [i for i, (_, p, _) in enumerate(PUBLISHED_BLEU_ANCHORS) if p == headline(r)]
        first_anchor = names.index(PUBLISHED_BLEU_ANCHORS[anchors[0]][0])
        assert rows.index(row) > first_anchor


def test_a_score_cell_shows_its_interval():
    scores = {"bleu_dgl": 37.031, "bleu_dgl_ci95": [36.1, 38.02], "bleu_cased": 36.5}
    assert score_cell(scores, "bleu_dgl") == "**37.03** [36.10, 38.02]"
    assert score_cell(scores, "bleu_cased") == "**36.50**"
    assert score_cell(scores, "bleu_tok_lc") == "-"


def test_the_readme_sections_are_generated_from_the_recorded_results(monkeypatch):
    monkeypatch.chdir(ROOT)
    readme, results = Path("repro/README.md"), Path("repro/results")
    assert read_section(readme, RESULTS_SECTION) == results_table(results)
    assert read_section(readme, TARGETS_SECTION) == target_report(results)
    assert read_section(readme, SWEEP_SECTION) == sweep_report(results)
    assert read_section(readme, RECIPE_SECTION) == recipe_table()


def test_the_recipe_table_lists_every_setting_the_default_changes_from_the_anchor(
        monkeypatch):
    monkeypatch.chdir(ROOT)
    rows = {row.split("`")[1]: row for row in recipe_table().splitlines()[2:]}
    ours = load_config(CONFIGS / "default.yaml").to_dict()
    theirs = load_config(CONFIGS / "tiny.yaml").to_dict()
    changed = {f"{section}.{key}" for section, values in ours.items() if isinstance(values, dict)
               for key, value in values.items() if theirs[section].get(key) != value}
    assert set(rows) == changed - {"train.out_dir"}
    assert rows["model.norm_first"] == "| `model.norm_first` | True | False |"


def test_an_anchor_is_passed_only_when_the_interval_says_so():
    assert _against(37.76, [36.12, 39.39], 36.45).endswith("no claim either way")
    assert _against(38.0, [37.0, 39.0], 36.45).endswith("lies above it: ahead")
    assert _against(38.04, [36.33, 39.62], 41.02).endswith("lies below it: behind")
    assert _against(36.86, None, 36.45) == "+0.41; no interval recorded, so no claim either way"


def test_train_reports_where_a_resumed_run_started(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append(cmd))
    assert run.train("c.yaml", [], tmp_path) is None  # from scratch
    assert "--resume" not in calls[-1]
    checkpoint.rotate_and_save({"step": 7, "elapsed": 12.34}, tmp_path)
    resumed = run.train("c.yaml", ["train.seed=2"], tmp_path)
    assert resumed == {"checkpoint": (tmp_path / "last.pt").as_posix(), "step": 7,
                       "train_seconds": 12.3}
    assert calls[-1][-3:] == ["--set", "train.seed=2", "--resume"]
    config = tmp_path / "c.yaml"
    config.write_text("base: " + str(CONFIGS / "smoke.yaml") + "\nname: c\n")
    trained = checkpoint.TrainedModel(run_config=load_config(config).to_dict(), model_config={},
                                      pipeline={}, model={})
    trained.save(tmp_path / "final.pt")
    done = run.train(str(config), [], tmp_path)  # trained earlier: evaluate only
    assert done == {"checkpoint": (tmp_path / "final.pt").as_posix(), "step": 0,
                    "train_seconds": 0.0} and len(calls) == 2
    with pytest.raises(TrainingError, match="was trained with model.d_model=64"):
        run.train(str(config), ["model.d_model=32"], tmp_path)  # never reports another model


def test_finishing_settings_are_ones_a_resumed_run_may_change():
    """Resuming checks the data, model and train sections; eval settings may always change."""
    training = {s for s in run.FINISHING_SETTINGS if not s.startswith("eval.")}
    assert training <= RESUMABLE_CHANGES and training < set(run.FINISHING_SETTINGS)


def test_targets_say_met_or_missed_by_how_much(tmp_path):
    r = result("default", 40.5, 3000, None)
    r["scores"]["test_2016_flickr"]["bleu_dgl"] = 37.25
    r["history"] = [{"epoch": e, "step": 100 * (e + 1), "elapsed_s": 60.0 * e,
                     "val_bleu_greedy": b, "val_nll": n}
                    for e, (b, n) in enumerate([(20.0, 3.0), (30.0, 2.5), (29.0, 2.4)])]
    r.update(time_to_bleu={"metric": "m", "30": 1.0, "35": None}, stopped_early=None,
             val_candidates={"last": {"val_bleu_greedy": 29.0, "val_bleu_dgl": 28.5}},
             chosen_weights="last",
             train_steps=1234)
    r["config"]["train"] = {"max_tokens": 6000}
    (tmp_path / "default.json").write_text(json.dumps(r))
    (tmp_path / "other.json").write_text(json.dumps(result("other", 1.0, 10, None)))
    word = {**r, "name": "word", "scores": {"test_2016_flickr": {"bleu_dgl": 35.5}}}
    (tmp_path / "word.json").write_text(json.dumps(word))
    text = target_report(tmp_path)
    assert text.count("* **") == 2  # only runs named in REPRO_BLEU_TARGETS
    assert "* **word**: `bleu_dgl` 35.50: against DGL Transformer example's best published " \
           "36.45, -0.95; no interval recorded, so no claim either way" in text
    assert "`bleu_dgl` 37.25: target 38.00 missed by 0.75" in text
    assert "`bleu_tok_lc` 40.50: target 40.00 met" in text and "41.02, -0.52; no interval" in text
    assert "30 at update 200, 35 never" in text and "best epoch (2 of 3, 30.00)" in text
    assert "fell by 0.300 per epoch (still improving" in text
    assert "within 0.02 nats of its lowest (2.400) at update 300" in text
    ci = {"bleu_dgl_ci95": [36.5, 38.0], "bleu_tok_lc_ci95": [40.6, 41.1]}
    r["scores"]["test_2016_flickr"].update(ci)
    (tmp_path / "default.json").write_text(json.dumps(r))
    text = target_report(tmp_path)  # an anchor is passed only when the interval says so
    assert "36.45, +0.80, and our 95% interval [36.50, 38.00] lies above it: ahead" in text
    assert "41.02, -0.52, but it lies inside our 95% interval [40.60, 41.10]: no claim " \
           "either way" in text
    assert "Training saw 1,234 updates of at most 6,000 source and target tokens together (at " \
           "most 7.4M)" in text


def test_result_files_carry_no_absolute_paths():
    """A result file describes a run, not the machine that wrote it: no path of that machine
    (e.g. /home/..., /tmp/..., C:\\...) in any value."""
    def strings(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)
        elif isinstance(value, str):
            yield value

    files = sorted((ROOT / "repro" / "results").rglob("*.json"))
    assert len(files) > 5
    for path in files:
        for text in strings(json.loads(path.read_text())):
            assert not (text.startswith("/") or text[1:3] == ":\\"), f"{path}: {text!r}"


def test_the_search_table_decides_on_val_and_names_what_each_run_changes(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    base = load_config(CONFIGS / "default.yaml").to_dict()
    for name, dropout, val, test in (("default_a", 0.45, 36.0, 38.5),
                                     ("default_b", base["model"]["dropout"], 37.0, 37.5)):
        config = json.loads(json.dumps(base))
        config["name"], config["model"]["dropout"] = name, dropout
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "name": name, "config": config, "train_steps": 2400,
            "scores": {"val": {"bleu_dgl": val}, "test_2016_flickr": {"bleu_dgl": test}}}))
    rows = sweep_report(tmp_path).splitlines()[2:]
    assert rows[0].startswith("| `default_a` | `model.dropout` 0.45 | 2,400 | `bleu_dgl` 36.00 |")
    assert rows[0].endswith("|  |")  # the better test score does not decide
    assert rows[1].startswith("| `default_b` | (the default's recipe) |")
    assert rows[1].endswith("| **best on val** |")


def test_the_wall_time_says_how_a_run_was_recorded():
    fresh = {"wall_seconds": 3000.0, "train_steps": 2400}
    assert wall_time(fresh) == "50.0 min"
    resumed = {**fresh, "resumed_from": {"step": 1000, "train_seconds": 1200.0}}
    assert wall_time(resumed) == ("70.0 min: 20.0 min of training before resuming at step "
                                  "1,000, then 50.0 min")
    evaluated = {"wall_seconds": 60.0, "train_steps": 2400,
                 "resumed_from": {"step": 2400, "train_seconds": 3060.0}}
    assert wall_time(evaluated) == ("52.0 min: 51.0 min of training in an earlier run, then "
                                    "1.0 min here to evaluate it")


def test_the_seeds_table_states_each_runs_conditions_and_the_spread():
    base = load_config(CONFIGS / "default.yaml").to_dict()
    seeds = []
    for seed, test, load in ((1, 37.0, 3.1), (2, 38.0, None)):
        config = json.loads(json.dumps(base))
        config["train"]["seed"] = seed
        seeds.append({"name": f"default_seed{seed}", "config": config, "threads": seed,
                      "load_1m_mean": load, "wall_seconds": 2400.0,
                      "scores": {"val": {"bleu_dgl": 36.0},
                                 "test_2016_flickr": {"bleu_dgl": test}}})
    lines = seeds_report(seeds).splitlines()
    assert lines[2] == ("| `default_seed1` | 1 | `bleu_dgl` 36.00 | `bleu_dgl` **37.00** | 1 | "
                        "3.10 | 40.0 min |")
    assert lines[3].endswith("| 2 | - | 40.0 min |")  # a file without the load says so
    assert lines[-1] == ("`default` over 2 seeds (mean +- sample standard deviation): val "
                         "`bleu_dgl` 36.00 +- 0.00, test2016 `bleu_dgl` 37.50 +- 0.71.")
