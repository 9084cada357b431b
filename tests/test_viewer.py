"""The attention viewer in a real browser (Debian's headless Chromium, through Selenium): the
edges it draws, the weights it shows, what the controls and the mouse change, a page of the
built website, and the page's size and opening time. Every expected value is read here from
the model's observer hook, not from the viewer. Each test leaves screenshots of what it saw in
its tmp_path.

Without Chromium these tests fail (they never skip): `apt-get install chromium
chromium-driver`."""

import functools
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest
import torch
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait
from tiny_checkpoint import make_checkpoint

from dgl_transformer.mt.generate import Translator
from dgl_transformer.nn import graphs
from dgl_transformer.nn.config import TransformerConfig
from dgl_transformer.nn.decoding import greedy
from dgl_transformer.nn.hooks import KINDS, mask_heads, observe_attention
from dgl_transformer.nn.model import GraphTransformer
from dgl_transformer.viewer import show_attention
from dgl_transformer.viewer.browser import BrowserMissing, chromium, open_page, wait_for_viewer
from repro.report.viewer import MAX_BYTES, benchmark_view
from repro.syntax_study import merge_pieces

ROOT = Path(__file__).resolve().parent.parent
SRC, TGT = [5, 9, 7, 11, 6, 8, 14], [12, 4, 10, 13, 15]
LAYERS, HEADS = 2, 2


@pytest.fixture(scope="module")
def browser():
    try:
        with chromium(width=1400, height=900) as driver:
            yield driver
    except BrowserMissing as err:
        pytest.fail(str(err), pytrace=False)


def tiny_model(encoder_graph=None, max_len=16) -> GraphTransformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(src_vocab=20, tgt_vocab=20, d_model=16, n_heads=HEADS, d_ff=32,
                            n_enc_layers=LAYERS, n_dec_layers=LAYERS, dropout=0.0,
                            max_len=max_len)
    return GraphTransformer(cfg, encoder_graph=encoder_graph).eval()


def observed(model, src, tgt) -> dict:
    """Per type: (sender, receiver) of each edge and weights [layers, edges, heads], read from
    the observer hook in a teacher-forced pass."""
    batch = model.collate([torch.tensor(src)], [torch.tensor(tgt)])
    with torch.no_grad(), observe_attention(model) as events:
        model(batch)
    out = {}
    for kind in KINDS:
        mine = [e for e in events if e.kind == kind]
        u, v = mine[0].graph.edges()
        out[kind] = (list(zip(u.tolist(), v.tolist(), strict=True)),
                     torch.stack([e.weights for e in mine]).double())
    return out


def load(driver, view, tmp_path: Path, name: str = "view") -> None:
    open_page(driver, view.save(tmp_path / f"{name}.html"))


def shot(driver, tmp_path: Path, name: str) -> Path:
    """A screenshot of the whole page under tmp_path."""
    tall = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(600, int(tall) + 40))
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 900)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def drawn(driver, kind: str, head: int | None = None) -> dict[tuple[int, int], float]:
    """The edges the page draws in the panel of ``kind`` (and ``head``): weight by edge."""
    selector = f'.panel[data-kind="{kind}"]' + ("" if head is None else f'[data-head="{head}"]')
    lines = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' line.edge'))"
        ".map(l => [+l.dataset.s, +l.dataset.d, +l.dataset.w, l.getAttribute('class')])",
        selector)
    return {(s, d): w for s, d, w, _ in lines}


def classed(driver, kind: str, cls: str) -> set[tuple[int, int]]:
    return set(map(tuple, driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'.panel[data-kind=\"' + arguments[0] + '\"] line.edge.' + arguments[1]))"
        ".map(l => [+l.dataset.s, +l.dataset.d])", kind, cls)))


def shown_weights(driver, kind: str, column: str) -> dict[int, float]:
    """The weights written beside the nodes of one column (left: senders, right: receivers)."""
    pairs = driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'.panel[data-kind=\"' + arguments[0] + '\"] text.wt.' + arguments[1] + '[data-w]'))"
        ".map(t => [+t.dataset.node, +t.dataset.w])", kind, column)
    return dict(map(tuple, pairs))


def status(driver) -> str:
    """The line above the graphs: the decoding step and the hovered token."""
    return driver.find_element(By.ID, "status").text


def set_range(driver, element_id: str, value: float) -> None:
    driver.execute_script("const e = document.getElementById(arguments[0]); e.value = arguments[1];"
                          "e.dispatchEvent(new Event('input'))", element_id, value)


def hover(driver, kind: str, side: str, node: int, column: int = 0) -> None:
    """Move the mouse onto a token of the panel of ``kind`` (its sender or receiver column)."""
    texts = driver.find_elements(
        By.CSS_SELECTOR, f'.panel[data-kind="{kind}"] text[data-side="{side}"][data-node="{node}"]')
    ActionChains(driver).move_to_element(texts[column]).perform()


