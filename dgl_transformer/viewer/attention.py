"""Attention as graphs in the browser: :func:`show_attention` and the :class:`AttentionView`.

``show_attention(model_or_translator, source, target=None)`` runs the model teacher-forced on
the target (decoded first, greedy or beam, when none is given) and reads every attention
computation of that pass through the one documented hook,
:func:`~dgl_transformer.nn.hooks.observe_attention`: the graph each attention ran on (whatever
the encoder's graph is: complete, window, global tokens, span nodes) and the weights of its
edges. The page never re-implements attention: every weight is one the model computed. The
:class:`AttentionView` it returns draws the three graphs (encoder, decoder, encoder -> decoder)
in a self-contained HTML page of its own plain JavaScript and SVG (``viewer.html``,
``viewer.js``, ``viewer.css`` beside this module): ``view.save("attention.html")`` writes it
(it works offline), and a notebook shows it inline.

The page's step slider reads the same teacher-forced pass: the decoder's graph is causal (an
edge ``j -> i`` only for ``j <= i``), so what decoder position ``t`` computes depends on
positions ``<= t`` only and equals what decoding computed at step ``t + 1``, when the decoder
held exactly those nodes (``tests/test_viewer.py`` checks it against the incremental decoding
itself). With a target given, the slider replays teacher forcing on that target, not the
model's decoding (``AttentionView.decoded`` says which).
"""

from __future__ import annotations

import base64
import functools
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..nn.batch import PackedBatch
from ..nn.decoding import translate
from ..nn.hooks import KINDS, observe_attention
from ..nn.model import GraphTransformer
from ..tokens import BOS, EOS, NUM_SPECIALS, SPECIALS, UNK

if TYPE_CHECKING:
    from ..mt.generate import Translator
    from ..mt.text import TextPipeline, Tokenizer

#: sentencepiece's mark of a piece that starts a word.
WORD_START = "\u2581"
#: Node rows of the page: how tall an inline view starts, before the page fits itself.
_ROW_PX, _CHROME_PX = 17, 190
Ids = Sequence[int] | Tensor


@dataclass(frozen=True)
class Side:
    """The nodes of one side of the pair, in node order: a label per node and the word each
    belongs to (words number ``0, 1, ...`` in order; a word is a run of consecutive nodes)."""

    tokens: list[str]
    word_of: list[int]

    @property
    def words(self) -> list[str]:
        """Each word's label: its pieces' labels joined, without sentencepiece's word mark."""
        joined = [""] * (self.word_of[-1] + 1)
        for token, word in zip(self.tokens, self.word_of, strict=True):
            joined[word] += token
        return [w.replace(WORD_START, "") or WORD_START for w in joined]


@dataclass(frozen=True)
class GraphWeights:
    """One attention type's graph and the weights the model put on it: edge ``e`` runs from
    sender ``src[e]`` to receiver ``dst[e]``; ``weights`` is ``[layers, edges, heads]``."""

    src: Tensor
    dst: Tensor
    weights: Tensor

    def edges(self) -> list[tuple[int, int]]:
        """The edges as ``(sender, receiver)`` pairs, in the graph's order."""
        return list(zip(self.src.tolist(), self.dst.tolist(), strict=True))


