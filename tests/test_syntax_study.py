"""The syntax study's and the learned graph's core rules, on small hand-made inputs."""

import json
import math

import pytest
import torch
from multi30k_mirror import MIRROR, NEEDS_MIRROR
from tiny_checkpoint import make_checkpoint

from dgl_transformer.mt.generate import Translator
from dgl_transformer.mt.text import SubwordTokenizer, TextPipeline, _spacy_tokenizer
from dgl_transformer.nn import graphs
from dgl_transformer.nn.config import TransformerConfig
from dgl_transformer.nn.model import GraphTransformer
from repro import dependency_arcs, learned_graph, syntax_study
from repro.learned_graph import learned_edges, select_edges, window_degrees
from repro.syntax_study import (
    align,
    dense_attention,
    distances,
    head_agreement,
    length_only_choice,
    merge_pieces,
    piece_spans,
    row_entropy,
    strongest_senders,
    uniform_adjacent_share,
)


def test_piece_spans_skip_the_dummy_prefix_and_join_byte_pieces():
    pieces = ["▁Two", "▁", "▁", "(", "x", ")", "▁", "<0xE2>", "<0x80>", "<0x94>", "▁y"]
    assert piece_spans(pieces, "Two  (x) — y") == [
        (0, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 9), (9, 10), (9, 10), (9, 10),
        (10, 12)]
    assert piece_spans(["ab", "▁c"], "ab c") == [(0, 2), (2, 4)]  # no dummy prefix
    with pytest.raises(ValueError, match="do not spell"):
        piece_spans(["▁ab"], "abc")


def test_align_punctuation_and_hyphen():
    pieces = ["▁A", "▁man", "'", "s", "▁well", "-", "known", "▁dog", "."]
    a = align(pieces, "A man's well-known dog.", "en")
    assert a.words == ["A", "man", "'s", "well", "-", "known", "dog", "."]
    assert a.word_of_piece == [0, 1, 2, 2, 3, 4, 5, 6, 7]
    assert (a.glued, a.whitespace, a.dropped) == (0, 0, 0)


def test_align_glued_whitespace_and_dropped_words():
    # spaCy: do | n't | stop ; the piece "on" overlaps "do" and "n't": it goes where it starts
    a = align(["▁d", "on", "'", "t", "▁", "▁stop"], "don't  stop", "en")
    assert a.words == ["do", "n't", "stop"]
    assert a.word_of_piece == [0, 0, 1, 1, 2, 2]  # the lone space joins the next word
    assert (a.glued, a.whitespace, a.dropped) == (1, 1, 0)
    b = align(["▁don't", "▁stop"], "don't stop", "en")  # "n't" owns no piece: dropped
    assert (b.words, b.word_of_piece, b.glued, b.dropped) == (["do", "stop"], [0, 1], 1, 1)


def test_merge_sums_over_sender_pieces_and_averages_over_receiver_pieces():
    attn = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]], dtype=torch.float64)
    words = merge_pieces(attn, [0, 0, 1], [0, 0, 1])
    # row "pieces 0+1": mean(0.5+0.3, 0.1+0.6), mean(0.2, 0.3); row "piece 2": 0.2+0.2, 0.6
    expected = torch.tensor([[0.75, 0.25], [0.4, 0.6]], dtype=torch.float64)
    assert torch.allclose(words, expected)
    assert torch.allclose(words.sum(-1), torch.ones(2, dtype=torch.float64))
    batched = merge_pieces(torch.stack([attn, attn.flip(-1)]), [0, 0, 1], [0, 0, 1])
    assert batched.shape == (2, 2, 2) and torch.allclose(batched[0], expected)
    cross = merge_pieces(attn[:2], [0, 0], [0, 1, 1])  # receivers and senders differ
    assert torch.allclose(cross, torch.tensor([[0.3, 0.7]], dtype=torch.float64))
    # uniform piece attention: a word hears each other word by its number of pieces
    uniform = merge_pieces(torch.full((4, 4), 0.25), [0, 1, 1, 2], [0, 1, 1, 2])
    assert strongest_senders(uniform).tolist() == [1, 0, 1]


