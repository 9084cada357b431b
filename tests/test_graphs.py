import pytest
import torch

from dgl_transformer.nn import graphs


def edge_set(g):
    src, dst = g.edges()
    return set(zip(src.tolist(), dst.tolist(), strict=True))


def test_packed_layout_helpers():
    assert graphs.offsets([3, 1, 2]).tolist() == [0, 3, 4]
    assert graphs.positions([3, 1, 2]).tolist() == [0, 1, 2, 0, 0, 1]
    assert graphs.sentence_ids([3, 1, 2]).tolist() == [0, 0, 0, 1, 2, 2]


def test_complete_graph_edges():
    g = graphs.complete_graph([2, 1, 3])
    assert g.num_nodes() == 6 and g.num_edges() == 4 + 1 + 9
    expected = {(a, b) for a in (0, 1) for b in (0, 1)} | {(2, 2)}
    expected |= {(a, b) for a in (3, 4, 5) for b in (3, 4, 5)}
    assert edge_set(g) == expected


def test_causal_graph_only_looks_back():
    lens = [4, 1, 3]
    g = graphs.causal_graph(lens)
    assert g.num_edges() == 10 + 1 + 6
    src, dst = g.edges()
    pos, sent = graphs.positions(lens), graphs.sentence_ids(lens)
    assert bool((pos[src] <= pos[dst]).all()), "an edge goes from a later to an earlier position"
    assert bool((sent[src] == sent[dst]).all())
    assert edge_set(g) >= {(n, n) for n in range(8)}  # every token sees itself


def test_cross_graph_stays_inside_each_pair():
    src_lens, tgt_lens = [2, 3, 1], [1, 2, 4]
    g = graphs.cross_graph(src_lens, tgt_lens)
    assert (g.num_src_nodes(), g.num_dst_nodes()) == (6, 7)
    assert g.num_edges() == 2 * 1 + 3 * 2 + 1 * 4
    s, d = g.edges()
    assert bool((graphs.sentence_ids(src_lens)[s] == graphs.sentence_ids(tgt_lens)[d]).all())
    assert edge_set(g) == {(0, 0), (1, 0), (2, 1), (3, 1), (4, 1), (2, 2), (3, 2), (4, 2)} | {
        (5, t) for t in (3, 4, 5, 6)
    }


def test_cross_graph_can_share_one_source_between_hypotheses():
    g = graphs.cross_graph([2, 3], [1, 1, 1], torch.tensor([1, 1, 0]))
    assert edge_set(g) == {(2, 0), (3, 0), (4, 0), (2, 1), (3, 1), (4, 1), (0, 2), (1, 2)}


def test_window_graph_edges():
    g = graphs.window_graph([5, 2], window=1)
    expected = {(a, b) for a in range(5) for b in range(5) if abs(a - b) <= 1}
    expected |= {(a, b) for a in (5, 6) for b in (5, 6)}
    assert edge_set(g) == expected
    # a window as wide as the sentence is the complete graph
    assert edge_set(graphs.window_graph([4, 3], 10)) == edge_set(graphs.complete_graph([4, 3]))


def test_edges_are_sorted_by_destination():
    built = graphs.complete_graph([3, 5]), graphs.causal_graph([3, 5]), graphs.window_graph([9], 2)
    for g in built:
        dst = g.edges()[1]
        assert bool((dst[1:] >= dst[:-1]).all())


@pytest.mark.parametrize("spec", ["window:2", "window_global:2:1", "random:2"])
def test_config_named_graphs_stay_inside_sentences_and_sorted(spec):
    lens = [1, 7, 12]
    g = graphs.encoder_graph_builder(spec)(lens)
    src, dst = g.edges()
    sent = graphs.sentence_ids(lens)
    assert torch.equal(sent[src], sent[dst])  # never across sentences
    assert bool((dst[1:] >= dst[:-1]).all())  # sorted by destination
    assert len(edge_set(g)) == g.num_edges()  # no duplicate edges
    assert (g.in_degrees() >= 1).all()


def test_window_global_adds_exactly_the_global_rows_and_columns():
    n, w, k = 9, 1, 2
    got = edge_set(graphs.window_global_graph([n], w, k))
    want = {(j, i) for i in range(n) for j in range(n) if abs(i - j) <= w or i < k or j < k}
    assert got == want


def test_random_graph_keeps_the_window_in_degrees_and_self_loops():
    lens = [3, 10, 16]
    window = graphs.window_graph(lens, 2)
    rnd = graphs.random_graph(lens, 2, seed=5)
    assert torch.equal(rnd.in_degrees(), window.in_degrees())
    assert all((i, i) in edge_set(rnd) for i in range(sum(lens)))
    assert edge_set(rnd) != edge_set(window)  # rewired
    assert edge_set(graphs.random_graph(lens, 2, seed=5)) == edge_set(rnd)  # reproducible
    assert edge_set(graphs.random_graph(lens, 2, seed=6)) != edge_set(rnd)