def above(edges, weights, threshold: float) -> dict[tuple[int, int], float]:
    return {e: float(w) for e, w in zip(edges, weights, strict=True) if w >= threshold}


@pytest.mark.parametrize("builder", [
    None, functools.partial(graphs.window_graph, window=1),
    functools.partial(graphs.span_graph, window=1)], ids=["complete", "window", "spans"])
def test_drawn_edges_are_the_graphs_edges_above_the_threshold(browser, tmp_path, builder):
    model = tiny_model(builder)
    truth = observed(model, SRC, TGT)
    load(browser, show_attention(model, SRC, TGT, threshold=0.0), tmp_path)
    layer, head = 1, 1
    Select(browser.find_element(By.ID, "layer")).select_by_value(str(layer))
    Select(browser.find_element(By.ID, "head")).select_by_value(str(head))
    for kind in KINDS:  # threshold 0: every edge of the graph, with the model's weight
        edges, weights = truth[kind]
        page = drawn(browser, kind)
        assert sorted(page) == sorted(edges)
        for edge, w in zip(edges, weights[layer, :, head].tolist(), strict=True):
            assert page[edge] == pytest.approx(w, abs=1e-6)
    threshold = round(float(truth["enc"][1][layer, :, head].median()), 2)
    set_range(browser, "threshold", threshold)
    for kind in KINDS:
        edges, weights = truth[kind]
        expected = above(edges, weights[layer, :, head], threshold)
        assert 0 < len(expected) and set(drawn(browser, kind)) == set(expected)
    shot(browser, tmp_path, "threshold")


def test_hovering_a_token_highlights_its_edges_and_shows_their_weights(browser, tmp_path):
    model = tiny_model()
    truth = observed(model, SRC, TGT)
    load(browser, show_attention(model, SRC, TGT, threshold=0.0), tmp_path)
    receiver = 3  # a decoder node: its in-edges in the decoder's and the cross graph
    hover(browser, "cross", "target", receiver)
    for kind in ("dec_self", "cross"):
        edges, weights = truth[kind]
        into = {e[0]: float(w) for e, w in zip(edges, weights[0, :, 0], strict=True)
                if e[1] == receiver}
        assert classed(browser, kind, "in") == {(s, receiver) for s in into}
        shown = shown_weights(browser, kind, "left")
        assert shown.keys() == into.keys()
        for s, w in into.items():
            assert shown[s] == pytest.approx(w, abs=1e-4)
        assert sum(shown.values()) == pytest.approx(1.0, abs=1e-4)
    assert classed(browser, "enc", "in") == set()  # the encoder holds no decoder node
    shot(browser, tmp_path, "hover_receiver")

    sender = 2  # a source token: its out-edges to every decoder node
    hover(browser, "cross", "source", sender)
    edges, weights = truth["cross"]
    out = {e[1]: float(w) for e, w in zip(edges, weights[0, :, 0], strict=True)
           if e[0] == sender}
    assert classed(browser, "cross", "out") == {(sender, d) for d in out}
    shown = shown_weights(browser, "cross", "right")
    assert shown.keys() == out.keys()
    assert all(shown[d] == pytest.approx(w, abs=1e-4) for d, w in out.items())
    assert {e[1] for e in classed(browser, "enc", "in")} == {sender}  # the encoder's too
    shot(browser, tmp_path, "hover_sender")

    set_range(browser, "threshold", 1.0)  # every edge hidden ...
    hover(browser, "cross", "target", receiver)
    assert drawn(browser, "cross") == {}
    listed = shown_weights(browser, "cross", "left")  # ... and yet all of its weights listed
    assert listed.keys() == {s for s, d in edges if d == receiver}
    assert sum(listed.values()) == pytest.approx(1.0, abs=1e-4)


