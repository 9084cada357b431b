"""Atomic checkpoint writes, damage detection and the last.pt/prev.pt fallback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dgl_transformer.mt import checkpoint
from dgl_transformer.mt.checkpoint import CheckpointError

ROOT = Path(__file__).resolve().parent.parent


def state(step: int) -> dict:
    return {"step": step, "model": {"w": torch.full((256, 64), float(step))}, "blob": b"\x00\xff"}


def one_line_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message


def test_round_trip_leaves_no_temporary_and_plain_torch_load_reads_it(tmp_path):
    path = tmp_path / "a.pt"
    checkpoint.save_atomic(state(3), path)
    loaded = checkpoint.load(path)
    assert loaded["step"] == 3 and loaded["blob"] == b"\x00\xff"
    assert torch.equal(loaded["model"]["w"], state(3)["model"]["w"])
    assert torch.load(path, weights_only=True)["step"] == 3  # the trailer does not get in the way
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d[:0], "no checksum trailer"),
        (lambda d: d[: len(d) // 2], "no checksum trailer"),
        (lambda d: d[:-1], "no checksum trailer"),
        (lambda d: d[:100] + bytes([d[100] ^ 1]) + d[101:], "SHA-256 mismatch"),
        (lambda d: d[: len(d) // 2] + bytes([d[len(d) // 2] ^ 1]) + d[len(d) // 2 + 1 :],
         "SHA-256 mismatch"),  # inside tensor data: torch.load alone would not notice
        (lambda d: b"garbage" * 100, "no checksum trailer"),
    ],
    ids=["empty", "half", "last-byte-missing", "header-bit", "tensor-bit", "garbage"],
)
def test_damaged_file_gives_one_line_error_naming_it(tmp_path, damage, message):
    path = tmp_path / "last.pt"
    checkpoint.save_atomic(state(1), path)
    path.write_bytes(damage(path.read_bytes()))
    assert message in one_line_error(path)


def test_foreign_files_are_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"model": {}}, plain)
    assert "no checksum trailer" in one_line_error(plain)
    assert "no such checkpoint file" in one_line_error(tmp_path / "missing.pt")


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save_atomic(state(1), path)

    def crash(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save_atomic(state(2), path)
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_rotation_and_fallback_to_prev(tmp_path, capsys):
    assert checkpoint.load_latest(tmp_path) is None
    for step in (1, 2, 3):
        checkpoint.rotate_and_save(state(step), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "prev.pt"]
    path, latest = checkpoint.load_latest(tmp_path)
    assert (path.name, latest["step"]) == ("last.pt", 3) and capsys.readouterr().err == ""

    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    path, latest = checkpoint.load_latest(tmp_path)
    assert (path.name, latest["step"]) == ("prev.pt", 2)
    assert capsys.readouterr().err == (
        f"warning: {last}: truncated, or not a dgl-transformer checkpoint (no checksum "
        f"trailer); resuming from {tmp_path / 'prev.pt'} instead\n"
    )

    last.unlink()  # a crash between the two renames of a rotation
    assert checkpoint.load_latest(tmp_path)[1]["step"] == 2
    assert "no such checkpoint file; resuming from" in capsys.readouterr().err

    (tmp_path / "prev.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no usable checkpoint to resume from") as info:
        checkpoint.load_latest(tmp_path)
    assert "\n" not in str(info.value) and str(tmp_path / "prev.pt") in str(info.value)


WRITER = """
import sys, torch
from dgl_transformer.mt import checkpoint
for step in range(1, 10**6):
    w = torch.full((1 << 20,), float(step))
    checkpoint.rotate_and_save({"step": step, "w": w}, sys.argv[1])
    print(step, flush=True)
"""


def test_sigkill_while_writing_leaves_a_usable_run(tmp_path):
    """Kill a process that checkpoints in a loop, most likely mid-write: a good one is left."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "1"  # at least one checkpoint finished
        time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    path, latest = checkpoint.load_latest(tmp_path)
    assert torch.equal(latest["w"], torch.full((1 << 20,), float(latest["step"])))
    checkpoint.rotate_and_save({"step": 0}, tmp_path)  # also clears stale temporaries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "prev.pt"]
