"""Run configurations: every mistake is one line naming the file (or ``--set``) and the key."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from dgl_transformer.mt import train
from dgl_transformer.mt.configs import MODEL_RECIPE, ConfigError, RunConfig, load_config
from dgl_transformer.mt.text import VARIANTS
from dgl_transformer.nn.config import TransformerConfig

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "repro" / "configs").glob("*.yaml"))


def error_of(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load(path):
    load_config(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("train: {lrate: 0.1}", "unknown key 'train.lrate'"),
        ("modle: {d_model: 8}", "unknown key 'modle'"),
        ("train: {lr: fast}", "train.lr must be float, got 'fast'"),
        ("train: {max_steps: 1.5}", "train.max_steps must be int, got 1.5"),
        ("model: {share_embeddings: 1}", "model.share_embeddings must be bool, got 1"),
        ("train: {betas: 0.9}", "train.betas must be a list, got 0.9"),
        ("train: {betas: [0.9, x]}", "train.betas[1] must be float, got 'x'"),
        ("train: {betas: [0.9]}", "train.betas must be two numbers in [0, 1), got [0.9]"),
        ("train: {lr: .nan}", "train.lr must be a finite number, got nan"),
        ("train: {checkpoint_every: 0}", "train.checkpoint_every must be >= 1, got 0"),
        ("train: {label_smoothing: 1.0}", "train.label_smoothing must be in [0, 1), got 1.0"),
        ("data: {variant: cased}",
         f"data.variant must be one of {', '.join(VARIANTS)}, got 'cased'"),
        ("data: {tgt_lang: en}", "data.src_lang and data.tgt_lang are both 'en'"),
        ("model: {d_model: 30}", "model: TransformerConfig: d_model=30 is not divisible"),
        ("data: {max_len: 300}", "data.max_len=300 needs model.max_len > 300, got 128"),
        ("train: 3", "train must be a mapping"),
        ("- a\n- b", "must be a mapping of sections"),
        ("train: {lr: [", "not valid YAML"),
    ],
)
def test_bad_file_names_file_and_key(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text + "\n")
    error = error_of(path)
    assert error.startswith(f"{path}: ") and message in error


def test_overrides_are_checked_and_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train: {lr: 0.5}\n")
    cfg = load_config(path, ["train.lr=1e-3", "model.d_model=64", "data.root=/some/where"])
    assert (cfg.train.lr, cfg.model.d_model, cfg.data.root) == (0.001, 64, "/some/where")
    assert error_of(path, ["train.lr=fast"]) == "--set: train.lr must be float, got 'fast'"
    assert error_of(path, ["train.nope=1"]).startswith("--set: unknown key 'train.nope'")
    assert "expected section.key=value" in error_of(path, ["train.lr"])
    assert error_of(path, ["name.x=1"]) == "--set: name must be str, got {'x': 1}"
    assert error_of(tmp_path / "none.yaml") == f"{tmp_path / 'none.yaml'}: no such config file"


def test_train_cli_bad_config_exits_non_zero_with_one_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train: {out_dir: x, max_stepz: 3}\n")
    cmd = [sys.executable, "-m", "dgl_transformer.mt.train", "--config", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: unknown key 'train.max_stepz' (known: ")


def test_train_main_wrong_type_is_one_line(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("train: {max_tokens: lots}\n")
    assert train.main(["--config", str(path)]) == 1
    assert capsys.readouterr().err == f"error: {path}: train.max_tokens must be int, got 'lots'\n"


def test_repeated_set_options_accumulate():
    """Every ``--set`` counts (argparse's default would keep only the last one), and a child
    command gets no empty ``--set``, which argparse rejects."""
    import argparse

    from dgl_transformer.mt.configs import add_overrides_argument, overrides_args

    parser = argparse.ArgumentParser()
    add_overrides_argument(parser)
    args = parser.parse_args(["--set", "train.seed=2", "--set", "train.lr=0.5", "data.max_len=9"])
    assert args.set == ["train.seed=2", "train.lr=0.5", "data.max_len=9"]
    assert parser.parse_args([]).set == [] and overrides_args([]) == []
    assert overrides_args(args.set) == ["--set", *args.set]


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text + "\n")


def test_child_overrides_only_the_keys_it_names(tmp_path):
    write(tmp_path, {
        "base.yaml": "name: base\ntrain: {lr: 0.5, max_epochs: 7, betas: [0.8, 0.9]}",
        "runs/child.yaml": "base: ../base.yaml\ntrain: {max_epochs: 2, betas: [0.7, 0.8]}",
    })
    cfg = load_config(tmp_path / "runs" / "child.yaml")
    assert (cfg.name, cfg.train.lr, cfg.train.max_epochs) == ("base", 0.5, 2)
    assert cfg.train.betas == [0.7, 0.8]  # a list replaces, it does not merge


def test_bases_chain_and_set_applies_last(tmp_path):
    write(tmp_path, {
        "a.yaml": "train: {lr: 0.5, seed: 3}\nmodel: {d_model: 64}",
        "b.yaml": "base: a.yaml\ntrain: {seed: 4}",
        "c.yaml": "base: b.yaml\nname: c\nmodel: {n_heads: 2}",
    })
    cfg = load_config(tmp_path / "c.yaml", ["train.seed=5", "model.d_model=32"])
    assert (cfg.name, cfg.train.lr, cfg.train.seed) == ("c", 0.5, 5)
    assert (cfg.model.d_model, cfg.model.n_heads) == (32, 2)
    assert load_config(tmp_path / "c.yaml").train.seed == 4


def test_base_cycle_names_the_files(tmp_path):
    write(tmp_path, {"a.yaml": "base: b.yaml", "b.yaml": "base: a.yaml"})
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert error_of(a) == f"{b}: base cycle: {a} -> {b} -> {a}"
    write(tmp_path, {"self.yaml": "base: self.yaml"})
    assert "base cycle" in error_of(tmp_path / "self.yaml")


@pytest.mark.parametrize(
    "base_text, key",
    [
        ("train: {lrr: 0.1}", "unknown key 'train.lrr'"),
        ("train: {lr: fast}", "train.lr must be float, got 'fast'"),
        ("train: {max_epochs: 0}", "train.max_epochs must be >= 1, got 0"),
    ],
)
def test_mistake_in_a_base_names_the_base(tmp_path, base_text, key):
    write(tmp_path, {"base.yaml": base_text, "child.yaml": "base: base.yaml\nname: child"})
    assert error_of(tmp_path / "child.yaml").startswith(f"{tmp_path / 'base.yaml'}: {key}")


def test_mistake_in_a_child_names_the_child(tmp_path):
    write(tmp_path, {"base.yaml": "name: base", "child.yaml": "base: base.yaml\ntrain: {lrr: 1}"})
    child = tmp_path / "child.yaml"
    assert error_of(child).startswith(f"{child}: unknown key 'train.lrr' (known: ")
    write(tmp_path, {"child.yaml": "base: 3"})
    assert error_of(child) == f"{child}: base must be str, got 3"


def test_missing_base_is_one_line(tmp_path):
    write(tmp_path, {"child.yaml": "base: gone.yaml"})
    child = tmp_path / "child.yaml"
    assert error_of(child) == f"{tmp_path / 'gone.yaml'}: no such config file (base of {child})"


def test_model_section_follows_transformer_config():
    """Same fields; the recipe's values where it sets them, the network's defaults elsewhere."""
    model_fields = {f.name: f.default for f in dataclasses.fields(RunConfig().model)}
    expected = {f.name: MODEL_RECIPE.get(f.name, f.default)
                for f in dataclasses.fields(TransformerConfig)
                if f.name not in ("src_vocab", "tgt_vocab")}
    assert model_fields == expected


def test_a_config_without_base_gets_the_default_recipe(tmp_path):
    """One source of defaults: a file that names nothing but its run gets exactly the config
    of repro/configs/default.yaml, not an older recipe."""
    bare = tmp_path / "bare.yaml"
    bare.write_text("name: default\n")
    assert load_config(bare).to_dict() == load_config(ROOT / "repro/configs/default.yaml").to_dict()


def test_model_config_uses_one_joint_vocabulary():
    cfg = RunConfig.from_dict({"model": {"d_model": 64, "share_embeddings": True}})
    model = cfg.model_config(500)
    assert isinstance(model, TransformerConfig)
    assert (model.src_vocab, model.tgt_vocab, model.d_model, model.share_embeddings) == (
        500, 500, 64, True)
    assert model.max_len == MODEL_RECIPE["max_len"]  # the recipe, not the network default
