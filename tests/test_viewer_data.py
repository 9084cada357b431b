"""The attention viewer's Python side (dgl_transformer.viewer): the weights it carries are the
ones the model's observer hook reports, decoding when no target is given, the page it writes,
and one-line errors for bad input. The page in a browser: tests/test_viewer.py."""

import functools
import html
import re
from pathlib import Path

import pytest
import torch
from tiny_checkpoint import make_checkpoint

from dgl_transformer.mt.generate import Translator
from dgl_transformer.mt.text import TextPipeline, WordTokenizer
from dgl_transformer.nn import graphs
from dgl_transformer.nn.config import TransformerConfig
from dgl_transformer.nn.decoding import beam_search, greedy
from dgl_transformer.nn.hooks import KINDS, mask_heads, observe_attention
from dgl_transformer.nn.model import GraphTransformer
from dgl_transformer.tokens import SPECIALS
from dgl_transformer.viewer import show_attention
from dgl_transformer.viewer.browser import BrowserMissing, chromium

ROOT = Path(__file__).resolve().parent.parent
SRC, TGT = [5, 9, 7, 11, 6, 8], [12, 4, 10, 13]


def tiny_model(encoder_graph=None, layers=2, heads=2, vocab=20) -> GraphTransformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(src_vocab=vocab, tgt_vocab=vocab, d_model=16, n_heads=heads,
                            d_ff=32, n_enc_layers=layers, n_dec_layers=layers, dropout=0.0,
                            max_len=16)
    return GraphTransformer(cfg, encoder_graph=encoder_graph).eval()


def observed(model, src, tgt):
    """Each attention type's events in a teacher-forced pass, read with the hook here."""
    batch = model.collate([torch.tensor(src)], [torch.tensor(tgt)])
    with torch.no_grad(), observe_attention(model) as events:
        model(batch)
    return {kind: [e for e in events if e.kind == kind] for kind in KINDS}


@pytest.mark.parametrize("builder, name", [
    (None, "complete graph"),
    (functools.partial(graphs.window_graph, window=1), "sparse graph"),
    (functools.partial(graphs.span_graph, window=1), "graph with 5 span nodes"),
], ids=["complete", "window", "spans"])
def test_the_view_holds_the_graphs_and_weights_the_hook_reports(builder, name):
    model = tiny_model(builder)
    view = show_attention(model, SRC, TGT)
    events = observed(model, SRC, TGT)
    for kind in KINDS:
        g = view.graphs[kind]
        src, dst = events[kind][0].graph.edges()
        assert g.edges() == list(zip(src.tolist(), dst.tolist(), strict=True))
        assert torch.equal(g.weights, torch.stack([e.weights for e in events[kind]]))
    nodes = events["enc"][0].graph.num_nodes()
    assert len(view.source.tokens) == nodes and view.source_length == len(SRC)
    assert view.source.tokens[len(SRC):] == [f"span {k + 1}" for k in range(nodes - len(SRC))]
    assert view.target.tokens == [SPECIALS[1]] + [str(t) for t in TGT]
    assert view.outputs == [str(t) for t in TGT] + [SPECIALS[2]]
    assert view.data()["encoder_graph"] == name
    assert not view.decoded and view.data()["decoded"] is False  # teacher forcing on TGT


def test_a_head_switched_off_is_marked_and_the_pass_is_the_masked_models():
    """Inside ``mask_heads`` the view records which heads were off, and every weight (the off
    head's included: it is still computed) is the masked model's, as the hook reports it."""
    model = tiny_model()
    masks = {"enc": torch.tensor([[1.0, 0.0], [1.0, 1.0]]),
             "cross": torch.tensor([[1.0, 1.0], [0.0, 0.0]])}
    with mask_heads(model, masks):
        view = show_attention(model, SRC, TGT)
        events = observed(model, SRC, TGT)
    assert view.switched_off == {"enc": [(0, 1)], "cross": [(1, 0), (1, 1)]}
    assert view.data()["switched_off"] == {"enc": [[0, 1]], "cross": [[1, 0], [1, 1]]}
    for kind in KINDS:
        assert torch.equal(view.graphs[kind].weights,
                           torch.stack([e.weights for e in events[kind]]))
    plain = show_attention(model, SRC, TGT)  # the masks are gone again
    assert plain.switched_off == {}
    assert not torch.equal(plain.graphs["dec_self"].weights[1], view.graphs["dec_self"].weights[1])


def test_a_view_prints_as_one_line_and_displays_as_the_page():
    view = show_attention(tiny_model(), SRC, TGT)
    assert repr(view) == ("AttentionView('5 9 7 11 6 8 \u2192 12 4 10 13': 6 source / 5 decoder "
                          "nodes, target given, 2+2 layers, 2 heads; view.save(path) writes "
                          "the page)")
    assert "decoder nodes, target decoded, 3+3 layers, 4 heads" in repr(
        show_attention(tiny_model(layers=3, heads=4), SRC))
    assert len(view._repr_html_()) > 100 * len(repr(view))  # the page is the rich output


