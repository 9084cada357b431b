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


def all_masks(model):
    return [a.head_mask for group in heads.attention_modules(model).values() for a in group]


class FakeScorer:
    """Records each call's head masks (None where unmasked); returns a made-up score."""

    def __init__(self):
        self.calls = []

    def __call__(self, model):
        self.calls.append({kind: [None if a.head_mask is None else a.head_mask.clone()
                                  for a in group]
                           for kind, group in heads.attention_modules(model).items()})
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
    assert all(mask is None for mask in all_masks(model))


def test_mask_only_changes_output_through_its_head(model, batches):
    dk = D_MODEL // HEADS
    base = model(batches[0])
    mask = torch.ones(LAYERS, HEADS)
    mask[0, 1] = 0.0
    with heads.head_masks(model, {"enc": mask}):
        masked = model(batches[0])
    assert not torch.allclose(masked, base)
    with torch.no_grad():
        model.encoder[0].self_attn.out.weight[:, dk : 2 * dk] = 0.0
    with heads.head_masks(model, {"enc": mask}):
        masked = model(batches[0])
    torch.testing.assert_close(masked, model(batches[0]), rtol=0, atol=1e-6)
    assert all(m is None for m in all_masks(model))


def test_prune_curve_order_points_and_masks(model):
    importance = {kind: torch.randn(LAYERS, HEADS) for kind in heads.KINDS}
    importance["enc"][1] = 0.0  # ties
    fake = FakeScorer()
    curves = heads.prune_curve(model, importance, fake)
    total = LAYERS * HEADS
    assert len(fake.calls) == 1 + len(heads.KINDS) * total  # the full model once
    assert all(m is None for group in fake.calls[0].values() for m in group)
    for n, kind in enumerate(heads.KINDS):
        curve = curves[kind]
        assert [p["heads_kept"] for p in curve["points"]] == list(range(total, -1, -1))
        assert sorted(map(tuple, curve["order"])) == [(i, h) for i in range(LAYERS)
                                                      for h in range(HEADS)]
        ranked = [float(importance[kind][layer, head]) for layer, head in curve["order"]]
        assert ranked == sorted(ranked)
        calls = fake.calls[1 + n * total : 1 + (n + 1) * total]
        for removed, call in enumerate(calls, 1):
            kept = torch.stack(call[kind])
            assert int(kept.sum()) == total - removed
            for layer, head in curve["order"][:removed]:
                assert kept[layer, head] == 0
            assert all(m is None for other in heads.KINDS if other != kind
                       for m in call[other])
        assert torch.equal(torch.stack(calls[-1][kind]), torch.zeros(LAYERS, HEADS))
    assert all(m is None for m in all_masks(model))


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


def test_masked_heads_decode_alike_cached_and_naive(model, batches):
    """Pruning acts on decoding too: with heads of every type masked, cached greedy decoding
    still equals re-running the decoder on each prefix, and differs from the unmasked model."""
    from dgl_transformer.nn.decoding import greedy, naive_greedy

    src = batches[0].sources()
    masks = {kind: torch.ones(LAYERS, HEADS) for kind in heads.KINDS}
    for kind in heads.KINDS:
        masks[kind][0, 1:] = 0  # layer 1 keeps one head of each type
    full = model(batches[0])
    with heads.head_masks(model, masks):
        assert (model(batches[0]) - full).abs().max() > 1e-4
        cached = [s.tolist() for s in greedy(model, src, 12)]
        assert cached == [s.tolist() for s in naive_greedy(model, src, 12)]
    assert all(mask is None for mask in all_masks(model))
