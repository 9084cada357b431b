"""Neural syntax: what the encoder heads of a trained model attend to, counted in words.

    python -m repro.syntax_study --checkpoint runs/experiments/graph_complete/final.pt \\
        --out repro/results/experiments/syntax [--sentences 500] [--root DATA_ROOT]

On the first ``--sentences`` validation pairs, the model's attention (teacher forcing on the
reference translation) is read per layer and head and brought from subword pieces to words:

* **Words** are the tokens of spaCy's rule-based tokenizer (``spacy.blank(lang)``, no trained
  pipeline) on the same corpus-form text the pieces were cut from. A piece belongs to the word
  its characters overlap; a piece that overlaps two words (e.g. ``on`` in ``d|on|'|t`` against
  spaCy's ``do|n't``) goes to the word where it starts, and such *glued* pieces are counted; a
  piece of whitespace only goes to the word that follows it. A word left without pieces (all of
  its characters inside a glued piece) is dropped and counted.
* **Word-level attention** (the rule used): ``W[I, J] = mean over receiver pieces i of I of
  (sum over sender pieces j of J of A[i, j])``, for a row-stochastic piece attention ``A``
  (row: receiver, column: sender). Summing over senders is how much a piece hears of a word,
  whatever the number of pieces the word was cut into; averaging over receivers weighs each
  word once. So every word's row stays a distribution (sums to 1). This is the convention of
  Clark et al. (2019), "What does BERT look at?"; the issue's wording (sum as receivers, mean
  as senders) gives rows that do not sum to 1 (a word of three pieces would hear three times
  as much), so it is not used.

Per encoder layer and head: the *strongest sender* of each receiver word is its argmax over
the *other* words (self excluded, ties to the lower index); its share of adjacent words
(``|J - I| = 1``) against two baselines on the same sentences, a uniformly random other word
and the *length-only* choice (what the merge rule makes of uniform piece attention: the other
word of most pieces, since a word hears the sum over its pieces; ties, common since most
words are one piece, split evenly, so the baseline is an expected value); the histogram of
the signed distance ``J - I``; the mean row entropy (nats) against a uniform row's; and the
agreement between heads, the Jaccard index of two heads' sets of (receiver, strongest sender)
edges, averaged over sentences.
Cross-attention (averaged over heads, per layer, same merge rule): for target words that occur
verbatim among the source words (names, numbers, capitalised words, ...), how often the argmax
source word is such an identical word, against a uniformly random source word and the
length-only choice.
Writes ``syntax_study.json`` and PNGs (sentences drawn with their strongest edges, distance
histograms, head agreement) in ``--out``.

Syntax itself needs a dependency parser, which this repository cannot install offline:
``--words FILE`` writes the studied words for one, and ``--parses FILE`` scores every head
against the parser's arcs (``repro/dependency_arcs.py`` says how).
"""

from __future__ import annotations

import bisect
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import torch
import torch.nn.functional as F
from matplotlib.patches import FancyArrowPatch
from torch import Tensor

from dgl_transformer.mt.generate import Translator
from dgl_transformer.mt.text import SubwordTokenizer, TextPipeline, _spacy_tokenizer
from dgl_transformer.nn.model import GraphTransformer
from dgl_transformer.tokens import BOS

from .cli import checkpoint_parser, exit_status, write_json
from .dependency_arcs import Parse, arc_scores, read_parses, write_words
from .learned_graph import dense_attention

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RULE = ("W[I, J] = mean over receiver pieces i in word I of the sum over sender pieces j in "
        "word J of A[i, j] (sum over senders, mean over receivers): each word's row stays a "
        "distribution, as in Clark et al. 2019; the issue's 'sum as receivers, mean as "
        "senders' would make rows of multi-piece words sum to more than 1")
#: Signed distances ``J - I`` binned one by one up to this far; beyond, "further left/right".
MAX_DISTANCE = 8
DISTANCE_BINS = ("further left", *map(str, range(-MAX_DISTANCE, 0)),
                 *map(str, range(1, MAX_DISTANCE + 1)), "further right")