def test_the_step_slider_replays_decoding_as_the_decoder_computed_it(browser, tmp_path):
    model = tiny_model(max_len=8)  # at most 8 steps
    src = torch.tensor(SRC)
    with observe_attention(model) as events:  # greedy decoding, one node per step, cached
        greedy(model, [src], 8)
    view = show_attention(model, SRC)
    load(browser, view, tmp_path)
    steps = len([e for e in events if e.kind == "dec_self" and e.layer == 0])
    total = len(view.graphs["dec_self"].src)
    assert browser.find_element(By.ID, "step").get_attribute("max") == str(steps)
    for head in (0, 1):
        Select(browser.find_element(By.ID, "head")).select_by_value(str(head))
        slider = browser.find_element(By.ID, "step")
        for step in range(steps, 0, -1):
            last = step - 1  # the node decoding added at this step
            assert {d for _, d in drawn(browser, "dec_self")} <= set(range(step))
            held = " ".join(view.target.tokens[:step])
            assert status(browser).startswith(f"Decoding step {step} of {steps}: the decoder "
                                              f"holds {step} node")
            assert f"({held}) and writes \u201c{view.outputs[last]}\u201d." in status(browser)
            among = step * (step + 1) // 2  # the causal graph's edges among the nodes shown
            heading = browser.find_element(By.CSS_SELECTOR, '.panel[data-kind="dec_self"] h2')
            assert heading.text.endswith(f"causal graph, {among} of {total} edges" if step < steps
                                         else f"causal graph, {total} edges")
            hover(browser, "dec_self", "target", last, column=1)
            for kind in ("dec_self", "cross"):
                event = [e for e in events if e.kind == kind and e.layer == 0][last]
                u, _ = event.graph.edges()  # into the new node: cached rows, or the source
                expected = dict(zip(u.tolist(), event.weights[:, head].tolist(), strict=True))
                shown = shown_weights(browser, kind, "left")
                assert shown.keys() == expected.keys()
                for s, w in expected.items():
                    assert shown[s] == pytest.approx(w, abs=1e-4)
            if step == steps // 2 + 1 and head == 0:
                shot(browser, tmp_path, f"step_{step}")
            if step > 1:
                slider.send_keys(Keys.ARROW_LEFT)  # one step back, from the keyboard
        assert "1 / " in browser.find_element(By.ID, "step-value").text
        slider.send_keys(Keys.END)


def test_the_word_view_merges_pieces_as_lesson_5_does(browser, tmp_path):
    translator = Translator.from_checkpoint(make_checkpoint(tmp_path / "tiny.pt"))
    view = show_attention(translator, "A man plays with a red ball.", "a woman runs .",
                          threshold=0.0)
    src_ids = translator.pipeline.encode_src("A man plays with a red ball.")
    tgt_ids = translator.pipeline.encode("a woman runs .", "de")
    truth = observed(translator.model, src_ids, tgt_ids)
    load(browser, view, tmp_path)
    nodes = len(view.target.tokens)  # not "writes": the model was given the target
    given = f"teacher-forced on the given target: the decoder holds {nodes} nodes ("
    assert f"{given}{' '.join(view.target.tokens)}); the next target token is \u201c</s>\u201d" \
        in status(browser) and "\u2581" in status(browser)  # pieces, with their word marks
    browser.find_element(By.ID, "words").click()
    assert f"{given}{' '.join(view.target.words)});" in status(browser)
    assert "\u2581" not in status(browser)  # words: the marks are gone
    sides = {"enc": (view.source, view.source), "dec_self": (view.target, view.target),
             "cross": (view.source, view.target)}
    for kind, (senders, receivers) in sides.items():
        edges, weights = truth[kind]
        n_send = len(senders.tokens) if kind != "cross" else view.source_length
        pieces = torch.zeros(len(receivers.tokens), n_send, dtype=torch.float64)
        for (s, d), w in zip(edges, weights[0, :, 0], strict=True):
            pieces[d, s] = w
        words = merge_pieces(pieces, receivers.word_of, senders.word_of[:n_send])
        page = drawn(browser, kind)
        expected = {(s, d): float(words[d, s]) for d in range(words.shape[0])
                    for s in range(words.shape[1]) if words[d, s] > 0}
        assert page.keys() == expected.keys()
        for edge, w in expected.items():
            assert page[edge] == pytest.approx(w, abs=1e-4)
        rows = torch.zeros(words.shape[0], dtype=torch.float64)
        for (_, d), w in page.items():
            rows[d] += w
        assert torch.allclose(rows, torch.ones_like(rows), atol=1e-4)
    labels = browser.execute_script(  # each label's full text is its tooltip
        "return Array.from(document.querySelectorAll('.panel[data-kind=\"enc\"] "
        "text[data-side=\"source\"] title')).map(t => t.textContent)")
    assert labels[: len(view.source.words)] == view.source.words
    shot(browser, tmp_path, "words")


def test_every_head_side_by_side(browser, tmp_path):
    model = tiny_model()
    truth = observed(model, SRC, TGT)
    load(browser, show_attention(model, SRC, TGT, head=None, layer=1, threshold=0.15), tmp_path)
    panels = browser.find_elements(By.CSS_SELECTOR, ".panel")
    assert sorted((p.get_attribute("data-kind"), p.get_attribute("data-head")) for p in panels) \
        == sorted((k, str(h)) for k in KINDS for h in range(HEADS))
    for kind in KINDS:
        edges, weights = truth[kind]
        for head in range(HEADS):
            assert set(drawn(browser, kind, head)) == set(above(edges, weights[1, :, head], 0.15))
    hover(browser, "enc", "source", 1)
    assert classed(browser, "enc", "in")  # the small panels highlight too
    shot(browser, tmp_path, "all_heads")


