"""Every recorded run is what its config trains today: a change of a recipe (in a config, or a
default in the code) must record the run again, or the README would quote a run that
``make repro`` no longer makes."""

import json
from pathlib import Path

import pytest

from dgl_transformer.mt.configs import load_config
from repro.report.repro_results import recipe

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "repro" / "results"
CONFIGS = ROOT / "repro" / "configs"


def recorded_runs() -> list[Path]:
    """The result files of ``make repro`` runs (bench and viewer files are not runs)."""
    return [p for p in sorted(RESULTS.glob("*.json"))
            if "config" in json.loads(p.read_text(encoding="utf-8"))]


def test_the_recorded_runs_are_found():
    assert {"default", "default_dropout03"} <= {p.stem for p in recorded_runs()}


@pytest.mark.parametrize("path", recorded_runs(), ids=lambda p: p.stem)
def test_a_recorded_run_is_what_its_config_trains_today(path):
    result = json.loads(path.read_text(encoding="utf-8"))
    today = recipe(load_config(CONFIGS / f"{result['name']}.yaml").to_dict())
    then = recipe(result["config"])
    changed = {k: (then.get(k), today.get(k)) for k in then.keys() | today.keys()
               if then.get(k) != today.get(k)}
    assert not changed, f"{path.name}: recorded -> today: {changed}"


EXPERIMENTS = ROOT / "repro" / "experiments"


def recorded_experiments() -> list[Path]:
    """The result files of ``make experiments`` runs (the analyses' files are not runs)."""
    return [p for p in sorted((RESULTS / "experiments").glob("*.json"))
            if "config" in json.loads(p.read_text(encoding="utf-8"))]


def test_every_experiment_has_its_record_and_every_record_its_experiment():
    configs = {p.stem for p in EXPERIMENTS.glob("*.yaml") if not p.name.startswith("_")}
    assert {p.stem for p in recorded_experiments()} == configs


@pytest.mark.parametrize("path", recorded_experiments(), ids=lambda p: p.stem)
def test_a_recorded_experiment_is_what_its_config_trains_today(path):
    result = json.loads(path.read_text(encoding="utf-8"))
    today = recipe(load_config(EXPERIMENTS / f"{result['name']}.yaml").to_dict())
    then = recipe(result["config"])
    changed = {k: (then.get(k), today.get(k)) for k in then.keys() | today.keys()
               if then.get(k) != today.get(k)}
    assert not changed, f"{path.name}: recorded -> today: {changed}"
    assert result["train_steps"] == today["train.max_steps"]  # stopped by updates, not time