#: Sentences drawn with their strongest edges, and their length in words.
DRAWN_SENTENCES, DRAWN_WORDS = 3, (6, 12)
#: Sentence pairs per forward pass.
BATCH_SENTENCES = 100
WORD_START = "\u2581"  # sentencepiece's marker of a preceding space
_BYTE_PIECE = re.compile(r"<0x([0-9A-F]{2})>")


@dataclass(frozen=True)
class Alignment:
    """The words of a sentence and the word each of its subword pieces belongs to."""

    words: list[str]
    word_of_piece: list[int]
    glued: int  # pieces overlapping more than one word
    whitespace: int  # pieces of whitespace only
    dropped: int  # spaCy words that own no piece


def piece_spans(pieces: Sequence[str], text: str) -> list[tuple[int, int]]:
    """Character span ``[start, end)`` in ``text`` of each sentencepiece piece.

    The pieces (``▁`` read as a space, ``<0xNN>`` as that byte) must spell ``text``, or
    ``" " + text`` (sentencepiece's dummy prefix, which belongs to no character of the text);
    otherwise ``ValueError``. Byte pieces of one character all span that character.
    """
    raw = [bytes([int(m[1], 16)]) if (m := _BYTE_PIECE.fullmatch(p))
           else p.replace(WORD_START, " ").encode("utf-8") for p in pieces]
    joined = b"".join(raw)
    if joined == b" " + text.encode("utf-8"):
        shift = 1
    elif joined == text.encode("utf-8"):
        shift = 0
    else:
        raise ValueError(f"the pieces do not spell the text {text!r:.60}")
    char_of_byte = [k for k, ch in enumerate(joined.decode("utf-8"))
                    for _ in range(len(ch.encode("utf-8")))]
    spans, pos = [], 0
    for r in raw:
        start, end = char_of_byte[pos] - shift, char_of_byte[pos + len(r) - 1] + 1 - shift
        spans.append((max(start, 0), end))
        pos += len(r)
    return spans


def align(pieces: Sequence[str], text: str, lang: str) -> Alignment:
    """Assign each piece of ``text`` to a word of spaCy's rule-based tokenizer for ``lang``
    (the rules are in the module docstring)."""
    tokens = [t for t in _spacy_tokenizer(lang)(text) if not t.is_space]
    starts = [t.idx for t in tokens]
    ends = [t.idx + len(t.text) for t in tokens]
    owner, glued, whitespace = [], 0, 0
    for start, end in piece_spans(pieces, text):
        while start < end and text[start].isspace():
            start += 1
        hit = [w for w in range(len(tokens)) if starts[w] < end and start < ends[w]]
        if hit:
            owner.append(hit[0])
            glued += len(hit) > 1
        else:  # whitespace only: the word that follows (the last word at the very end)
            owner.append(min(bisect.bisect_left(starts, start), len(tokens) - 1))
            whitespace += 1
    used = sorted(set(owner))
    index = {w: k for k, w in enumerate(used)}
    return Alignment([tokens[w].text for w in used], [index[w] for w in owner], glued,
                     whitespace, len(tokens) - len(used))


def merge_pieces(attn: Tensor, receivers: Sequence[int], senders: Sequence[int]) -> Tensor:
    """Word-level attention ``[..., receiver words, sender words]`` of piece attention
    ``[..., receiver pieces, sender pieces]``: sum over a word's sender pieces, mean over its
    receiver pieces (``receivers`` / ``senders``: the word of each row / column)."""
    r = F.one_hot(torch.as_tensor(receivers)).to(attn.dtype)  # [R, receiver words]
    s = F.one_hot(torch.as_tensor(senders)).to(attn.dtype)  # [S, sender words]
    return (r.T @ (attn @ s)) / r.sum(0)[:, None]