def test_strongest_sender_excludes_self_and_breaks_ties_low():
    w = torch.tensor([[0.7, 0.2, 0.1, 0.0],
                      [0.1, 0.1, 0.1, 0.7],
                      [0.0, 0.4, 0.2, 0.4],  # tie 1 / 3: the lower index
                      [0.2, 0.1, 0.6, 0.1]])
    top = strongest_senders(w)
    assert top.tolist() == [1, 3, 1, 2]
    assert distances(top).tolist() == [1, 2, -1, -1]
    assert float((distances(top).abs() == 1).double().mean()) == 0.75


def test_length_only_choice_is_the_other_word_of_most_pieces_with_ties_split():
    word_of_piece = [0, 0, 1, 2, 2, 2, 3]  # pieces per word: 2, 1, 3, 1
    choice = length_only_choice(word_of_piece)
    assert choice.argmax(-1).tolist() == [2, 2, 0, 2]
    assert torch.equal(choice.sum(-1), torch.ones(4, dtype=torch.float64))
    # what merged uniform piece attention prefers, without the tie rule of strongest_senders
    uniform = merge_pieces(torch.full((7, 7), 1 / 7, dtype=torch.float64), word_of_piece,
                           word_of_piece)
    assert torch.equal(choice.argmax(-1), strongest_senders(uniform))
    # one piece each: every other word ties, and the choice is a uniformly random other word
    assert torch.allclose(length_only_choice([0, 1, 2]),
                          torch.tensor([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]],
                                       dtype=torch.float64))


def test_length_only_baseline_of_one_piece_words_is_the_uniform_one():
    torch.manual_seed(0)
    lengths = [3, 5, 8]
    enc_words = [torch.rand(1, 1, n, n).softmax(-1) for n in lengths]
    stats, _ = syntax_study.encoder_statistics(
        enc_words, [length_only_choice(list(range(n))) for n in lengths])
    assert stats["length_only_adjacent_share"] == pytest.approx(stats["uniform_adjacent_share"],
                                                                abs=1e-4)
    histogram = stats["length_only_distance_histogram"]
    assert sum(histogram.values()) == pytest.approx(sum(lengths))
    assert histogram["1"] == pytest.approx(sum((n - 1) / (n - 1) for n in lengths))


def test_uniform_adjacent_share():
    assert uniform_adjacent_share([2]) == pytest.approx(1.0)
    assert uniform_adjacent_share([3]) == pytest.approx((1 / 2 + 2 / 2 + 1 / 2) / 3)
    assert uniform_adjacent_share([2, 3]) == pytest.approx(4 / 5)  # 2 expected per sentence


def test_head_agreement_is_the_jaccard_of_strongest_edges():
    # edges {(0,1), (1,0), (2,1)} vs {(0,1), (1,2), (2,1)}: 2 shared of 4
    agree = head_agreement(torch.tensor([[1, 0, 1], [1, 2, 1], [1, 0, 1]]))
    assert torch.allclose(agree, torch.tensor([[1, 0.5, 1], [0.5, 1, 0.5], [1, 0.5, 1]],
                                              dtype=torch.float64))


def test_row_entropy():
    rows = torch.tensor([[0.25] * 4, [1.0, 0, 0, 0]], dtype=torch.float64)
    assert torch.allclose(row_entropy(rows), torch.tensor([math.log(4), 0.0],
                                                          dtype=torch.float64))


def test_dense_attention_unpacks_sentences():
    lens = torch.tensor([2, 3])
    g = graphs.complete_graph(lens)
    weights = torch.arange(g.num_edges(), dtype=torch.float64)[:, None]
    dense = dense_attention(g, weights, lens, lens)[:, 0]
    src, dst = g.edges()
    for e in range(g.num_edges()):
        b = int(dst[e] >= 2)
        i, j = int(dst[e]) - 2 * b, int(src[e]) - 2 * b
        assert dense[b, i, j] == e
    assert dense[0, 2].abs().sum() == 0 and dense[0, :, 2].abs().sum() == 0  # padding
    tlens = torch.tensor([1, 2])
    cross = graphs.cross_graph(lens, tlens)
    dense = dense_attention(cross, torch.ones(cross.num_edges(), 1), tlens, lens)[:, 0]
    assert dense.tolist() == [[[1, 1, 0], [0, 0, 0]], [[1, 1, 1], [1, 1, 1]]]


