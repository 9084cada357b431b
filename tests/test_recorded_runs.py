"""Every recorded run is what its config trains today: a change of a recipe (in a config, or a
default in the code) must record the run again, or the README would quote a run that
``make repro`` (or ``make experiments``) no longer makes."""

import json
from pathlib import Path

import pytest

from dgl_transformer.mt.configs import load_config
from repro.report.repro_results import recipe

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "repro" / "results"
CONFIGS = ROOT / "repro" / "configs"
EXPERIMENTS = ROOT / "repro" / "experiments"


def recorded(folder: Path) -> list[Path]:
    """The result files of training runs in ``folder`` (bench, viewer and analysis files are
    not runs)."""
    return [p for p in sorted(folder.glob("*.json"))
            if {"config", "train_steps"} <= json.loads(p.read_text(encoding="utf-8")).keys()]


def drift(result: dict, configs: Path) -> dict[str, tuple[object, object]]:
    """The recipe settings in which a recorded run and today's config of its name differ:
    setting -> (recorded, today)."""
    today = recipe(load_config(configs / f"{result['name']}.yaml").to_dict())
    then = recipe(result["config"])
    return {k: (then.get(k), today.get(k)) for k in then.keys() | today.keys()
            if then.get(k) != today.get(k)}


def test_the_recorded_runs_are_found():
    assert {"default", "default_dropout03"} <= {p.stem for p in recorded(RESULTS)}


def test_every_experiment_has_its_record_and_every_record_its_experiment():
    configs = {p.stem for p in EXPERIMENTS.glob("*.yaml") if not p.name.startswith("_")}
    assert {p.stem for p in recorded(RESULTS / "experiments")} == configs


@pytest.mark.parametrize("path", recorded(RESULTS), ids=lambda p: p.stem)
def test_a_recorded_run_is_what_its_config_trains_today(path):
    result = json.loads(path.read_text(encoding="utf-8"))
    assert not (changed := drift(result, CONFIGS)), f"{path.name}: recorded -> today: {changed}"


@pytest.mark.parametrize("path", recorded(RESULTS / "experiments"), ids=lambda p: p.stem)
def test_a_recorded_experiment_is_what_its_config_trains_today(path):
    result = json.loads(path.read_text(encoding="utf-8"))
    assert not (changed := drift(result, EXPERIMENTS)), f"{path.name}: recorded -> today: {changed}"
    assert result["train_steps"] == result["config"]["train"]["max_steps"]  # stopped by updates
