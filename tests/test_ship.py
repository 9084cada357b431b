"""Shipping a trained model: the tied weights stored once, the checksum recorded, the same
translations as the run's own final.pt."""

import hashlib

import torch
from tiny_checkpoint import make_checkpoint

from dgl_transformer.mt.checkpoint import TrainedModel
from dgl_transformer.mt.generate import Translator
from repro import ship

TIED = ("src_embed.weight", "tgt_embed.weight", "generator.weight")


def test_shipped_model_translates_as_the_run_did_and_stores_tied_weights_once(tmp_path):
    final = make_checkpoint(tmp_path / "final.pt", share_embeddings=True)
    state = TrainedModel.load(final)
    # an averaged checkpoint: every tied matrix its own copy, as the run's averaging makes it
    tied = state.model["src_embed.weight"]
    state.model = {k: (tied if k in TIED else v).clone() for k, v in state.model.items()}
    state.save(final)
    out = tmp_path / "models" / "tiny.pt"
    out.parent.mkdir()
    digest = ship.ship(final, out)
    assert out.stat().st_size < final.stat().st_size
    assert (out.parent / "SHA256SUMS").read_text() == f"{digest}  tiny.pt\n"
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    lines = ["a dog runs in the park .", "the man plays with a red ball ."]
    assert Translator.from_checkpoint(out).translate(lines) == \
        Translator.from_checkpoint(final).translate(lines)
    shipped = TrainedModel.load(out)
    assert shipped.run_config == state.run_config and shipped.history == state.history
    assert all(torch.equal(shipped.model[k], state.model[k]) for k in state.model)
    ship.ship(final, out)  # shipping again replaces its line
    assert (out.parent / "SHA256SUMS").read_text().count("tiny.pt") == 1


def test_a_model_over_the_limit_is_refused(tmp_path, monkeypatch, capsys):
    final = make_checkpoint(tmp_path / "final.pt")
    monkeypatch.setattr(ship, "LIMIT_BYTES", 1000)
    assert ship.main([str(final), str(tmp_path / "big.pt")]) == 1
    assert "MiB a shipped model may weigh" in capsys.readouterr().err
    assert not (tmp_path / "big.pt").exists()