def test_select_edges_keeps_self_and_window_degree():
    degrees = window_degrees(torch.tensor([5, 3]), 1)
    assert degrees[0].tolist() == [2, 3, 3, 3, 2] and degrees[1, :3].tolist() == [2, 3, 2]
    scores = torch.zeros(5, 5)  # all tied: the lowest other indices
    scores[2] = torch.tensor([0.3, 0.1, 0.0, 0.05, 0.55])  # self weakest, yet kept
    ((src, dst),) = select_edges(scores[None], [5], 1)
    assert list(zip(dst.tolist(), src.tolist(), strict=True)) == [
        (0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (2, 2), (2, 4),
        (3, 0), (3, 1), (3, 3), (4, 0), (4, 4)]
    assert select_edges(scores[None], [5], 0)[0].tolist() == [list(range(5))] * 2  # self only
    assert select_edges(scores[None], [5], 9)[0].shape[1] == 25  # window > sentence: complete
    # in a padded batch, a shorter sentence gets what it gets alone; padding is never chosen
    short = torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]])
    padded = torch.zeros(2, 5, 5)
    padded[0], padded[1, :3, :3] = scores, short
    padded[1, :, 3:] = 9.0
    both = select_edges(padded, [5, 3], 1)
    assert torch.equal(both[0], select_edges(scores[None], [5], 1)[0])
    # row 0: self + 2 (0.7); row 1: all three; row 2: self + 0 (tie 0.3 / 0.3: lower)
    assert both[1].tolist() == [[0, 2, 0, 1, 2, 0, 2], [0, 0, 1, 1, 1, 2, 2]]


def _tiny_model(max_len: int = 64) -> GraphTransformer:
    cfg = TransformerConfig(src_vocab=300, tgt_vocab=300, d_model=16, n_heads=2, d_ff=32,
                            n_enc_layers=2, n_dec_layers=1, max_len=max_len)
    return GraphTransformer(cfg).eval()


def test_random_within_window_share_is_what_the_random_graph_wires():
    lengths = torch.tensor([3, 9, 15, 15, 22] * 40)
    g = graphs.random_graph(lengths, 4, seed=1)
    src, dst = g.edges()
    distance = (graphs.positions(lengths)[src] - graphs.positions(lengths)[dst]).abs()
    drawn = float((distance[distance > 0] <= 4).double().mean())
    expected = learned_graph.random_within_window_share(lengths, 4)
    assert expected == pytest.approx(drawn, abs=0.01)
    assert learned_graph.random_within_window_share(torch.tensor([2, 5]), 4) == 1.0
    assert learned_graph.random_within_window_share(torch.tensor([30]), 4) < 0.4


def test_learned_edges_match_the_rule_and_the_file_format(tmp_path):
    model = _tiny_model()
    long, short = [5, 6, 7, 8, 9, 10, 11, 12], [5, 6, 7]
    edges = learned_edges(model, [long, short, short, []], window=2)
    assert set(edges) == {tuple(long), tuple(short)}  # distinct, non-empty only
    for key, e in edges.items():
        n = len(key)
        assert e.dtype == torch.int64
        src, dst = e
        degrees = window_degrees(torch.tensor([n]), 2)[0]
        assert torch.bincount(dst, minlength=n).tolist() == degrees.tolist()
        assert int((src == dst).sum()) == n  # every self-loop
        order = (dst * n + src).tolist()
        assert order == sorted(set(order))  # sorted by dst then src, no duplicates
    # the same edges as the rule applied to this sentence's mean attention, computed alone
    out = model.attention_weights([torch.tensor(long)], [torch.tensor([1, 5])])
    mean = torch.stack(out["enc"]).mean(dim=(0, 2))[:, None]
    lens = torch.tensor([len(long)])
    alone = select_edges(dense_attention(out["enc_graph"], mean, lens, lens)[:, 0], lens, 2)[0]
    assert torch.equal(alone, edges[tuple(long)])
    path = tmp_path / "graph.pt"
    torch.save({"format": graphs.LEARNED_GRAPH_FORMAT, "window": 2, "teacher": "t.pt",
                "rule": learned_graph.RULE, "edges": edges}, path)
    saved = torch.load(path, weights_only=True)
    assert torch.equal(saved["edges"][tuple(long)], edges[tuple(long)])
    reader = graphs.LearnedGraph(str(path), 2)  # the library reads what the writer keeps
    g = reader(torch.tensor([3, 8]), tokens=torch.tensor(short + long))
    assert g.num_edges() == sum(e.shape[1] for e in edges.values())