def strongest_senders(word_attn: Tensor) -> Tensor:
    """Each receiver's strongest sender among the other words (``[..., n, n]`` -> ``[..., n]``;
    ties go to the lower index); needs ``n >= 2``."""
    n = word_attn.shape[-1]
    return word_attn.masked_fill(torch.eye(n, dtype=torch.bool), -torch.inf).argmax(-1)


def length_only_choice(word_of_piece: Sequence[int]) -> Tensor:
    """Each receiver's strongest other word under uniform piece attention, as a distribution
    ``[n, n]`` (rows: receivers). Merged by :func:`merge_pieces`, uniform attention gives word
    ``J`` the weight ``pieces(J) / pieces``, so the choice is the other word of most pieces;
    ties split evenly, since a fixed tie rule would favour one position (most words are one
    piece, so ties are the rule)."""
    pieces = torch.bincount(torch.as_tensor(word_of_piece)).double()
    n = len(pieces)
    score = pieces.expand(n, n).masked_fill(torch.eye(n, dtype=torch.bool), -torch.inf)
    top = (score == score.max(-1, keepdim=True).values).double()
    return top / top.sum(-1, keepdim=True)


def distances(strongest: Tensor) -> Tensor:
    """Signed distance ``J - I`` from each receiver ``I`` to its strongest sender ``J``."""
    return strongest - torch.arange(strongest.shape[-1])


def uniform_adjacent_share(lengths: Sequence[int]) -> float:
    """Share of adjacent strongest senders if each receiver picked one of the other words of
    its sentence uniformly at random (expected value, over every receiver of ``lengths``)."""
    expected = 0.0
    for n in lengths:
        i = torch.arange(n)
        expected += float((((i > 0).double() + (i < n - 1).double()) / (n - 1)).sum())
    return expected / sum(lengths)


def row_entropy(p: Tensor) -> Tensor:
    """Entropy in nats of each row (last dimension) of a distribution; ``0 log 0 = 0``."""
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


def head_agreement(strongest: Tensor) -> Tensor:
    """Jaccard index of the (receiver, strongest sender) edge sets of every pair of heads of
    one sentence: ``[heads, n]`` -> ``[heads, heads]``. Each head gives every receiver one
    edge, so two heads that agree on ``k`` of ``n`` receivers score ``k / (2n - k)``."""
    same = (strongest[:, None, :] == strongest[None, :, :]).sum(-1).double()
    return same / (2 * strongest.shape[-1] - same)


def _category(word: str) -> str | None:
    """How an identical word is counted: ``number``, ``capitalised`` or ``other`` (None: no
    letter or digit, e.g. punctuation, which is not counted)."""
    if not any(c.isalnum() for c in word):
        return None
    if any(c.isdigit() for c in word):
        return "number"
    return "capitalised" if word[0].isupper() else "other"


@dataclass
class _Sentence:
    line: int  # of the sentence in its split, from 1
    src_ids: list[int]
    tgt_ids: list[int]
    src: Alignment
    tgt: Alignment


def _prepare(pipeline: TextPipeline, src_texts: list[str], tgt_texts: list[str],
             max_len: int) -> tuple[list[_Sentence], int]:
    """Encoded and aligned pairs, and how many were skipped (empty, fewer than two source
    words, or longer than ``max_len``)."""
    kept, skipped = [], 0
    tok, src_lang, tgt_lang = pipeline.tokenizer, pipeline.src_lang, pipeline.tgt_lang
    for line, (src_text, tgt_text) in enumerate(zip(src_texts, tgt_texts, strict=True), 1):
        src_ids, tgt_ids = pipeline.encode(src_text, src_lang), pipeline.encode(tgt_text, tgt_lang)
        if not 0 < len(src_ids) <= max_len or not 0 < len(tgt_ids) < max_len:
            skipped += 1
            continue
        sent = _Sentence(line, src_ids, tgt_ids,
                         align(tok.pieces(src_text, src_lang), src_text, src_lang),
                         align(tok.pieces(tgt_text, tgt_lang), tgt_text, tgt_lang))
        if len(sent.src.words) < 2:
            skipped += 1
            continue
        kept.append(sent)
    return kept, skipped