@pytest.mark.parametrize("spec", ["complete", "window:2", "window_global:2:1", "random:2",
                                  "hierarchy:1"])
def test_a_sentence_is_encoded_the_same_alone_and_in_any_batch(spec):
    """An encoder graph is a property of the sentence: its wiring (and so its encoding) must
    not depend on the other sentences of the batch, in training or in decoding."""
    from dgl_transformer import GraphTransformer, TransformerConfig

    torch.manual_seed(0)
    cfg = TransformerConfig(src_vocab=20, tgt_vocab=20, d_model=16, n_heads=2, d_ff=32,
                            n_enc_layers=2, n_dec_layers=1, dropout=0.0, encoder_graph=spec)
    model = GraphTransformer(cfg).eval()
    sentence = torch.randint(4, 20, (9,))
    alone = model.encode(model.collate([sentence]))
    for mates in ([5], [9, 12], [3, 30, 1]):
        batch = [torch.randint(4, 20, (n,)) for n in mates]
        together = model.encode(model.collate([*batch, sentence]))[sum(mates):]
        assert (together - alone).abs().max().item() <= 1e-5, (spec, mates)


def test_a_builder_given_in_code_is_recorded_and_never_saved_as_another_graph(tmp_path):
    """The config of a model built with a custom builder says so: the dense twin, a checkpoint
    and a run config all refuse it instead of describing the complete graph."""
    import functools

    from dgl_transformer import DenseTransformer, GraphTransformer, TransformerConfig
    from dgl_transformer.mt.checkpoint import CheckpointError, TrainedModel
    from dgl_transformer.mt.configs import ConfigError, RunConfig

    cfg = TransformerConfig(src_vocab=20, tgt_vocab=20, d_model=16, n_heads=2, d_ff=32)
    model = GraphTransformer(cfg, encoder_graph=functools.partial(graphs.window_graph, window=1))
    assert model.cfg.encoder_graph == "custom" and cfg.encoder_graph == "complete"
    with pytest.raises(ValueError, match="complete encoder graph only"):
        DenseTransformer(model.cfg)
    with pytest.raises(ValueError, match="pass the same builder again"):
        GraphTransformer(model.cfg)
    saved = TrainedModel(run_config={}, model_config=model.cfg.to_dict(), pipeline={},
                         model=model.state_dict())
    with pytest.raises(CheckpointError, match="custom builder"):
        saved.save(tmp_path / "final.pt")
    with pytest.raises(ConfigError, match="model.encoder_graph 'custom'"):
        RunConfig.from_dict({"model": {"encoder_graph": "custom"}})


def test_random_wiring_depends_on_the_sentence_and_seed_only():
    alone = edge_set(graphs.random_graph([7], 2, seed=3))
    batch = graphs.random_graph([10, 7, 4], 2, seed=3)
    inside = {(s - 10, d - 10) for s, d in edge_set(batch) if 10 <= d < 17}
    assert inside == alone


def test_bad_graph_specs_name_the_spec():
    with pytest.raises(ValueError, match="unknown encoder graph 'star'"):
        graphs.encoder_graph_builder("star")
    with pytest.raises(ValueError, match="must be written window:<window>"):
        graphs.encoder_graph_builder("window:x")
    assert graphs.encoder_graph_builder("window:3") is graphs.encoder_graph_builder("window:3")


def test_a_config_named_graph_drives_the_model():
    from dgl_transformer import GraphTransformer, TransformerConfig

    cfg = TransformerConfig(src_vocab=20, tgt_vocab=20, d_model=16, n_heads=2, d_ff=32,
                            n_enc_layers=1, n_dec_layers=1, encoder_graph="window:1")
    model = GraphTransformer(cfg)
    batch = model.collate([torch.tensor([4, 5, 6, 7])], [torch.tensor([8])])
    assert batch.enc_graph.num_edges() == 10  # 4 self-loops + 3 pairs both ways
    assert model(batch).shape == (2, 20)


def covered_tokens(g, node, n):
    """The tokens a sender stands for in one sentence's span graph: itself, or a span's."""
    if node < n:
        return {node}
    src, dst = g.in_edges(node)
    return {int(s) for s in src if s < n}


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 23])
def test_span_graph_far_context_covers_the_sentence_once(n):
    g = graphs.span_graph([n], 0)  # window 0: only self-loops besides the tree
    assert g.num_nodes() == n + n - 1  # n - 1 span nodes
    src, dst = g.edges()
    assert bool((dst[1:] >= dst[:-1]).all()) and len(edge_set(g)) == g.num_edges()
    for span in range(n, 2 * n - 1):  # a span hears itself and a contiguous run of tokens
        heard = sorted(int(s) for s in g.in_edges(span)[0])
        tokens = [t for t in heard if t < n]
        assert heard == [*tokens, span] and tokens == list(range(tokens[0], tokens[-1] + 1))
    for t in range(n):
        far = [int(s) for s in g.in_edges(t)[0] if s != t]
        counts = torch.zeros(n, dtype=torch.int64)
        for s in far:
            counts[list(covered_tokens(g, s, n))] += 1
        assert torch.equal(counts, (torch.arange(n) != t).long())  # everyone else, once
    adj = torch.zeros(g.num_nodes(), g.num_nodes())
    adj[dst, src] = 1
    assert ((adj @ adj)[:n, :n] > 0).all()  # any token reaches any token in two steps