def test_study_end_to_end_on_a_tiny_model(tmp_path):
    src = ["A man's well-known dog runs.", "Two dogs play with Max in 2019 here.", "A dog."]
    tgt = ["Ein bekannter Hund rennt.", "Zwei Hunde spielen mit Max in 2019 hier.", "Ein Hund."]
    tokenizer = SubwordTokenizer.train(src * 3 + tgt * 3, 300)
    pipeline = TextPipeline("raw", "en", "de", tokenizer)
    record = syntax_study.study(_tiny_model(), pipeline, src, tgt, tmp_path)
    json.dumps(record)  # serialisable
    enc = record["encoder"]
    assert (record["sentences"], enc["layers"], enc["heads"]) == (3, 2, 2)
    for head in enc["per_head"]:
        assert sum(head["distance_histogram"].values()) == enc["receiver_words"]
        assert 0 <= head["mean_entropy"] <= enc["uniform_entropy"] + 1e-9
    assert len(record["agreement"]["jaccard"]) == 4
    assert record["cross"]["candidates"] == 3  # Max, in, 2019 (not the full stops)
    assert set(record["cross"]["by_kind"]) == {"capitalised", "number", "other"}
    for name in record["figures"].values():
        assert (tmp_path / name).stat().st_size > 0


def test_cross_statistics_count_identical_words_by_kind():
    src = align(["▁Max", "▁runs", "▁in", "▁2019", "▁."], "Max runs in 2019 .", "en")
    tgt = align(["▁Max", "▁läuft", "▁in", "▁2019", "▁."], "Max läuft in 2019 .", "de")
    sent = syntax_study._Sentence(1, [], [], src, tgt)
    words = torch.zeros(1, 2, 5, 5)  # [layers, predicting/reading, target, source words]
    words[0, 0, [0, 1, 2, 3, 4], [0, 0, 1, 3, 4]] = 1  # Max and 2019 hit, "in" misses
    words[0, 1, :, 1] = 1  # reading rows: every word to "runs"
    stats = syntax_study.cross_statistics([sent], [words])
    assert stats["candidates"] == 3  # Max, in, 2019; "." is not counted
    assert stats["uniform_chance_share"] == pytest.approx(0.2)
    # all words one piece: a five-way tie, so the length-only choice is a random word
    assert stats["length_only_share"] == pytest.approx(stats["uniform_chance_share"])
    layer = stats["per_layer"][0]
    assert (layer["hits_predicting"], layer["hits_reading"]) == (2, 0)
    kinds = {k: v["per_layer"][0]["hits_predicting"] for k, v in stats["by_kind"].items()}
    assert kinds == {"capitalised": 1, "number": 1, "other": 0}


def test_the_words_for_a_parser_come_back_with_their_arcs(tmp_path):
    words = {"val-1": ["A", "dog", "runs", "."], "val-3": ["Max", "sleeps"]}
    path = tmp_path / "words.conllu"
    dependency_arcs.write_words(words, path)
    text = path.read_text()
    assert "# sent_id = val-3\n# text = Max sleeps\n1\tMax\t_" in text
    parsed = text.replace("\t_\t_\t_\t_\t_\t_\t_\t_", "\t_\t_\t_\t_\t0\troot\t_\t_")
    parses = dependency_arcs.read_parses(tmp_path / "p.conllu") if (
        tmp_path / "p.conllu").write_text(parsed) else None
    assert parses == {k: [(w, 0, "root") for w in v] for k, v in words.items()}


@pytest.mark.parametrize(("line", "message"), [
    ("1\tdog\t_", r"p.conllu:2: 3 tab-separated columns"),
    ("2\tdog" + "\t_" * 8, r"p.conllu:2: expected word 1 with a numeric HEAD"),
])
def test_a_malformed_parse_names_its_line(tmp_path, line, message):
    path = tmp_path / "p.conllu"
    path.write_text(f"# sent_id = val-1\n{line}\n")
    with pytest.raises(ValueError, match=message):
        dependency_arcs.read_parses(path)