def _word_attention(model: GraphTransformer, sents: list[_Sentence]) -> tuple[
        list[Tensor], list[Tensor]]:
    """Per sentence: encoder word attention ``[layers, heads, n, n]`` and head-averaged cross
    word attention ``[layers, 2, target words, source words]``, the second dimension being the
    decoder row that *predicts* a target piece, then the row that *reads* it."""
    enc_words, cross_words = [], []
    for first in range(0, len(sents), BATCH_SENTENCES):
        chunk = sents[first:first + BATCH_SENTENCES]
        out = model.attention_weights([torch.tensor(s.src_ids) for s in chunk],
                                      [torch.tensor([BOS, *s.tgt_ids]) for s in chunk])
        slens = torch.tensor([len(s.src_ids) for s in chunk])
        tlens = slens.new_tensor([len(s.tgt_ids) + 1 for s in chunk])
        enc = torch.stack([dense_attention(out["enc_graph"], w, slens, slens)
                           for w in out["enc"]], 1)  # [B, layers, heads, L, L]
        cross = torch.stack([dense_attention(out["cross_graph"], w.mean(1, keepdim=True),
                                             tlens, slens)[:, 0] for w in out["cross"]], 1)
        for b, s in enumerate(chunk):
            ns, nt = len(s.src_ids), len(s.tgt_ids)
            src_w, tgt_w = s.src.word_of_piece, s.tgt.word_of_piece
            enc_words.append(merge_pieces(enc[b, :, :, :ns, :ns].double(), src_w, src_w))
            rows = cross[b, :, :, :ns].double()  # [layers, T + 1, S]
            cross_words.append(torch.stack([merge_pieces(rows[:, :nt], tgt_w, src_w),
                                            merge_pieces(rows[:, 1:nt + 1], tgt_w, src_w)], 1))
    return enc_words, cross_words


def _histogram(d: Tensor, weight: Tensor | None = None) -> dict[str, float]:
    """Counts of signed distances in :data:`DISTANCE_BINS`; with ``weight`` (one per
    distance), the expected counts: the sum of the weights in each bin."""
    bins = [d < -MAX_DISTANCE, *(d == k for k in range(-MAX_DISTANCE, 0)),
            *(d == k for k in range(1, MAX_DISTANCE + 1)), d > MAX_DISTANCE]
    if weight is None:
        counts = [int(b.sum()) for b in bins]
    else:
        counts = [round(float(weight[b].sum()), 4) for b in bins]
    return dict(zip(DISTANCE_BINS, counts, strict=True))


def encoder_statistics(enc_words: list[Tensor], length_only: list[Tensor]) -> tuple[
        dict, Tensor]:
    """Per head: adjacency share, distance histogram, self-argmax share and entropy, with the
    uniform baselines and the length-only one (``length_only``: each sentence's
    :func:`length_only_choice`); and the mean head-agreement matrix
    ``[layers*heads, layers*heads]``."""
    layers, heads = enc_words[0].shape[:2]
    strongest = [strongest_senders(w) for w in enc_words]
    dist = torch.cat([distances(s) for s in strongest], -1)  # [layers, heads, receivers]
    self_top = torch.cat([(w.argmax(-1) == torch.arange(w.shape[-1])) for w in enc_words], -1)
    entropy = torch.cat([row_entropy(w) for w in enc_words], -1)
    lengths = [w.shape[-1] for w in enc_words]
    agreement = sum(head_agreement(s.reshape(layers * heads, -1))
                    for s in strongest) / len(enc_words)
    # every (receiver, sender) pair's distance, weighted by the length-only choice
    pair_distance = torch.cat([(torch.arange(len(c))[None] - torch.arange(len(c))[:, None])
                               .flatten() for c in length_only])
    pair_weight = torch.cat([c.flatten() for c in length_only])
    per_head = []
    for layer in range(layers):
        for head in range(heads):
            d = dist[layer, head]
            per_head.append({
                "layer": layer + 1, "head": head + 1,
                "adjacent_share": round(float((d.abs() == 1).double().mean()), 4),
                "left_neighbour_share": round(float((d == -1).double().mean()), 4),
                "right_neighbour_share": round(float((d == 1).double().mean()), 4),
                "self_argmax_share": round(float(self_top[layer, head].double().mean()), 4),
                "mean_entropy": round(float(entropy[layer, head].mean()), 4),
                "distance_histogram": _histogram(d),
            })
    stats = {
        "layers": layers, "heads": heads, "sentences": len(enc_words),
        "receiver_words": sum(lengths),
        "sentence_words": lengths,  # each sentence's word count, for baselines per sentence
        "uniform_adjacent_share": round(uniform_adjacent_share(lengths), 4),
        "uniform_entropy": round(sum(n * math.log(n) for n in lengths) / sum(lengths), 4),
        "length_only_adjacent_share": round(
            float(pair_weight[pair_distance.abs() == 1].sum()) / sum(lengths), 4),
        "length_only_distance_histogram": _histogram(pair_distance, pair_weight),
        "per_head": per_head,
    }
    return stats, agreement


