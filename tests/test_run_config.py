"""Run configurations: every mistake is one line naming the file (or ``--set``) and the key."""

import subprocess
import sys
from pathlib import Path

import pytest

from dgl_transformer.mt import train
from dgl_transformer.mt.configs import ConfigError, load_config

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
        ("data: {variant: cased}", "data.variant must be one of raw, lc_tok, got 'cased'"),
        ("data: {tgt_lang: en}", "data.src_lang and data.tgt_lang are both 'en'"),
        ("model: {d_model: 30}", "model: TransformerConfig: d_model=30 is not divisible"),
        ("data: {max_len: 200}", "data.max_len=200 needs model.max_len > 200, got 128"),
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