def test_span_graph_of_a_batch_is_the_sentences_graphs_side_by_side():
    lens, w = [5, 1, 3], 1
    g = graphs.span_graph(lens, w)
    n_tokens = sum(lens)
    assert g.num_nodes() == n_tokens + sum(n - 1 for n in lens)
    first_span = n_tokens
    for n, first in zip(lens, graphs.offsets(lens).tolist(), strict=True):
        alone = graphs.span_graph([n], w)

        def relabel(v, n=n, first=first, first_span=first_span):
            return first + v if v < n else first_span + v - n

        assert {(relabel(s), relabel(d)) for s, d in edge_set(alone)} <= edge_set(g)
        first_span += n - 1
    assert sum(graphs.span_graph([n], w).num_edges() for n in lens) == g.num_edges()
    assert bool((g.edges()[1][1:] >= g.edges()[1][:-1]).all())


def test_hierarchy_model_starts_spans_at_token_means_and_packs_invisibly():
    from dgl_transformer import GraphTransformer, TransformerConfig
    from dgl_transformer.nn.model import span_means

    g = graphs.span_graph([4], 0)
    x = torch.randn(4, 3)
    means = span_means(g, x)
    for span in range(4, 7):
        tokens = sorted(covered_tokens(g, span, 4))
        assert torch.allclose(means[span - 4], x[tokens].mean(0))
    torch.manual_seed(0)
    cfg = TransformerConfig(src_vocab=20, tgt_vocab=20, d_model=16, n_heads=2, d_ff=32,
                            n_enc_layers=2, n_dec_layers=1, encoder_graph="hierarchy:1")
    model = GraphTransformer(cfg).eval()
    src = [torch.randint(4, 20, (n,)) for n in (6, 1, 9)]
    tgt = [torch.randint(4, 20, (n,)) for n in (3, 2, 4)]
    together = model(model.collate(src, tgt))
    alone = torch.cat([model(model.collate([s], [t])) for s, t in zip(src, tgt, strict=True)])
    assert (together - alone).abs().max().item() <= 1e-5
    complete = GraphTransformer(TransformerConfig(**{**cfg.to_dict(), "encoder_graph": "complete"}))
    complete.load_state_dict(model.state_dict())
    assert (complete.eval()(complete.collate(src, tgt)) - together).abs().max().item() > 1e-3


def write_learned(path, window, sentences):
    """A learned-graph file whose graph for each sentence is its window graph (any valid graph
    will do for the builder)."""
    edges = {}
    for s in sentences:
        src, dst = graphs.window_graph([len(s)], window).edges()
        edges[tuple(s.tolist())] = torch.stack([src, dst])
    torch.save({"format": graphs.LEARNED_GRAPH_FORMAT, "window": window, "teacher": "x",
                "rule": "test", "edges": edges}, path)


def test_learned_graph_is_read_per_sentence_and_refuses_unknown_input(tmp_path):
    from dgl_transformer import GraphTransformer, TransformerConfig

    sentences = [torch.tensor([4, 5, 6, 7]), torch.tensor([8]), torch.tensor([9, 10, 11])]
    path = tmp_path / "learned.pt"
    write_learned(path, 1, sentences)
    cfg = TransformerConfig(src_vocab=20, tgt_vocab=20, d_model=16, n_heads=2, d_ff=32,
                            n_enc_layers=1, n_dec_layers=1, encoder_graph="learned:1",
                            graph_file=str(path))
    model = GraphTransformer(cfg)
    batch = model.collate([sentences[2], sentences[0]], [torch.tensor([5]), torch.tensor([6])])
    assert edge_set(batch.enc_graph) == edge_set(graphs.window_graph([3, 4], 1))
    assert model(batch).shape == (4, 20)
    with pytest.raises(ValueError, match="source sentence 1 .* not in the learned graph file"):
        model.collate([sentences[1], torch.tensor([4, 5])])
    with pytest.raises(ValueError, match="for window 1, not 2"):
        graphs.LearnedGraph(str(path), 2)
    with pytest.raises(ValueError, match="does not exist"):
        graphs.LearnedGraph(str(tmp_path / "missing.pt"), 1)
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="cut.pt is not a readable"):
        graphs.LearnedGraph(str(tmp_path / "cut.pt"), 1)
    with pytest.raises(ValueError, match="graph_file .* is needed by 'learned:W'"):
        TransformerConfig(src_vocab=20, tgt_vocab=20, encoder_graph="learned:1")
    with pytest.raises(ValueError, match="graph_file .* only by it"):
        TransformerConfig(src_vocab=20, tgt_vocab=20, graph_file=str(path))