def test_arc_scores_find_the_head_that_follows_the_arcs():
    """Every word's head is the word before it; head 1 attends to the previous word, head 2
    to the next (the last word, which has none, to the previous): head 1 finds every
    dependent's head, head 2 every head's dependent, and the head of the last words only."""
    parses, strongest = [], []
    for n in (4, 6):
        parses.append([(f"w{i}", i, "dep") for i in range(n)])  # word i+1's head is word i
        previous = torch.tensor([1, *range(n - 1)])
        following = torch.tensor([*range(1, n), n - 2])
        strongest.append(torch.stack([previous, following])[None])  # [1 layer, 2 heads, n]
    scores = dependency_arcs.arc_scores(parses, strongest, min_arcs=1)
    assert scores["arcs"] == 8
    assert [h["dependent_to_head_share"] for h in scores["per_head"]] == [1.0, 2 / 8]
    dep = scores["relations"]["dep"]
    assert (dep["best_offset"], dep["offset_baseline"]) == (-1, 1.0)
    assert dep["dependent_to_head"] == {"head": "L1H1", "share": 1.0}
    assert dep["head_to_dependent"] == {"head": "L1H2", "share": 1.0}


def test_the_study_scores_heads_against_parses_of_its_own_words(tmp_path):
    """With every word's head the word before it, a head's share of dependents that attend
    to their head is its share of words whose strongest sender is the previous word, counted
    over the words that have one; a parse of other words is refused."""
    src = ["A man's well-known dog runs.", "Two dogs play with Max in 2019 here.", "A dog."]
    tgt = ["Ein bekannter Hund rennt.", "Zwei Hunde spielen mit Max in 2019 hier.", "Ein Hund."]
    pipeline = TextPipeline("raw", "en", "de", SubwordTokenizer.train(src * 3 + tgt * 3, 300))
    model = _tiny_model()
    sents, _ = syntax_study._prepare(pipeline, src, tgt, model.cfg.max_len)
    parses = {syntax_study.sentence_id(s): [(w, i, "dep") for i, w in enumerate(s.src.words)]
              for s in sents}
    record = syntax_study.study(model, pipeline, src, tgt, tmp_path, parses)
    enc, arcs = record["encoder"], record["dependency_arcs"]
    with_a_head = enc["receiver_words"] - record["sentences"]
    for head, scored in zip(enc["per_head"], arcs["per_head"], strict=True):
        expected = head["left_neighbour_share"] * enc["receiver_words"] / with_a_head
        assert scored["dependent_to_head_share"] == pytest.approx(expected, abs=1e-3)
    parses["val-1"] = [("A", 0, "root"), ("man", 1, "dep")]
    with pytest.raises(ValueError, match="sentence val-1: the parse's words"):
        syntax_study.study(model, pipeline, src, tgt, tmp_path, parses)


@NEEDS_MIRROR
def test_the_command_writes_the_words_for_a_parser_and_names_a_missing_parse(tmp_path, capsys):
    args = ["--checkpoint", str(make_checkpoint(tmp_path / "final.pt")), "--out",
            str(tmp_path / "out"), "--root", str(MIRROR), "--sentences", "5"]
    words = tmp_path / "words.conllu"
    assert syntax_study.main([*args, "--words", str(words)]) == 0
    lines = words.read_text().splitlines()
    ids = [line.split("= ")[1] for line in lines if line.startswith("# sent_id")]
    assert ids[0] == "val-1" and set(ids) <= {f"val-{k}" for k in range(1, 6)}  # too long: out
    first = Translator.from_checkpoint(tmp_path / "final.pt").pipeline.read(MIRROR, "val")[0][0]
    spacy_words = [t.text for t in _spacy_tokenizer("en")(first) if not t.is_space]
    assert lines[1] == f"# text = {' '.join(spacy_words)}"
    assert syntax_study.main([*args, "--parses", str(tmp_path / "parsed.conllu")]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {tmp_path / 'parsed.conllu'}: no such file")
