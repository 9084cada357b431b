"""Head importance and pruning (repro/heads.py) on a tiny random model and synthetic ids."""

import json

import pytest
import torch

from dgl_transformer.nn.config import TransformerConfig
from dgl_transformer.nn.model import GraphTransformer
from repro import heads

LAYERS, HEADS, D_MODEL = 2, 4, 16


@pytest.fixture
def model() -> GraphTransformer:
    cfg = TransformerConfig(src_vocab=20, tgt_vocab=20, d_model=D_MODEL, n_heads=HEADS, d_ff=32,
                            n_enc_layers=LAYERS, n_dec_layers=LAYERS)
    return GraphTransformer(cfg).eval()


@pytest.fixture
def batches(model):
    # ids 4.. avoid the special tokens; lengths vary so the graphs are not all alike
    src = [torch.randint(4, 20, (n,)) for n in (5, 7, 3, 6)]
    tgt = [torch.randint(4, 20, (n,)) for n in (4, 6, 5, 3)]
    return [model.collate(src, tgt)]


class FakeScorer:
    """Records each call's head masks (a kind is absent where unmasked); returns a made-up
    score."""

    def __init__(self):
        self.calls = []

    def __call__(self, model):
        self.calls.append({kind: mask.clone() for kind, mask in model.head_masks.items()})
        return {"val_nll": 1.0, "bleu_tok_lc": 2.0, "bleu_cased": 3.0}


def test_importance_zero_for_dead_head_and_masks_restored(model, batches):
    dk = D_MODEL // HEADS
    with torch.no_grad():  # head 2 of decoder layer 1's cross-attention writes nothing
        model.decoder[1].cross_attn.out.weight[:, 2 * dk : 3 * dk] = 0.0
    importance = heads.head_importance(model, batches)
    assert set(importance) == set(heads.KINDS)
    for matrix in importance.values():
        assert matrix.shape == (LAYERS, HEADS)
    assert abs(float(importance["cross"][1, 2])) < 1e-6
    assert abs(float(importance["cross"][1, 1])) > 1e-6
    assert abs(float(importance["enc"][0, 0])) > 1e-6
    assert model.head_masks == {}


def test_prune_curve_order_points_and_masks(model):
    importance = {kind: torch.randn(LAYERS, HEADS) for kind in heads.KINDS}
    importance["enc"][1] = 0.0  # ties
    fake = FakeScorer()
    curves = heads.prune_curve(model, importance, fake)
    total = LAYERS * HEADS
    assert len(fake.calls) == 1 + len(heads.KINDS) * total  # the full model once
    assert fake.calls[0] == {}
    for n, kind in enumerate(heads.KINDS):
        curve = curves[kind]
        assert [p["heads_kept"] for p in curve["points"]] == list(range(total, -1, -1))
        assert sorted(map(tuple, curve["order"])) == [(i, h) for i in range(LAYERS)
                                                      for h in range(HEADS)]
        ranked = [float(importance[kind][layer, head]) for layer, head in curve["order"]]
        assert ranked == sorted(ranked)
        calls = fake.calls[1 + n * total : 1 + (n + 1) * total]
        for removed, call in enumerate(calls, 1):
            assert set(call) == {kind}  # the other types intact
            kept = call[kind]
            assert int(kept.sum()) == total - removed
            for layer, head in curve["order"][:removed]:
                assert kept[layer, head] == 0
        assert torch.equal(calls[-1][kind], torch.zeros(LAYERS, HEADS))
    assert model.head_masks == {}


def test_written_results_have_the_documented_keys(model, batches, tmp_path):
    result = heads.analyse(model, batches, FakeScorer())
    out = tmp_path / "sub" / "heads.json"
    heads.write_results(result, out)
    saved = json.loads(out.read_text())
    assert set(saved) == {"importance", "curves"}
    for kind in heads.KINDS:
        assert torch.tensor(saved["importance"][kind]).shape == (LAYERS, HEADS)
        assert set(saved["curves"][kind]) == {"order", "points"}
        for point in saved["curves"][kind]["points"]:
            assert set(point) == {"heads_kept", "val_nll", "bleu_tok_lc", "bleu_cased"}
    assert out.with_suffix(".png").stat().st_size > 0


def test_cli_missing_checkpoint_is_one_error_line(tmp_path, capsys):
    code = heads.main(["--checkpoint", str(tmp_path / "none.pt"), "--out",
                       str(tmp_path / "h.json")])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