def agreement_summary(matrix: Tensor, layers: int, heads: int) -> dict:
    """The head-agreement matrix with labels, and its mean off-diagonal value within a layer
    and across layers."""
    layer = torch.arange(layers * heads) // heads
    same_layer = layer[:, None] == layer[None, :]
    off_diagonal = ~torch.eye(layers * heads, dtype=torch.bool)
    within, across = matrix[same_layer & off_diagonal], matrix[~same_layer]
    return {
        "labels": [f"L{l + 1}H{h + 1}" for l in range(layers) for h in range(heads)],
        "jaccard": [[round(float(v), 4) for v in row] for row in matrix],
        "mean_within_layer": round(float(within.mean()), 4) if len(within) else None,
        "mean_across_layers": round(float(across.mean()), 4) if len(across) else None,
    }


def _hit_table(hits: Tensor, chance: float, length_only: float) -> dict:
    """Counts and shares of identical-word hits ``[candidates, layers, 2]`` per layer, with
    the expected hits of a uniformly random source word (``chance``) and of the length-only
    choice (the source word of most pieces, ties split evenly)."""
    n = len(hits)

    def share(count: float) -> float | None:
        return round(count / n, 4) if n else None

    per_layer = hits.sum(0).tolist()
    return {"candidates": n, "uniform_chance_share": share(chance),
            "length_only_share": share(length_only),
            "per_layer": [{"layer": layer + 1,
                           "hits_predicting": predicting, "share_predicting": share(predicting),
                           "hits_reading": reading, "share_reading": share(reading)}
                          for layer, (predicting, reading) in enumerate(per_layer)]}


def cross_statistics(sents: list[_Sentence], cross_words: list[Tensor]) -> dict:
    """How often a target word that occurs verbatim among the source words attends most (per
    layer, heads averaged) to such an identical source word: overall and by kind of word,
    against a uniformly random source word and the length-only choice (which merged uniform
    attention makes: the source word of most pieces, ties split evenly)."""
    hits: dict[str, list[Tensor]] = {}
    chance: Counter[str] = Counter()
    longest_hits: Counter[str] = Counter()  # expected hits: fractions where words tie
    seen: Counter[str] = Counter()
    for s, words in zip(sents, cross_words, strict=True):
        top = words.argmax(-1)  # [layers, 2, target words]
        pieces = torch.bincount(torch.tensor(s.src.word_of_piece))
        longest = (pieces == pieces.max()).nonzero().flatten()  # tied words share the choice
        for t, word in enumerate(s.tgt.words):
            kind = _category(word)
            same = [k for k, w in enumerate(s.src.words) if w == word]
            if kind is None or not same:
                continue
            seen[word] += 1
            chance[kind] += len(same) / len(s.src.words)
            longest_hits[kind] += float(torch.isin(longest, torch.tensor(same)).double().mean())
            hits.setdefault(kind, []).append(torch.isin(top[:, :, t], torch.tensor(same)))
    stacked = {kind: torch.stack(h).long() for kind, h in sorted(hits.items())}
    layers = cross_words[0].shape[0]
    everything = torch.cat([torch.zeros(0, layers, 2, dtype=torch.long), *stacked.values()])
    return {
        **_hit_table(everything, sum(chance.values()), sum(longest_hits.values())),
        "by_kind": {kind: _hit_table(h, chance[kind], longest_hits[kind])
                    for kind, h in stacked.items()},
        "most_frequent_identical_words": seen.most_common(15),
    }


