"""GraphTransformer against its dense twin: same weights, same logits, same gradients."""

import pytest
import torch

from dgl_transformer import DenseTransformer, GraphTransformer, TransformerConfig

LENGTHS = [(1, 1), (1, 17), (23, 1), (5, 9), (40, 33), (2, 2)]


def make_pair(share: bool, **variant):
    cfg = TransformerConfig(
        src_vocab=60, tgt_vocab=60 if share else 45, d_model=32, n_heads=4, d_ff=48,
        n_enc_layers=2, n_dec_layers=2, dropout=0.0, max_len=64, share_embeddings=share,
        **variant,
    )
    graph = GraphTransformer(cfg)
    dense = DenseTransformer(cfg)
    dense.load_state_dict(graph.state_dict())
    return cfg, graph, dense


def batch(cfg):
    src = [torch.randint(4, cfg.src_vocab, (s,)) for s, _ in LENGTHS]
    tgt = [torch.randint(4, cfg.tgt_vocab, (t,)) for _, t in LENGTHS]
    return src, tgt


@pytest.mark.parametrize("share", [True, False])
def test_same_logits(share):
    cfg, graph, dense = make_pair(share)
    src, tgt = batch(cfg)
    a, b = graph(src, tgt), dense(src, tgt)
    assert a.shape == (sum(t for _, t in LENGTHS), cfg.tgt_vocab)
    assert (a - b).abs().max().item() <= 1e-5


def test_state_dict_loads_both_ways():
    cfg, graph, dense = make_pair(True)
    assert graph.state_dict().keys() == dense.state_dict().keys()
    other = GraphTransformer(cfg)
    other.load_state_dict(dense.state_dict())
    src, tgt = batch(cfg)
    assert torch.equal(other(src, tgt), graph(src, tgt))


@pytest.mark.parametrize("share", [True, False])
def test_same_gradients(share):
    cfg, graph, dense = make_pair(share)
    src, tgt = batch(cfg)
    gold = torch.randint(0, cfg.tgt_vocab, (sum(len(t) for t in tgt),))
    for model in (graph, dense):
        torch.nn.functional.cross_entropy(model(src, tgt), gold).backward()
    dense_grads = dict(dense.named_parameters())
    for name, p in graph.named_parameters():
        assert p.grad is not None, name
        diff = (p.grad - dense_grads[name].grad).abs().max().item()
        assert diff <= 1e-5, f"{name}: gradient differs by {diff}"


def test_logits_follow_each_sentence_alone():
    """Packing is invisible: a sentence's logits do not depend on its batch-mates."""
    cfg, graph, _ = make_pair(True)
    src, tgt = batch(cfg)
    together = graph(src, tgt)
    alone = torch.cat([graph([s], [t]) for s, t in zip(src, tgt, strict=True)])
    assert (together - alone).abs().max().item() <= 1e-5


VARIANTS = [{"norm_first": False}, {"enc_aggregator": "mean"}, {"dec_aggregator": "mean"},
            {"scale_scores": False}]


@pytest.mark.parametrize("variant", VARIANTS, ids=["post-ln", "enc-mean", "dec-mean", "unscaled"])
def test_essay_variants_match_their_dense_twin(variant):
    """Post-LN and mean aggregation: the same logits and gradients on both layouts, and a
    different function from the default model with the same weights."""
    cfg, graph, dense = make_pair(True, **variant)
    src, tgt = batch(cfg)
    a, b = graph(src, tgt), dense(src, tgt)
    assert (a - b).abs().max().item() <= 1e-5
    gold = torch.randint(0, cfg.tgt_vocab, (len(a),))
    for logits in (a, b):
        torch.nn.functional.cross_entropy(logits, gold).backward()
    for (name, p), q in zip(graph.named_parameters(), dense.parameters(), strict=True):
        assert (p.grad - q.grad).abs().max().item() <= 1e-5, name
    default = GraphTransformer(TransformerConfig(**{**cfg.to_dict(), **dict.fromkeys(
        ("enc_aggregator", "dec_aggregator"), "attention"), "norm_first": True,
        "scale_scores": True}))
    default.load_state_dict(graph.state_dict(), strict=False)
    assert (default(src, tgt) - a).abs().max().item() > 1e-3


def test_mean_aggregation_is_the_neighbour_mean():
    cfg, graph, _ = make_pair(True, enc_aggregator="mean")
    batch_ = graph.collate([torch.tensor([4, 5, 6])], [torch.tensor([7])])
    v = torch.randn(3, cfg.n_heads, cfg.head_dim)
    out = graph.attend(batch_.enc_graph, "enc", 0, aggregator="mean")(v, v, v)
    assert torch.allclose(out, v.mean(0, keepdim=True).expand(3, -1, -1), atol=1e-6)
