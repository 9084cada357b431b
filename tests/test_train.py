"""Training reliability on tiny runs: kill and resume, corrupt-checkpoint fallback, NaN stop,
determinism, and data-parallel training with torchrun (gloo on CPU)."""

import copy
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from multi30k_mirror import MIRROR, NEEDS_MIRROR

from dgl_transformer import training
from dgl_transformer.mt import checkpoint, train
from dgl_transformer.mt.configs import VAL_BLEU_KEYS
from dgl_transformer.mt.data import fetch
from repro import run as repro_run

ROOT = Path(__file__).resolve().parent.parent
pytestmark = NEEDS_MIRROR
#: 100 pairs make 5 batches an epoch: checkpoints at steps 3, 5 (epoch end), 6, 9, 10.
TINY = {
    "name": "tiny",
    "data": {"vocab_size": 1000, "train_limit": 100, "val_limit": 10},
    "model": {"d_model": 32, "n_heads": 2, "d_ff": 64, "n_enc_layers": 1, "n_dec_layers": 1},
    "train": {"threads": 1, "max_tokens": 1000, "max_epochs": 2, "max_steps": 10,
              "checkpoint_every": 3, "log_every": 1, "warmup_steps": 10,
              "val_bleu_sentences": 5, "average_last": 2},
    "eval": {"max_len_a": 0.0, "max_len_b": 5},
}
#: Wall-clock and machine-load fields, never compared.
TIMING = {"tokens_per_s", "elapsed_s", "train_seconds", "load_1m"}


def write_config(path: Path, data_root: Path, **changes: dict) -> Path:
    values = copy.deepcopy(TINY)
    values["data"]["root"] = str(data_root)
    for section, entries in changes.items():
        values[section].update(entries)
    path.write_text(yaml.safe_dump(values))
    return path


def records(run_dir: Path) -> list[dict]:
    """metrics.jsonl without its wall-clock fields."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def train_cmd(config: Path, out_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dgl_transformer.mt.train", "--config", str(config),
            "--set", f"train.out_dir={out_dir}", *extra]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ"


@pytest.fixture(scope="module", autouse=True)
def _restore_torch_threads():
    """In-process runs set torch's thread count (train.threads, 1 here: with 2 threads on 2
    busy cores OpenMP's spinning makes tiny runs ten times slower); give it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "multi30k"
    fetch(root, MIRROR, langs=("en", "de"))
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root) -> tuple[Path, Path]:
    """An uninterrupted run, in this process: (config, run directory)."""
    tmp = tmp_path_factory.mktemp("reference")
    config = write_config(tmp / "tiny.yaml", data_root)
    assert train.main(["--config", str(config), "--set", f"train.out_dir={tmp / 'run'}"]) == 0
    return config, tmp / "run"


