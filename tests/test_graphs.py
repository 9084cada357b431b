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