def test_without_a_target_the_model_decodes_its_own_greedy_or_beam_output():
    model = tiny_model()
    src = torch.tensor(SRC)
    for view, out in [(show_attention(model, SRC), greedy(model, [src], 16)[0]),
                      (show_attention(model, SRC, beam_size=3),
                       beam_search(model, [src], 3, 16)[0])]:
        assert view.decoded and view.data()["decoded"] is True  # the page says "writes"
        out = [str(t) for t in out.tolist()]
        if len(out) < 16:  # ended with </s>: every output token was fed back
            assert view.outputs == out + ["</s>"] and view.target.tokens == ["<s>"] + out
        else:  # out of steps: the last token was never fed to the decoder
            assert view.outputs == out and view.target.tokens == ["<s>"] + out[:-1]


def test_a_model_in_training_mode_is_observed_in_eval_mode_and_given_back():
    torch.manual_seed(0)
    cfg = TransformerConfig(src_vocab=20, tgt_vocab=20, d_model=16, n_heads=2, d_ff=32,
                            n_enc_layers=1, n_dec_layers=1, dropout=0.5)
    model = GraphTransformer(cfg).train()
    first, second = (show_attention(model, SRC, TGT).graphs["cross"].weights for _ in "12")
    assert model.training  # given back as it was
    assert torch.equal(first, second)  # no dropout: observed in eval mode
    events = observed(model.eval(), SRC, TGT)
    assert torch.equal(first, torch.stack([e.weights for e in events["cross"]]))


def test_a_translator_labels_pieces_and_groups_them_at_word_marks(tmp_path):
    translator = Translator.from_checkpoint(make_checkpoint(tmp_path / "tiny.pt"))
    view = show_attention(translator, "A man plays with a red ball.", "a woman runs .")
    pieces = translator.pipeline.tokenizer.pieces("a man plays with a red ball .", "en")
    assert view.source.tokens == pieces
    assert view.source.words == ["a", "man", "plays", "with", "a", "red", "ball", "."]
    assert view.target.words == ["<s>", "a", "woman", "runs", "."]
    assert view.title == "A man plays with a red ball. \u2192 a woman runs."
    spacy_like = show_attention(translator, "A man plays.", src_words=[0, 0, 0, 0, 1, 1, 1])
    assert spacy_like.source.words == ["aman", "plays."]


def test_bad_input_is_a_one_line_error(tmp_path):
    model = tiny_model()
    translator = Translator.from_checkpoint(make_checkpoint(tmp_path / "tiny.pt"))
    words = WordTokenizer([*SPECIALS, "a", "dog", "runs", "."])
    word_translator = Translator(tiny_model(vocab=8), TextPipeline("word", "en", "de", words))
    cases = [
        (lambda: show_attention(model, SRC, TGT, layer=2), ValueError, "layer 2 is out of range"),
        (lambda: show_attention(model, SRC, TGT, head=-1), ValueError, "head -1 is out of range"),
        (lambda: show_attention(model, SRC, TGT, step=6), ValueError, "step 6 is out of range"),
        (lambda: show_attention(model, SRC, TGT, threshold=2), ValueError, "between 0 and 1"),
        (lambda: show_attention(model, SRC, [4, 25]), ValueError, "token id 25, outside"),
        (lambda: show_attention(model, "a dog", TGT), TypeError, "token ids, not text"),
        (lambda: show_attention(model, [], TGT), ValueError, "the source is empty"),
        (lambda: show_attention(model, list(range(4, 20)) + [5], TGT), ValueError,
         "more than the model's max_len=16"),
        (lambda: show_attention(model, SRC, list(range(4, 20))), ValueError, "with <s>"),
        (lambda: show_attention(model, SRC, TGT, src_tokens=["a"]), ValueError,
         "src_tokens has 1 labels for 6 tokens"),
        (lambda: show_attention(model, SRC, TGT, tgt_words=[0, 2, 3, 4]), ValueError,
         "tgt_words must number words"),
        (lambda: show_attention(translator, SRC), TypeError, "give the source as text"),
        (lambda: show_attention(word_translator, "a dog runs .", "a cat runs ."), ValueError,
         "1 token(s) the vocabulary lacks"),
        (lambda: show_attention(torch.nn.Linear(2, 2), SRC), TypeError,
         "needs a GraphTransformer or a Translator"),
    ]
    for call, error, words_ in cases:
        with pytest.raises(error) as caught:
            call()
        message = str(caught.value)
        assert words_ in message and "\n" not in message, message


def test_the_page_is_self_contained_and_the_notebook_frame_holds_it():
    view = show_attention(tiny_model(), SRC, TGT, title="a </script> <b>title</b>")
    page = view.to_html()
    assert "{{" not in page and "/*{{" not in page  # every placeholder filled
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)  # nothing loaded
    assert page.count("</script>") == 2  # the data cannot close its script element
    assert "<title>a &lt;/script&gt; &lt;b&gt;title&lt;/b&gt;</title>" in page
    frame = view._repr_html_()
    assert frame.startswith('<iframe class="dglt-attention"')
    assert html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1)) == page


def test_a_missing_browser_is_a_one_line_error_that_says_how_to_get_one(monkeypatch, tmp_path):
    from dgl_transformer.viewer import browser

    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "chromium")
    with pytest.raises(BrowserMissing) as caught, chromium():
        pass
    message = str(caught.value)
    assert "apt-get install chromium chromium-driver" in message and "\n" not in message
