"""The model's hooks (dgl_transformer.nn.hooks): attention observed where it is computed, and
heads masked, in training-style forwards and in cached decoding."""

import pytest
import torch

from dgl_transformer.nn.config import TransformerConfig
from dgl_transformer.nn.decoding import greedy, naive_greedy
from dgl_transformer.nn.hooks import KINDS, mask_heads, observe_attention
from dgl_transformer.nn.model import GraphTransformer

LAYERS, HEADS, D_MODEL = 2, 4, 16


@pytest.fixture
def model() -> GraphTransformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(src_vocab=20, tgt_vocab=20, d_model=D_MODEL, n_heads=HEADS, d_ff=32,
                            n_enc_layers=LAYERS, n_dec_layers=LAYERS, dropout=0.0)
    return GraphTransformer(cfg).eval()


@pytest.fixture
def batch(model):
    src = [torch.randint(4, 20, (n,)) for n in (5, 7, 3, 6)]
    tgt = [torch.randint(4, 20, (n,)) for n in (4, 6, 5, 3)]
    return model.collate(src, tgt)


def dense_weights(graph, q, k):
    """softmax over each receiver's in-edges of q_i . k_j / sqrt(d), by hand: [E, H]."""
    src, dst = (e.long() for e in graph.edges())
    scores = (q[dst] * k[src]).sum(-1) / q.shape[-1] ** 0.5
    out = torch.empty_like(scores)
    for i in dst.unique():
        rows = dst == i
        out[rows] = scores[rows].softmax(0)
    return out


def test_observer_sees_every_attention_with_the_models_own_weights(model, batch):
    with observe_attention(model) as events:
        model(batch)
    order = [(e.kind, e.layer) for e in events]
    assert order == [("enc", 0), ("enc", 1), ("dec_self", 0), ("cross", 0), ("dec_self", 1),
                     ("cross", 1)]
    first = events[0]
    assert first.graph is batch.enc_graph and first.weights.shape == (
        batch.enc_graph.num_edges(), HEADS)
    # the weights are those the layer used: recompute them from its own projections
    x = model.embed(model.src_embed, batch.src, batch.src_pos)
    q, k, _ = model.encoder[0].self_attn._heads(
        model.encoder[0].self_attn.qkv(model.encoder[0].norm_attn(x)), 3)
    torch.testing.assert_close(first.weights, dense_weights(batch.enc_graph, q, k),
                               rtol=0, atol=1e-5)
    for e in events:  # every receiver's weights sum to 1
        sums = torch.zeros(e.graph.num_dst_nodes(), HEADS).index_add_(0, e.graph.edges()[1].long(),
                                                                     e.weights)
        torch.testing.assert_close(sums, torch.ones_like(sums))
    assert model.observers == []


def test_scores_carry_their_gradient_for_probes(model, batch):
    def keep(event):
        event.scores.retain_grad()
        kept.append(event.scores)

    kept = []
    with observe_attention(model, keep):
        model(batch).logsumexp(-1).sum().backward()
    assert len(kept) == 3 * LAYERS and all(s.grad is not None for s in kept)


def test_hooks_are_removed_after_an_error(model, batch):
    with pytest.raises(RuntimeError), observe_attention(model), mask_heads(
            model, {"enc": torch.zeros(LAYERS, HEADS)}):
        raise RuntimeError("inside the block")
    assert model.observers == [] and model.head_masks == {}


def test_a_mask_of_the_wrong_shape_is_refused(model):
    with pytest.raises(ValueError, match=r"enc head mask must be \[layers, heads\] = \[2, 4\]"):
        with mask_heads(model, {"enc": torch.ones(3, HEADS)}):
            pass


def test_mask_only_changes_output_through_its_head(model, batch):
    dk = D_MODEL // HEADS
    base = model(batch)
    mask = torch.ones(LAYERS, HEADS)
    mask[0, 1] = 0.0
    with mask_heads(model, {"enc": mask}):
        masked = model(batch)
    assert not torch.allclose(masked, base)
    with torch.no_grad():
        model.encoder[0].self_attn.out.weight[:, dk : 2 * dk] = 0.0
    with mask_heads(model, {"enc": mask}):
        masked = model(batch)
    torch.testing.assert_close(masked, model(batch), rtol=0, atol=1e-6)
    assert model.head_masks == {}


def test_masked_heads_decode_alike_cached_and_naive(model, batch):
    """Pruning acts on decoding too: with heads of every type masked, cached greedy decoding
    still equals re-running the decoder on each prefix, and differs from the unmasked model."""
    src = batch.sources()
    masks = {kind: torch.ones(LAYERS, HEADS) for kind in KINDS}
    for kind in KINDS:
        masks[kind][0, 1:] = 0  # layer 0 keeps one head of each type
    full = model(batch)
    with mask_heads(model, masks):
        assert (model(batch) - full).abs().max() > 1e-4
        cached = [s.tolist() for s in greedy(model, src, 12)]
        assert cached == [s.tolist() for s in naive_greedy(model, src, 12)]
    assert model.head_masks == {}


def test_decoding_steps_are_observed_one_by_one(model, batch):
    """In cached decoding each step reports its self-attention from the cached rows: step t's
    new token hears t + 1 positions (itself and the ones before)."""
    src = batch.sources()[:1]
    with observe_attention(model) as events:
        out = greedy(model, src, 6)[0]
    steps = [e for e in events if e.kind == "dec_self" and e.layer == 0]
    assert len(steps) == min(len(out) + 1, 6)
    assert [e.graph.num_edges() for e in steps] == list(range(1, len(steps) + 1))