def _alignment_counts(alignments: list[Alignment]) -> dict:
    pieces = sum(len(a.word_of_piece) for a in alignments)
    glued = sum(a.glued for a in alignments)
    return {"pieces": pieces, "words": sum(len(a.words) for a in alignments),
            "glued_pieces": glued, "glued_share": round(glued / pieces, 5),
            "whitespace_pieces": sum(a.whitespace for a in alignments),
            "dropped_words": sum(a.dropped for a in alignments)}


def select_heads(per_head: list[dict]) -> list[dict]:
    """Up to three distinct heads worth drawing: the most adjacent, the least adjacent, and
    the lowest-entropy one."""
    picks = [max(per_head, key=lambda h: h["adjacent_share"]),
             min(per_head, key=lambda h: h["adjacent_share"]),
             min(per_head, key=lambda h: h["mean_entropy"])]
    return [h for k, h in enumerate(picks) if h not in picks[:k]]


def plot_sentences(sents: list[tuple[list[str], Tensor]], heads: list[dict], path: Path) -> None:
    """Each sentence (words on a line) with every word's strongest edge in each chosen head:
    an arc from the sender to the receiver, darker for a larger word-level weight."""
    fig, axes = plt.subplots(len(sents), len(heads), squeeze=False,
                             figsize=(4.2 * len(heads), 1.9 * len(sents) + 0.4))
    for row, (words, attn) in enumerate(sents):
        n = len(words)
        for col, head in enumerate(heads):
            ax = axes[row, col]
            w = attn[head["layer"] - 1, head["head"] - 1]
            for i, j in enumerate(strongest_senders(w).tolist()):
                arc = FancyArrowPatch((j, 0.15), (i, 0.15), arrowstyle="-|>", mutation_scale=7,
                                      connectionstyle=f"arc3,rad={-0.6 if i > j else 0.6}",
                                      color=f"C{col}", alpha=min(1.0, 0.25 + float(w[i, j])),
                                      linewidth=0.8)
                ax.add_patch(arc)
            for k, word in enumerate(words):
                ax.text(k, 0, word, ha="right", va="top", rotation=35, rotation_mode="anchor",
                        fontsize=7)
            ax.set_xlim(-0.8, n - 0.2)
            ax.set_ylim(-1.5, 0.3 * n + 0.3)
            ax.set_aspect("equal")
            ax.axis("off")
            if row == 0:
                ax.set_title(f"layer {head['layer']} head {head['head']} "
                             f"(adjacent {head['adjacent_share']:.2f})", fontsize=8)
    fig.suptitle("each word's strongest other word: arc from sender to receiver", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_histograms(stats: dict, path: Path) -> None:
    """Distance histograms of the strongest sender, one panel per layer and head."""
    layers, heads = stats["layers"], stats["heads"]
    fig, axes = plt.subplots(layers, heads, squeeze=False, sharex=True, sharey=True,
                             figsize=(2.4 * heads, 1.7 * layers))
    labels = ["<", *DISTANCE_BINS[1:-1], ">"]
    for h in stats["per_head"]:
        ax = axes[h["layer"] - 1, h["head"] - 1]
        counts = list(h["distance_histogram"].values())
        total = sum(counts)
        ax.bar(range(len(counts)), [c / total for c in counts], color="C0")
        ax.set_title(f"L{h['layer']}H{h['head']} adj {h['adjacent_share']:.2f}", fontsize=8)
        ax.set_xticks(range(len(labels)), labels, fontsize=5, rotation=90)
    for ax in axes[:, 0]:
        ax.set_ylabel("share", fontsize=7)
    fig.suptitle("signed distance J - I of each word's strongest other word (adj: share at "
                 f"|J - I| = 1; a uniform choice gives {stats['uniform_adjacent_share']:.2f}, "
                 f"the length-only choice {stats['length_only_adjacent_share']:.2f})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_agreement(summary: dict, path: Path) -> None:
    """The head-agreement (Jaccard) matrix."""
    labels = summary["labels"]
    size = 0.35 * len(labels)
    fig, ax = plt.subplots(figsize=(max(5.0, 2.0 + size), max(4.0, 1.0 + size)))
    image = ax.imshow(summary["jaccard"], vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    fig.colorbar(image, ax=ax, label="Jaccard of strongest edges")
    ax.set_title("agreement between encoder heads", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def study(
    model: GraphTransformer, pipeline: TextPipeline, src_texts: list[str],
    tgt_texts: list[str], out_dir: Path, parses: dict[str, Parse] | None = None,
) -> dict:
    """Every number of the study on these sentence pairs, with the figures written to
    ``out_dir``; with ``parses`` (dependency parses of the source words by sentence id, see
    :func:`sentence_id`), the encoder heads scored against their arcs too."""
    if not isinstance(pipeline.tokenizer, SubwordTokenizer):
        raise ValueError("the syntax study merges subword pieces: this model reads words")
    sents, skipped = _prepare(pipeline, src_texts, tgt_texts, model.cfg.max_len)
    if not sents:
        raise ValueError("no usable sentence pair to study")
    enc_words, cross_words = _word_attention(model, sents)
    # the null model of the merge rule: uniform piece attention favours the longest word
    length_only = [length_only_choice(s.src.word_of_piece) for s in sents]
    stats, agreement = encoder_statistics(enc_words, length_only)
    summary = agreement_summary(agreement, stats["layers"], stats["heads"])
    heads = select_heads(stats["per_head"])
    low, high = DRAWN_WORDS
    drawn = [(s.src.words, w) for s, w in zip(sents, enc_words, strict=True)
             if low <= len(s.src.words) <= high][:DRAWN_SENTENCES]
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {"sentences": "syntax_sentences.png", "histograms": "syntax_distances.png",
               "agreement": "syntax_agreement.png"}
    if drawn:
        plot_sentences(drawn, heads, out_dir / figures["sentences"])
    else:
        del figures["sentences"]
    plot_histograms(stats, out_dir / figures["histograms"])
    plot_agreement(summary, out_dir / figures["agreement"])
    return {
        "rule": {
            "word_attention": RULE,
            "words": "spaCy rule-based tokenizer (spacy.blank) on the corpus-form text",
            "piece_to_word": "a piece belongs to the word its characters overlap, the word "
                             "where it starts if it overlaps several (glued); whitespace-only "
                             "pieces belong to the next word; words left without a piece are "
                             "dropped",
            "strongest_sender": "argmax of the word-level row over the other words (self "
                                "excluded), ties to the lower index",
            "length_only": "uniform piece attention merged by the same rule: each "
                           "word's other word of most pieces, ties split evenly (expected "
                           "values)",
            "cross_rows": "predicting: the decoder row whose output is the target piece "
                          "(input BOS + y, row t predicts y_t); reading: the row whose input "
                          "is that piece (row t + 1)",
        },
        "sentences": len(sents), "skipped": skipped,
        "alignment": {"source": _alignment_counts([s.src for s in sents]),
                      "target": _alignment_counts([s.tgt for s in sents])},
        "encoder": stats,
        "agreement": summary,
        "drawn": {"heads": [f"L{h['layer']}H{h['head']}" for h in heads],
                  "sentences": [" ".join(words) for words, _ in drawn]},
        # word-level encoder attention of every layer and head on the first drawn sentence,
        # for lesson 08's per-head maps (rows: receivers, columns: senders)
        "example": ({"words": drawn[0][0],
                     "attention": [[[[round(float(a), 4) for a in row] for row in head]
                                    for head in layer] for layer in drawn[0][1]]}
                    if drawn else None),
        "cross": cross_statistics(sents, cross_words),
        "figures": figures,
        **({} if parses is None else {"dependency_arcs": arc_scores(
            [_parse_of(s, parses) for s in sents], [strongest_senders(w) for w in enc_words])}),
    }


def sentence_id(sent: _Sentence) -> str:
    """The id a sentence has in the CoNLL-U files of ``--words`` and ``--parses``."""
    return f"val-{sent.line}"


def _parse_of(sent: _Sentence, parses: dict[str, Parse]) -> Parse:
    """The parse of a studied sentence, which must have the study's words."""
    key = sentence_id(sent)
    if key not in parses:
        raise ValueError(f"the parses have no sentence {key}: parse the file that --words "
                         "writes")
    forms = [form for form, _, _ in parses[key]]
    if forms != sent.src.words:
        raise ValueError(f"sentence {key}: the parse's words {forms} are not the study's "
                         f"{sent.src.words}: parse with the words given (pretokenised)")
    return parses[key]


def studied_words(final: Path, root: Path | None, sentences: int) -> dict[str, list[str]]:
    """The source words of the sentences the study reads, by sentence id, for a parser."""
    translator = Translator.from_checkpoint(final)
    pipeline = translator.pipeline
    root = Path(translator.config.data.root) if root is None else root
    src_texts, tgt_texts = pipeline.read(root, "val")
    sents, _ = _prepare(pipeline, src_texts[:sentences], tgt_texts[:sentences],
                        translator.model.cfg.max_len)
    return {sentence_id(s): s.src.words for s in sents}


def run(final: Path, root: Path | None, out_dir: Path, sentences: int = 500,
        parses: Path | None = None) -> dict:
    """The study on the first ``sentences`` validation pairs of the checkpoint ``final``
    (data under ``root``; None: the checkpoint's ``data.root``), scored against the
    dependency arcs of the CoNLL-U file ``parses`` if given; writes
    ``out_dir/syntax_study.json`` and the figures, and returns the record."""
    started = time.time()
    translator = Translator.from_checkpoint(final)
    model, pipeline, run_cfg = translator.model, translator.pipeline, translator.config
    root = Path(run_cfg.data.root) if root is None else root
    src_texts, tgt_texts = pipeline.read(root, "val")
    with torch.no_grad():
        record = study(model, pipeline, src_texts[:sentences], tgt_texts[:sentences], out_dir,
                       None if parses is None else read_parses(parses))
    record = {"checkpoint": str(final), "root": str(root), "split": "val",
              "sentences_asked": sentences, **record,
              "seconds": round(time.time() - started, 1), "threads": torch.get_num_threads()}
    write_json(out_dir / "syntax_study.json", record)
    return record


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = checkpoint_parser("python -m repro.syntax_study", __doc__, "output folder")
    parser.add_argument("--sentences", type=int, default=500)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--words", type=Path, metavar="CONLLU",
                      help="only write the studied source words, for a dependency parser")
    what.add_argument("--parses", type=Path, metavar="CONLLU",
                      help="also score the heads against these parses of --words' file")
    args = parser.parse_args(argv)

    def call() -> str:
        if args.sentences < 1:
            raise ValueError(f"--sentences must be >= 1, got {args.sentences}")
        if args.words:
            words = studied_words(args.checkpoint, args.root, args.sentences)
            write_words(words, args.words)
            return f"wrote {args.words} ({len(words)} sentences): parse it, keeping its words"
        result = run(args.checkpoint, args.root, args.out, args.sentences, args.parses)
        return (f"wrote {args.out / 'syntax_study.json'} ({result['sentences']} sentences, "
                f"{result['seconds']:.0f} s)")

    return exit_status(call)


if __name__ == "__main__":
    sys.exit(main())