@dataclass
class AttentionView:
    """The three attention graphs of one sentence pair, ready to draw.

    ``source`` holds the encoder's nodes (its tokens, then any span nodes of its graph; the
    first ``source_length`` are tokens), ``target`` the decoder's (``<s>`` and the target),
    ``outputs`` what each decoder node predicts (the target, then ``</s>``), ``graphs`` the
    graph and weights of each attention type (``enc``, ``dec_self``, ``cross``), and
    ``decoded`` whether the target is the model's own output (decoded by
    :func:`show_attention`) rather than one it was given. The other fields are what the page
    shows first: ``layer``, ``head`` (None: every head, side by side), decoding ``step``
    (decoder nodes shown; None: all), ``threshold`` (edges with a smaller weight are hidden)
    and ``words`` (subword pieces merged into words). ``switched_off`` lists, per attention
    type, the ``(layer, head)`` pairs that :func:`~dgl_transformer.nn.hooks.mask_heads` had
    switched off when the pass ran: such a head still computes its weights (the page draws
    them, marked "off"), but its output is multiplied by 0, so nothing downstream hears it.
    """

    source: Side
    source_length: int
    target: Side
    outputs: list[str]
    graphs: dict[str, GraphWeights]
    decoded: bool
    title: str = ""
    layer: int = 0
    head: int | None = 0
    step: int | None = None
    threshold: float = 0.05
    words: bool = False
    switched_off: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    heads: int = field(init=False)

    def __post_init__(self) -> None:
        self.heads = self.graphs["enc"].weights.shape[2]
        layers = {kind: self.layers(kind) for kind in KINDS}
        if not 0 <= self.layer < max(layers.values()):
            raise ValueError(f"layer {self.layer} is out of range: the model has "
                             f"{layers['enc']} encoder and {layers['cross']} decoder layers")
        if self.head is not None and not 0 <= self.head < self.heads:
            raise ValueError(f"head {self.head} is out of range: the model has {self.heads} "
                             "heads (head=None shows them all)")
        steps = len(self.target.tokens)
        if self.step is not None and not 1 <= self.step <= steps:
            raise ValueError(f"step {self.step} is out of range: the decoder has {steps} "
                             f"nodes, so steps 1 to {steps}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")

    def __repr__(self) -> str:
        """One line: the pair and the graphs' sizes (the page itself is the HTML output)."""
        target = "decoded" if self.decoded else "given"
        return (f"AttentionView({self.title!r}: {len(self.source.tokens)} source / "
                f"{len(self.target.tokens)} decoder nodes, target {target}, "
                f"{self.layers('enc')}+{self.layers('cross')} layers, {self.heads} heads; "
                "view.save(path) writes the page)")

    def layers(self, kind: str) -> int:
        """How many layers run attention of type ``kind``."""
        return self.graphs[kind].weights.shape[0]

    def data(self) -> dict:
        """What the page reads (JSON): nodes, edges, and the weights as base64 float32."""

        def side(s: Side) -> dict:
            return {"tokens": s.tokens, "word_of": s.word_of, "words": s.words}

        def graph(g: GraphWeights) -> dict:
            raw = g.weights.to(torch.float32).contiguous().numpy().tobytes()
            return {"layers": g.weights.shape[0], "src": g.src.tolist(), "dst": g.dst.tolist(),
                    "weights": base64.b64encode(raw).decode("ascii")}

        return {
            "title": self.title, "heads": self.heads, "source_length": self.source_length,
            "decoded": self.decoded,
            "source": side(self.source), "target": {**side(self.target), "outputs": self.outputs},
            "encoder_graph": self._encoder_graph_name(),
            "graphs": {kind: graph(g) for kind, g in self.graphs.items()},
            "switched_off": {kind: [list(pair) for pair in pairs]
                             for kind, pairs in self.switched_off.items()},
            "initial": {"layer": self.layer, "head": self.head, "step": self.step,
                        "threshold": self.threshold, "words": self.words},
        }

    def _encoder_graph_name(self) -> str:
        n, nodes = self.source_length, len(self.source.tokens)
        if nodes > n:
            return f"graph with {nodes - n} span nodes"
        return "complete graph" if len(self.graphs["enc"].src) == n * n else "sparse graph"

    def to_html(self) -> str:
        """The page: one self-contained HTML document (no network, no library)."""
        template, css, js = _assets()
        data = json.dumps(self.data(), ensure_ascii=False, separators=(",", ":"))
        page = (template.replace("{{TITLE}}", html.escape(self.title or "attention"))
                .replace("/*{{CSS}}*/", css).replace("/*{{JS}}*/", js))
        return page.replace("{{DATA}}", data.replace("</", "<\\/"))  # no </script> inside

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_html` to ``path``; returns the path."""
        path = Path(path)
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        """The page in an iframe, for JupyterLab, VS Code and the course website; it grows to
        fit its content where the notebook lets it."""
        rows = max(len(self.source.tokens), len(self.target.tokens))
        height = _CHROME_PX + _ROW_PX * rows
        return (f'<iframe class="dglt-attention" title="{html.escape(self.title)}" '
                f'style="width:100%;height:{height}px;border:0" '
                f'srcdoc="{html.escape(self.to_html(), quote=True)}"></iframe>')


@functools.cache
def _assets() -> tuple[str, str, str]:
    here = resources.files(__package__)
    return tuple(here.joinpath(name).read_text(encoding="utf-8")
                 for name in ("viewer.html", "viewer.css", "viewer.js"))


def show_attention(
    model: GraphTransformer | Translator,
    source: str | Ids,
    target: str | Ids | None = None,
    *,
    src_tokens: Sequence[str] | None = None,
    tgt_tokens: Sequence[str] | None = None,
    src_words: Sequence[int] | None = None,
    tgt_words: Sequence[int] | None = None,
    beam_size: int = 1,
    layer: int = 0,
    head: int | None = 0,
    step: int | None = None,
    threshold: float = 0.05,
    words: bool = False,
    title: str | None = None,
) -> AttentionView:
    """The attention of ``model`` on one sentence pair, as an :class:`AttentionView`.

    With a :class:`~dgl_transformer.mt.generate.Translator`, ``source`` (and ``target``) are
    plain text, labelled with the subword pieces of its vocabulary, and pieces are merged into
    words at sentencepiece's word marks. With a bare ``GraphTransformer``, they are token ids
    (without BOS/EOS), labelled by ``src_tokens`` / ``tgt_tokens`` (default: the ids).
    ``src_words`` / ``tgt_words`` give another grouping into words: the word of each source /
    target token (``0, 1, 1, 2, ...``).

    Without a target the model decodes one: greedy, or beam search with ``beam_size`` (with a
    Translator, under its checkpoint's length penalty and output limit), and the view is
    ``decoded``; the pass the page reads is teacher-forced on the target either way. The
    keywords from ``layer`` on set what the page shows first (see :class:`AttentionView`).
    """
    if isinstance(model, GraphTransformer):
        net, pipeline = model, None
        src = _ids(source, net.cfg.src_vocab, "source")
    elif isinstance(getattr(model, "model", None), GraphTransformer) and hasattr(model, "pipeline"):
        net, pipeline = model.model, model.pipeline
        if not isinstance(source, str):
            raise TypeError(f"with a Translator, give the source as text, got "
                            f"{type(source).__name__}")
        src = pipeline.encode_src(source)
    else:
        raise TypeError(f"show_attention needs a GraphTransformer or a Translator, got "
                        f"{type(model).__name__}")
    if not src:
        raise ValueError("the source is empty: give at least one token")
    limit = net.cfg.max_len
    if len(src) > limit:
        raise ValueError(f"the source has {len(src)} tokens, more than the model's "
                         f"max_len={limit}")
    if target is None:
        tgt, ended = _decode(model, net, src, beam_size)
    else:
        tgt, ended = (_ids(target, net.cfg.tgt_vocab, "target") if pipeline is None
                      else _encode_target(pipeline, target)), True
        if len(tgt) + 1 > limit:
            raise ValueError(f"the target has {len(tgt)} tokens; with <s> that is more than "
                             f"the model's max_len={limit}")
    # decoder nodes: <s> and each output token that was fed back (the last one is not when
    # decoding ran out of steps before writing </s>)
    fed = len(tgt) if ended else len(tgt) - 1
    graphs, encoder_nodes = _observe(net, src, [BOS] + tgt[:fed])
    names = _names(pipeline.tokenizer) if pipeline is not None else None
    src_labels = _labels(src, src_tokens, names, "src_tokens")
    tgt_labels = _labels(tgt, tgt_tokens, names, "tgt_tokens")
    src_word_of = _word_of(src_labels, src_words, pipeline, "src_words")
    tgt_word_of = _word_of(tgt_labels, tgt_words, pipeline, "tgt_words")
    spans = encoder_nodes - len(src)  # span nodes, if the encoder's graph has any
    first_span = src_word_of[-1] + 1
    source_side = Side(src_labels + [f"span {k + 1}" for k in range(spans)],
                       src_word_of + [first_span + k for k in range(spans)])
    target_side = Side([SPECIALS[BOS]] + tgt_labels[:fed],
                       [0] + [w + 1 for w in tgt_word_of[:fed]])
    outputs = tgt_labels + [SPECIALS[EOS]] if ended else tgt_labels
    if title is None:
        shown = (source if isinstance(source, str) else " ".join(src_labels),
                 pipeline.decode_tgt(tgt, plain=True) if pipeline is not None
                 else " ".join(tgt_labels))
        title = f"{shown[0]} \u2192 {shown[1]}"
    return AttentionView(source_side, len(src), target_side, outputs, graphs, target is None,
                         title, layer, head, step, threshold, words, _switched_off(net))


def _switched_off(net: GraphTransformer) -> dict[str, list[tuple[int, int]]]:
    """The ``(layer, head)`` pairs whose output a head mask sets to 0, per attention type."""
    return {kind: [(layer, head) for layer, head in (mask == 0).nonzero().tolist()]
            for kind, mask in net.head_masks.items() if bool((mask == 0).any())}


def _ids(ids: Ids, vocab: int, name: str) -> list[int]:
    """``ids`` as a list of ints in ``[0, vocab)``; a one-line error otherwise."""
    if isinstance(ids, str):
        raise TypeError(f"with a bare GraphTransformer the {name} is token ids, not text "
                        "(text needs a Translator)")
    if isinstance(ids, Tensor):
        if ids.dim() != 1 or ids.is_floating_point():
            raise ValueError(f"the {name} must be a 1-D tensor of token ids, got shape "
                             f"{list(ids.shape)} of {ids.dtype}")
        ids = ids.tolist()
    out = [int(i) for i in ids]
    bad = [i for i in out if not 0 <= i < vocab]
    if bad:
        raise ValueError(f"the {name} holds token id {bad[0]}, outside the model's "
                         f"vocabulary [0, {vocab})")
    return out


def _decode(model: GraphTransformer | Translator, net: GraphTransformer, src: list[int],
            beam_size: int) -> tuple[list[int], bool]:
    """The model's own output for ``src`` (greedy or beam search), and whether it ended with
    ``</s>`` before running out of steps."""
    steps, penalty = net.cfg.max_len, 0.6
    if model is not net:  # a Translator: its checkpoint's decoding settings
        from ..mt.generate import output_limit

        s = model.settings
        steps = output_limit(len(src), s.max_len_a, s.max_len_b, steps)
        penalty = s.length_penalty
    out = translate(net, [torch.tensor(src)], beam_size, steps, penalty)[0].tolist()
    return out, len(out) < steps


def _encode_target(pipeline: TextPipeline, text: str | Ids) -> list[int]:
    """Ids of a plain target sentence (in the vocabulary's corpus form); a one-line error for
    words the vocabulary lacks."""
    if not isinstance(text, str):
        raise TypeError(f"with a Translator, give the target as text, got {type(text).__name__}")
    if pipeline.variant == "lc_tok":
        from ..mt.text import preprocess

        text = preprocess(text, pipeline.tgt_lang)
    ids = pipeline.encode(text, pipeline.tgt_lang)
    if not ids:
        raise ValueError("the target is empty: give at least one word, or none to decode")
    unknown = sum(i == UNK for i in ids)
    if unknown:
        raise ValueError(f"the target has {unknown} token(s) the vocabulary lacks (they would "
                         "be read as <unk>)")
    return ids


def _names(tokenizer: Tokenizer) -> list[str]:
    """Every id's piece (or word), read from the vocabulary's own serialised form."""
    if tokenizer.kind == "sentencepiece":
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_proto=tokenizer.to_bytes())
        return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    return json.loads(tokenizer.to_bytes().decode("utf-8"))


def _labels(ids: list[int], given: Sequence[str] | None, names: list[str] | None,
            name: str) -> list[str]:
    if given is not None:
        if len(given) != len(ids):
            raise ValueError(f"{name} has {len(given)} labels for {len(ids)} tokens")
        return [str(t) for t in given]
    if names is not None:
        return [names[i] for i in ids]
    return [SPECIALS[i] if i < NUM_SPECIALS else str(i) for i in ids]


def _word_of(labels: list[str], given: Sequence[int] | None, pipeline: TextPipeline | None,
             name: str) -> list[int]:
    """The word of each token: ``given`` (checked), sentencepiece's word marks, or one word
    per token."""
    if given is not None:
        word_of = [int(w) for w in given]
        if len(word_of) != len(labels):
            raise ValueError(f"{name} has {len(word_of)} entries for {len(labels)} tokens")
        steps = [b - a for a, b in zip([-1] + word_of, word_of, strict=False)]
        if any(s not in (0, 1) for s in steps):
            raise ValueError(f"{name} must number words 0, 1, 2, ... in token order (each "
                             f"token in the word of the one before or the next), got {word_of}")
        return word_of
    if pipeline is None or pipeline.variant == "word":
        return list(range(len(labels)))
    starts = [k == 0 or piece.startswith(WORD_START) for k, piece in enumerate(labels)]
    return [sum(starts[: k + 1]) - 1 for k in range(len(labels))]


def _observe(model: GraphTransformer, src: list[int], tgt_in: list[int]
             ) -> tuple[dict[str, GraphWeights], int]:
    """One teacher-forced pass over the decoder inputs ``tgt_in`` (``<s>`` included), in eval
    mode, every attention read through the observer hook: each type's graph and weights, and
    how many nodes the encoder's graph has."""
    batch = PackedBatch.from_decoder_inputs([torch.tensor(src)], [torch.tensor(tgt_in)],
                                            encoder_graph=model.encoder_graph)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), observe_attention(model) as events:
            model(batch)
    finally:
        model.train(was_training)
    out = {}
    for kind in KINDS:
        mine = [e for e in events if e.kind == kind]  # one per layer, in layer order
        src_ids, dst_ids = (t.long().cpu() for t in mine[0].graph.edges())
        out[kind] = GraphWeights(src_ids, dst_ids,
                                 torch.stack([e.weights.float().cpu() for e in mine]))
    return out, next(e.graph for e in events if e.kind == "enc").num_nodes()
