"""The scaling probe (repro/scaling_probe.py): entropy and score gradients against dense
references, a probe that changes nothing, and a short run on in-memory data."""

import math
from pathlib import Path

import dgl
import pytest
import torch

from dgl_transformer.mt.configs import RunConfig
from dgl_transformer.mt.corpus import Split
from dgl_transformer.nn.config import TransformerConfig
from dgl_transformer.nn.hooks import observe_attention
from dgl_transformer.nn.model import GraphTransformer
from repro import scaling_probe

VOCAB = 20
SCHEDULE = Path(__file__).resolve().parents[1] / "repro" / "experiments" / "_schedule.yaml"


def tiny_config(**changes) -> TransformerConfig:
    return TransformerConfig(src_vocab=VOCAB, tgt_vocab=VOCAB, d_model=16, n_heads=2, d_ff=32,
                             n_enc_layers=2, n_dec_layers=2, dropout=0.0, max_len=32,
                             **changes)


def sentences(lengths: list[int]) -> list[torch.Tensor]:
    return [torch.randint(4, VOCAB, (n,)) for n in lengths]


def tiny_batch(model: GraphTransformer):
    return model.collate(sentences([3, 5, 2]), sentences([4, 1, 6]))


def dense_scores(graph: dgl.DGLGraph, scores: torch.Tensor) -> torch.Tensor:
    """``[H, receivers, senders]`` holding each edge's score, -inf where there is no edge."""
    src, dst = graph.edges()
    dense = scores.new_full((scores.shape[1], graph.num_dst_nodes(), graph.num_src_nodes()),
                            -math.inf)
    dense[:, dst, src] = scores.squeeze(-1).T
    return dense


@pytest.mark.parametrize("kind", scaling_probe.KINDS)
def test_entropy_matches_a_dense_softmax(kind):
    graph = scaling_probe.batch_graphs(tiny_batch(GraphTransformer(tiny_config())))[kind]
    scores = 3 * torch.randn(graph.num_edges(), 2, 1)
    weights = dgl.ops.edge_softmax(graph, scores)
    probs = torch.softmax(dense_scores(graph, scores), -1)
    dense = -torch.special.xlogy(probs, probs).sum(-1).T  # [receivers, heads]
    torch.testing.assert_close(scaling_probe.receiver_entropy(graph, weights), dense,
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", scaling_probe.KINDS)
def test_equal_scores_give_the_uniform_entropy(kind):
    graph = scaling_probe.batch_graphs(tiny_batch(GraphTransformer(tiny_config())))[kind]
    weights = dgl.ops.edge_softmax(graph, torch.full((graph.num_edges(), 3, 1), 0.7))
    entropy = scaling_probe.receiver_entropy(graph, weights)
    log_degree = graph.in_degrees().double().log().float()
    torch.testing.assert_close(entropy, log_degree[:, None].expand(-1, 3), atol=1e-5, rtol=0)
    assert scaling_probe.uniform_entropy(graph) == pytest.approx(float(log_degree.mean()))


def test_score_gradient_matches_dense_attention():
    model = GraphTransformer(tiny_config())
    batch = tiny_batch(model)
    probe = scaling_probe.AttentionProbe()
    graph = batch.cross_graph
    q = torch.randn(graph.num_dst_nodes(), 2, 8, requires_grad=True)
    k = torch.randn(graph.num_src_nodes(), 2, 8)
    v = torch.randn(graph.num_src_nodes(), 2, 8)
    target = torch.randn(graph.num_dst_nodes(), 2, 8)
    with observe_attention(model, probe):
        attend = model.attend(graph, "cross", 0)
        (attend(q, k, v) * target).sum().backward()
    (got,) = probe.score_grad_norms()["cross"]

    src, dst = graph.edges()
    dense = torch.einsum("ihd,jhd->hij", q.detach(), k) / math.sqrt(8)
    mask = torch.zeros_like(dense, dtype=torch.bool)
    mask[:, dst, src] = True
    dense = dense.masked_fill(~mask, -math.inf).requires_grad_()
    out = torch.einsum("hij,jhd->ihd", torch.softmax(dense, -1), v)
    (out * target).sum().backward()
    assert got > 0
    assert got == pytest.approx(float(dense.grad[mask].norm()), rel=1e-5)


@pytest.mark.parametrize("scale", [True, False])
def test_probing_changes_no_logit_and_sees_every_layer(scale):
    model = GraphTransformer(tiny_config(scale_scores=scale)).eval()
    batch = tiny_batch(model)
    plain = model(batch)
    probe = scaling_probe.AttentionProbe()
    with observe_attention(model, probe):
        assert torch.equal(model(batch), plain)
    assert {kind: len(v) for kind, v in probe.entropy.items()} == dict.fromkeys(
        scaling_probe.KINDS, 2)

    result = scaling_probe.measure(model, batch, label_smoothing=0.1)
    assert model.observers == []  # the probe is gone again
    assert torch.equal(model(batch), plain)
    assert all(p.grad is None for p in model.parameters())
    for kind in scaling_probe.KINDS:
        layers = result["score_grad_norm_per_layer"][kind]
        assert len(layers) == 2 and min(layers) > 0
        assert result["score_grad_norm"][kind] == pytest.approx(math.hypot(*layers))
    assert result["param_grad_norm"] > 0 and result["nll"] > 0


def test_unscaled_scores_are_sharper_at_initialisation():
    scaled = GraphTransformer(tiny_config()).eval()
    unscaled = GraphTransformer(tiny_config(scale_scores=False)).eval()
    unscaled.load_state_dict(scaled.state_dict())
    batch = tiny_batch(scaled)
    sharp = scaling_probe.measure(unscaled, batch, 0.0)["entropy"]["enc"]
    assert sharp < scaling_probe.measure(scaled, batch, 0.0)["entropy"]["enc"]


def test_train_variant_runs_on_in_memory_pairs():
    cfg = RunConfig()
    cfg.train.warmup_steps = 2
    pairs = 12
    train = Split(sentences([2 + i % 5 for i in range(pairs)]),
                  sentences([1 + i % 4 for i in range(pairs)]), [], [])
    probe = Split(train.src[:3], train.tgt[:3], [], [])
    result = scaling_probe.train_variant(cfg, tiny_config(), train, probe, updates=3, every=2,
                                         max_tokens=20)
    assert [p["update"] for p in result["points"]] == [0, 2, 3]
    assert len(result["train_loss"]) == len(result["train_grad_norm"]) == 3
    assert result["stopped"] is None
    assert set(result["uniform_entropy"]) == set(scaling_probe.KINDS)
    # the updates moved the weights: the probe's loss changed
    assert result["points"][0]["loss"] != result["points"][-1]["loss"]


@pytest.mark.parametrize("config, more", [
    ("no/such.yaml", []),
    (SCHEDULE, ["--updates", "0"]),
])
def test_cli_bad_input_is_one_error_line(config, more, tmp_path, capsys):
    out = tmp_path / "x.json"
    assert scaling_probe.main(["--config", str(config), "--out", str(out), *more]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert not out.exists()