def test_the_page_opens_quickly_and_stays_small(browser, tmp_path, record_property):
    view = benchmark_view()  # 40 + 40 tokens, 4 + 4 layers of 4 heads
    page = view.save(tmp_path / "large.html")
    size = page.stat().st_size
    opened_ms = open_page(browser, page)
    record_property("html_bytes", size)
    record_property("open_ms", opened_ms)  # recorded, never asserted: a wall time
    print(f"viewer page: {size / 1e6:.2f} MB, drawn {opened_ms:.0f} ms after navigation start")
    assert size < MAX_BYTES
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    assert len(drawn(browser, "enc")) > 0
    shot(browser, tmp_path, "large")


def test_a_page_of_the_built_website_runs_its_viewer_offline(browser, tmp_path):
    """The site's own config and hooks, on one lesson page holding a viewer and some maths,
    served as `python -m http.server -d site` serves it and opened from the disk: the viewer
    draws, the maths is typeset, and the browser logs no error (no font is missing)."""
    site = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", site / "docs", ignore=shutil.ignore_patterns("*.png"))
    shutil.copy(ROOT / "mkdocs.yml", site)
    model = tiny_model()
    view = show_attention(model, SRC, TGT, threshold=0.0)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Lesson 4 - a viewer\n\nAn edge $j \\to i$ "
                                              "and a loss $\\mathcal L$."),
                nbformat.v4.new_code_cell("view", execution_count=1, outputs=[
                    nbformat.v4.new_output("execute_result", execution_count=1,
                                           data={"text/html": view._repr_html_(),
                                                 "text/plain": "view"})])]
    (site / "notebooks").mkdir()
    nbformat.write(nb, site / "notebooks" / "04_seq2seq_three_graphs.ipynb")
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q"], cwd=site, check=True,
                   capture_output=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    built = site / "site"
    for page in built.rglob("*.html"):  # nothing is loaded from another host
        text = page.read_text(encoding="utf-8")
        assert not re.search(r'<(script|link|img|iframe)\b[^>]*\b(src|href)="(https?:)?//', text)

    def open_lesson(url: str) -> list[str]:
        """Open the lesson page: its viewer's edges and typeset maths; the resources it
        loaded. Fails on any error in the browser's console."""
        browser.get_log("browser")  # only this page's messages from here on
        browser.get(url)
        browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe.dglt-attention"))
        try:
            wait_for_viewer(browser)
            assert sorted(drawn(browser, "cross")) == sorted(observed(model, SRC, TGT)["cross"][0])
        finally:
            browser.switch_to.default_content()
        WebDriverWait(browser, 20).until(lambda d: d.execute_script(
            "return document.querySelectorAll('.MathJax').length > 0"))  # the maths typeset
        browser.execute_async_script(  # until MathJax has done all it queued, fonts included
            "const done = arguments[0]; MathJax.Hub.Queue(() => done(true));")
        severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], url
        return browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(built))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # `python -m http.server -d site`
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        resources = open_lesson(origin + "notebooks/04_seq2seq_three_graphs.html")
    finally:
        server.shutdown()
        server.server_close()
    assert [r for r in resources if not r.startswith(origin)] == []  # all from the site
    assert origin + "assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe" in resources
    shot(browser, tmp_path, "site_page")
    disk = (built / "notebooks" / "04_seq2seq_three_graphs.html").as_uri()  # site/index.html
    assert [r for r in open_lesson(disk) if not r.startswith(built.as_uri())] == []
    shot(browser, tmp_path, "site_page_from_disk")


def test_a_switched_off_head_is_drawn_and_marked(browser, tmp_path):
    model = tiny_model()
    with mask_heads(model, {"enc": torch.tensor([[1.0, 0.0], [1.0, 1.0]])}):
        truth = observed(model, SRC, TGT)
        view = show_attention(model, SRC, TGT, head=None, threshold=0.15)
    load(browser, view, tmp_path)
    off = browser.find_elements(By.CSS_SELECTOR, ".panel.off")
    assert [(p.get_attribute("data-kind"), p.get_attribute("data-head")) for p in off] == [
        ("enc", "1")]
    assert off[0].find_element(By.CSS_SELECTOR, ".off-mark").text == "off"
    edges, weights = truth["enc"]
    assert set(drawn(browser, "enc", 1)) == set(above(edges, weights[0, :, 1], 0.15))
    shot(browser, tmp_path, "head_off")
    Select(browser.find_element(By.ID, "layer")).select_by_value("1")
    assert not browser.find_elements(By.CSS_SELECTOR, ".panel.off")  # layer 1: all heads on
