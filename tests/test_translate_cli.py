"""``python -m dgl_transformer.mt.translate``: one output line per input line whatever the input,
and a one-line error for a checkpoint it cannot use (no data or training needed)."""

import hashlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_checkpoint import make_checkpoint

from dgl_transformer.mt import checkpoint, generate, translate
from dgl_transformer.mt.generate import Translator
from dgl_transformer.nn.config import TransformerConfig
from dgl_transformer.nn.model import GraphTransformer

NASTY_LINES = [
    b"",
    b"   \t  ",
    b"a dog runs in the park .",
    b" ".join([b"dog"] * 2000),  # far beyond the model's max_len: translated in pieces
    "an emoji \U0001f600, CJK \u4e2d\u6587\u5b57 and \u00e9\u00e8".encode(),
    b"control \x00\x01\x07\x1b[31m\x7f chars",
    b"a carriage\rreturn inside",
    "line\u2028separator, next\u0085line and para\u2029graph".encode(),
    b"invalid \xff\xfe utf-8 \xc3 bytes",
    b"\x0b\x0c\x1c\x1d\x1e",
    b"windows line ending\r",
    b"no final newline",
]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("translate") / "final.pt")


def run_cli(ckpt: Path, stdin: bytes, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dgl_transformer.mt.translate", "--checkpoint", str(ckpt), *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, cwd=ROOT, timeout=300)


def test_one_output_line_per_input_line_whatever_the_input(good_checkpoint):
    stdin = b"\n".join(NASTY_LINES)  # the last line has no newline
    proc = run_cli(good_checkpoint, stdin, "--threads", "1")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    text = proc.stdout.decode("utf-8")  # valid UTF-8
    assert text.endswith("\n") and text.count("\n") == len(NASTY_LINES)
    lines = text.split("\n")[:-1]
    assert text.splitlines() == lines  # no \r, U+2028, U+0085 ... inside an output line
    assert lines[0] == lines[1] == ""  # empty and whitespace-only input
    assert "line 4 has" in proc.stderr.decode() and "translated in pieces" in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()


def test_empty_input_gives_empty_output(good_checkpoint, capsysbinary, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert translate.main(["--checkpoint", str(good_checkpoint)]) == 0
    assert capsysbinary.readouterr().out == b""


def test_line_breaks_in_model_output_stay_inside_their_line(tmp_path, monkeypatch, capsysbinary):
    """A raw-text model can emit \\r, U+2028 ... (byte pieces): they become spaces."""
    path = make_checkpoint(tmp_path / "raw.pt", variant="raw")
    pipeline = Translator.from_checkpoint(path).pipeline
    ids = pipeline.tokenizer.encode("a\u2028b\rc\x85d\ne\x1ef")
    assert pipeline.decode_tgt(ids) == "a\u2028b\rc\x85d\ne\x1ef"
    monkeypatch.setattr(generate, "translate_ids", lambda model, chunks, **kw: [ids] * len(chunks))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x\ny\n")))
    assert translate.main(["--checkpoint", str(path)]) == 0
    assert capsysbinary.readouterr().out == b"a b c d e f\na b c d e f\n"


def test_corrupt_checkpoint_exits_non_zero_with_one_line(good_checkpoint, tmp_path):
    bad = tmp_path / "final.pt"
    data = bytearray(good_checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensor data, which torch.load alone accepts
    bad.write_bytes(data)
    proc = run_cli(bad, b"a dog .\n")
    assert proc.returncode != 0 and proc.stdout == b""
    assert proc.stderr.decode().splitlines() == [
        f"error: {bad}: corrupt checkpoint (SHA-256 mismatch)"
    ]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"src_vocab": 300, "tgt_vocab": 300, "share_embeddings": False},
         "vocabulary mismatch: the model expects 300/300 ids, its subword model has 320"),
        ("fingerprint", "does not match its recorded fingerprint"),
        ({"model": {}}, "unusable checkpoint (Error(s) in loading state_dict"),
        ({"pipeline": "not a dict"}, "unusable checkpoint"),
        ({"run_config": {"eval": {"beam": 4}}}, "unknown key 'eval.beam'"),
    ],
    ids=["vocab-sizes", "fingerprint", "weights", "pipeline", "run-config"],
)
def test_unusable_checkpoint_gives_one_line_error(tmp_path, capsys, changes, message):
    if changes == "fingerprint":
        state = checkpoint.TrainedModel.load(make_checkpoint(tmp_path / "good.pt"))
        changes = {"pipeline": {**state.pipeline, "fingerprint": "0" * 64}}
    if "src_vocab" in changes:  # weights that fit the (wrong) config: only the vocab check fails
        cfg = TransformerConfig(src_vocab=300, tgt_vocab=300, d_model=16, n_heads=2, d_ff=32,
                                n_enc_layers=1, n_dec_layers=1, max_len=64)
        changes["model"] = GraphTransformer(cfg).state_dict()
    path = make_checkpoint(tmp_path / "final.pt", **changes)
    assert translate.main(["--checkpoint", str(path)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {path}: ")
    assert message in err


def test_checkpoint_of_an_older_version_names_the_version(tmp_path, capsys):
    path = tmp_path / "old.pt"
    checkpoint.save_atomic({"model": {}}, path)
    data = path.read_bytes()  # rewrite the format tag as an older release wrote it
    body = torch.load(io.BytesIO(data[: -checkpoint.TRAILER_LEN]), weights_only=True)
    buffer = io.BytesIO()
    torch.save({**body, "format": "dgl-transformer-checkpoint/2"}, buffer)
    digest = hashlib.sha256(buffer.getbuffer()).hexdigest().encode()
    path.write_bytes(buffer.getvalue() + checkpoint.TRAILER_TAG + digest)
    assert translate.main(["--checkpoint", str(path)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "checkpoint version 'dgl-transformer-checkpoint/2'" in err
    assert "'dgl-transformer-checkpoint/3'" in err


def test_missing_checkpoint_file(tmp_path, capsys):
    assert translate.main(["--checkpoint", str(tmp_path / "nope.pt")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.pt'}: no such checkpoint file\n"