#: ``python -c KILLER STEP train-args...``: train, and SIGKILL itself right after logging
#: step STEP, a deterministic instant (a kill from outside races a run this fast).
KILLER = """
import os, signal, sys
from dgl_transformer.mt import train
write_log = train.Trainer.write_log
def write_then_die(self, record):
    write_log(self, record)
    if record.get("step") == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
train.Trainer.write_log = write_then_die
sys.exit(train.main(sys.argv[2:]))
"""


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(reference, tmp_path):
    config, ref = reference
    run = tmp_path / "run"
    cmd = [sys.executable, "-c", KILLER, "7", *train_cmd(config, run)[3:]]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (run / "final.pt").exists()

    # determinism: a second fresh run (another process) logged the same losses so far
    killed = records(run)
    assert killed == records(ref)[: len(killed)]
    assert killed[-1]["step"] == 7  # one record more than the last checkpoint (step 6) holds
    extra = len((run / "metrics.jsonl").read_bytes().splitlines(keepends=True)[-1])

    proc = subprocess.run(train_cmd(config, run, "--resume"), cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming at epoch 1, batch 1, step 6" in proc.stderr  # mid-epoch
    assert f"metrics.jsonl: dropped {extra} bytes" in proc.stderr

    # bit for bit: every loss record (none twice), validation scores and final weights
    assert records(run) == records(ref)
    assert [r["kind"] for r in records(run)].count("final") == 1
    assert_same_weights(checkpoint.TrainedModel.load(run / "final.pt").model,
                        checkpoint.TrainedModel.load(ref / "final.pt").model)
    assert_same_weights(checkpoint.load(run / "last.pt")["optimizer"]["state"][0],
                        checkpoint.load(ref / "last.pt")["optimizer"]["state"][0])

    # the progress bar shows loss, tokens/s and an ETA
    assert re.search(r"\d\d:\d\d<\d\d:\d\d.*loss=\d+\.\d{3}, tok_s=[\d,]+", proc.stderr)


def test_metrics_log_has_train_epoch_and_final_records(reference):
    _, ref = reference
    kinds = [r["kind"] for r in records(ref)]
    assert kinds == ["train"] * 5 + ["epoch"] + ["train"] * 5 + ["epoch", "final"]
    first = json.loads((ref / "metrics.jsonl").read_text().splitlines()[0])
    assert first.keys() >= {"step", "epoch", "loss", "nll", "lr", "tokens_per_s", "elapsed_s"}
    epoch = records(ref)[5]
    assert epoch.keys() >= {"train_nll", "val_nll", "val_bleu_greedy"}


def test_resume_falls_back_to_prev_when_last_is_corrupt(reference, tmp_path, capsys):
    config, ref = reference
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    (run / "final.pt").unlink()
    last = run / "last.pt"
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF
    last.write_bytes(data)
    assert train.main(["--config", str(config), "--set", f"train.out_dir={run}", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {last}: corrupt checkpoint (SHA-256 mismatch); resuming from " \
           f"{run / 'prev.pt'} instead" in err
    assert "resuming at epoch 1, batch 4, step 9" in err
    assert records(run) == records(ref)
    assert_same_weights(checkpoint.TrainedModel.load(run / "final.pt").model,
                        checkpoint.TrainedModel.load(ref / "final.pt").model)


def test_repro_continues_a_finished_shorter_run_to_the_longer_runs_result(
    reference, tmp_path, monkeypatch
):
    """``make repro`` on a run directory whose ``final.pt`` a shorter limit wrote (the default
    run copied into a longer config's directory) trains on from its last checkpoint and ends
    exactly where the longer run from scratch ends; run again under the same limits, it trains
    nothing."""
    config, ref = reference
    run = tmp_path / "run"
    short = ["--config", str(config), "--set", f"train.out_dir={run}", "train.max_steps=7"]
    assert train.main(short) == 0  # stops mid-epoch (5 batches an epoch), writes final.pt
    assert checkpoint.TrainedModel.load(run / "final.pt").steps == 7
    monkeypatch.chdir(ROOT)

    resumed = repro_run.train(str(config), [f"train.out_dir={run}"], run)
    assert resumed is not None and resumed["step"] == 7
    assert records(run) == records(ref)
    longer, whole = (checkpoint.TrainedModel.load(d / "final.pt") for d in (run, ref))
    assert (longer.steps, longer.stopped, longer.chosen) == (whole.steps, whole.stopped,
                                                             whole.chosen)
    assert_same_weights(longer.model, whole.model)

    written = (run / "final.pt").stat().st_mtime_ns
    again = repro_run.train(str(config), [f"train.out_dir={run}"], run)  # evaluate only
    assert again["step"] == whole.steps and again["train_seconds"] > 0
    assert (run / "final.pt").stat().st_mtime_ns == written


def test_existing_run_needs_resume_and_resume_needs_the_same_settings(reference, capsys):
    config, ref = reference
    args = ["--config", str(config), "--set", f"train.out_dir={ref}"]
    assert train.main(args) == 1
    assert capsys.readouterr().err == (
        f"error: {ref} already holds checkpoints: pass --resume, or choose another "
        "train.out_dir\n"
    )
    assert train.main([*args, "train.seed=2", "--resume"]) == 1
    assert capsys.readouterr().err == (
        f"error: --resume: {ref / 'last.pt'} was trained with train.seed=1 but the config says "
        "2; keep it, or choose another train.out_dir\n"
    )


def test_nan_loss_stops_with_clear_message_and_keeps_last_good_checkpoint(
    data_root, tmp_path, monkeypatch, capsys
):
    real = training.smoothed_and_nll
    steps = []

    def poisoned(logits, gold, smoothing):
        loss, nll = real(logits, gold, smoothing)
        steps.append(1)
        return (loss * float("nan"), nll) if len(steps) == 5 else (loss, nll)

    monkeypatch.setattr(training, "smoothed_and_nll", poisoned)  # inside train_step
    config = write_config(tmp_path / "tiny.yaml", data_root, train={"checkpoint_every": 2})
    run = tmp_path / "run"
    assert train.main(["--config", str(config), "--set", f"train.out_dir={run}"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert errors == [
        "error: non-finite loss (nan) or gradient norm (nan) at step 5 (epoch 0, batch 4); "
        f"stopped before the update; last good checkpoint in {run}: step 4"
    ]
    kept = checkpoint.load(run / "last.pt")
    assert kept["step"] == 4
    assert all(torch.isfinite(p).all() for p in kept["model"].values())
    assert not (run / "final.pt").exists()
    assert [r["step"] for r in records(run)] == [1, 2, 3, 4]


def test_torchrun_two_processes_match_one_process(data_root, tmp_path):
    """Same global batches, no dropout: equal up to float summation order.

    Losses agree to rel. 1e-5 (observed ~1e-7). Weights agree to 1e-6 except attention key
    biases, whose exact gradient is zero (softmax ignores a constant shift): Adam turns their
    float noise into lr-sized steps, so they differ by up to ~1e-4 after 6 steps.
    60 pairs make 5 batches an epoch, so rank 0 validates alone at step 5 while rank 1 waits.
    """
    config = write_config(
        tmp_path / "tiny.yaml", data_root, data={"train_limit": 60},
        model={"dropout": 0.0}, train={"max_tokens": 600, "max_steps": 6},
    )
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert train.main(["--config", str(config), "--set", f"train.out_dir={single}"]) == 0
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node=2", *train_cmd(config, ddp)[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    one, two = records(single), records(ddp)
    assert [(r["kind"], r["step"]) for r in one] == [(r["kind"], r["step"]) for r in two]
    for a, b in zip(one, two, strict=True):
        for key in ("loss", "nll", "train_nll", "val_nll"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-5), (a, b)
    assert proc.stderr.count("resuming") == 0 and proc.stderr.count("final candidate last") == 1
    final_one = checkpoint.TrainedModel.load(single / "final.pt").model
    final_two = checkpoint.TrainedModel.load(ddp / "final.pt").model
    assert all(torch.allclose(final_one[k], final_two[k], atol=1e-3) for k in final_one)
    assert len(checkpoint.load(ddp / "last.pt")["rng"]) == 2  # every rank's dropout stream


def test_val_pairs_longer_than_the_model_are_left_out_with_a_message(data_root, tmp_path,
                                                                      capsys):
    """A val target longer than the model's positions used to crash validation after the
    first epoch with a traceback; it is now left out at load, and the run says how many."""
    config = write_config(tmp_path / "short.yaml", data_root, data={"max_len": 14,
                                                                  "val_limit": 60},
                          model={"max_len": 15}, train={"max_steps": 5})
    assert train.main(["--config", str(config), "--set", f"train.out_dir={tmp_path / 'run'}"]) == 0
    err = capsys.readouterr().err
    left_out = re.search(r"val: (\d+) pair\(s\) longer than data.max_len=14 subwords left out",
                         err)
    assert left_out and int(left_out.group(1)) > 0, err[-2000:]
    epoch = next(r for r in records(tmp_path / "run") if r["kind"] == "epoch")
    assert epoch["val_nll"] > 0


#: ``python -c STOPPER STEP train-args...``: train, and send itself SIGTERM right after logging
#: step STEP (as `kill` or a session's end would), a deterministic instant.
STOPPER = KILLER.replace("signal.SIGKILL", "signal.SIGTERM")


def test_sigterm_stops_after_the_update_with_a_checkpoint_and_resumes_exactly(
    reference, tmp_path
):
    config, ref = reference
    run = tmp_path / "run"
    cmd = [sys.executable, "-c", STOPPER, "7", *train_cmd(config, run)[3:]]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert f"interrupted: stopped at step 7 with a checkpoint in {run}; --resume continues" \
        in proc.stderr
    assert checkpoint.load(run / "last.pt")["step"] == 7  # nothing after the update is lost
    assert not (run / "final.pt").exists()

    proc = subprocess.run(train_cmd(config, run, "--resume"), cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming at epoch 1, batch 2, step 7" in proc.stderr
    assert "metrics.jsonl: dropped" not in proc.stderr  # the checkpoint covers every record
    assert records(run) == records(ref)
    assert_same_weights(checkpoint.TrainedModel.load(run / "final.pt").model,
                        checkpoint.TrainedModel.load(ref / "final.pt").model)


def test_no_warmup_peaks_at_update_one_and_keep_average_takes_the_average(data_root, tmp_path):
    config = write_config(tmp_path / "tiny.yaml", data_root,
                          train={"warmup": "none", "keep": "average"})
    run = tmp_path / "run"
    assert train.main(["--config", str(config), "--set", f"train.out_dir={run}"]) == 0
    lrs = [r["lr"] for r in records(run) if r["kind"] == "train"]
    peak = train.load_config(config).train.lr
    # logged after update s, lr is that of update s + 1: the peak up to the warm-up update
    # (10), then the inverse-sqrt decay a warm-up run has
    assert lrs == pytest.approx([peak] * 9 + [peak * math.sqrt(10 / 11)])
    final = checkpoint.TrainedModel.load(run / "final.pt")
    assert final.chosen == "average_last_2"
    assert final.candidates.keys() == {"last", "average_last_2"}


def test_keep_better_chooses_on_the_headline_protocols_val_bleu(reference):
    _, ref = reference
    final = checkpoint.TrainedModel.load(ref / "final.pt")
    key = VAL_BLEU_KEYS[final.run_config["eval"]["protocol"]]
    assert final.run_config["eval"]["protocol"] == "bleu_dgl"
    best = max(final.candidates.values(), key=lambda c: c[key])
    assert final.candidates[final.chosen][key] == best[key]


def test_patience_stops_after_epochs_without_a_lower_val_nll():
    def limit(patience: int, val_nll: list[float]) -> str | None:
        cfg = train.load_config(ROOT / "repro/configs/default.yaml",
                                [f"train.patience={patience}", "train.max_steps=0"])
        trainer = types.SimpleNamespace(
            cfg=cfg, step=10, elapsed=0.0, rank=0,
            history=[{"epoch": e, "val_nll": v} for e, v in enumerate(val_nll)])
        return train.Trainer._limit_reached(trainer)

    assert limit(2, [3.0, 2.0, 2.5]) is None
    assert limit(2, [3.0, 2.0, 2.5, 2.0]) == "patience=2: val_nll last improved at epoch 1"
    assert limit(2, [3.0, 2.0, 2.5, 1.9]) is None
    assert limit(0, [3.0, 2.0, 2.5, 2.6, 2.7]) is None  # 0: no patience rule
