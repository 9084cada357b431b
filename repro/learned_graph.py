"""The "syntax-like" encoder graph a trained complete-graph model suggests, frozen to a file.

    python -m repro.learned_graph --checkpoint runs/experiments/graph_complete/final.pt \\
        --out runs/experiments/learned_graph_w4.pt [--window 4] [--root DATA_ROOT]

Rule: the teacher's encoder attention, averaged over all layers and heads (subword pieces, no
merging into words); each token keeps its self-loop and its ``d - 1`` strongest other senders,
where ``d = min(i + W, L - 1) - max(i - W, 0) + 1`` is its in-degree in the window-``W``
graph, so the learned graph has exactly the edge count of ``window:W`` and ``random:W`` (ties
go to the lower sender index). Every sentence of train, val and test_2016_flickr is covered,
encoded with the teacher's pipeline. The file (read by
:class:`dgl_transformer.nn.graphs.LearnedGraph`) is ``torch.save`` of::

    {"format": "dgl-transformer-learned-graph/1", "window": W, "teacher": "<checkpoint>",
     "rule": "<one line>", "edges": {source ids (tuple of int): LongTensor [2, E]}}

with local ``(src, dst)`` node indices, ``src -> dst`` meaning token ``dst`` hears ``src``,
sorted by destination, then source.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import dgl
import torch
from torch import Tensor

from dgl_transformer.mt.checkpoint import CheckpointError
from dgl_transformer.mt.data import available_test_sets
from dgl_transformer.mt.generate import Translator
from dgl_transformer.nn import graphs
from dgl_transformer.nn.graphs import LEARNED_GRAPH_FORMAT
from dgl_transformer.nn.hooks import observe_attention
from dgl_transformer.nn.model import GraphTransformer

from .cli import checkpoint_parser, exit_status, replacing

RULE = ("teacher encoder attention averaged over layers and heads (subword level); each token "
        "keeps its self-loop and its d-1 strongest other senders, d = its in-degree in the "
        "window-W graph; ties to the lower sender index")
#: Sentences per teacher forward pass.
BATCH_SENTENCES = 200


def dense_attention(
    graph: dgl.DGLGraph, weights: Tensor, dst_lens: Tensor, src_lens: Tensor
) -> Tensor:
    """Edge weights ``[edges, heads]`` of a batch's graph as padded per-sentence matrices
    ``[sentences, heads, receivers, senders]`` (zero where there is no edge). Edges between
    token nodes only: a hierarchy graph's span nodes (numbered after the tokens) are left out."""
    src, dst = (e.cpu() for e in graph.edges())
    tokens = (src < int(src_lens.sum())) & (dst < int(dst_lens.sum()))
    src, dst, weights = src[tokens], dst[tokens], weights.cpu()[tokens]
    sentence = graphs.sentence_ids(dst_lens)[dst]
    i = dst - graphs.offsets(dst_lens)[sentence]
    j = src - graphs.offsets(src_lens)[sentence]
    out = weights.new_zeros(len(dst_lens), int(dst_lens.max()), int(src_lens.max()),
                            weights.shape[1])
    out[sentence, i, j] = weights
    return out.permute(0, 3, 1, 2)


def window_degrees(lengths: Tensor, window: int) -> Tensor:
    """In-degree ``[sentences, max length]`` of each token in the window-``window`` graph of
    sentences of ``lengths`` tokens (padding positions: meaningless)."""
    i = torch.arange(int(lengths.max()))
    last = lengths[:, None] - 1
    return torch.minimum(i + window, last) - torch.clamp(i - window, min=0) + 1


def random_within_window_share(lengths: Tensor, window: int) -> float | None:
    """Expected share of the edges between two different tokens that lie inside the window
    when the same in-degrees are wired at random (:func:`graphs.random_graph`): a token of a
    sentence of ``n`` tokens draws its ``d - 1`` others uniformly among ``n - 1``, and
    ``d - 1`` of those are inside its window. None when no token has another."""
    others = (window_degrees(lengths, window) - 1).double()
    real = torch.arange(others.shape[1]) < lengths[:, None]
    inside = others**2 / (lengths[:, None] - 1).clamp(min=1)
    total = float(others[real].sum())
    return float(inside[real].sum()) / total if total else None


def _round(share: float | None) -> float | None:
    return None if share is None else round(share, 4)


def select_edges(scores: Tensor, lengths: Sequence[int], window: int) -> list[Tensor]:
    """Local edges ``[2, E]`` (``src``, ``dst``) of each sentence, kept from padded score
    matrices ``[sentences, L, L]`` (row: receiver, column: sender): each receiver's self-loop
    and its strongest other senders, as many as its in-degree in the window graph; ties to the
    lower sender index; sorted by destination, then source."""
    lens = torch.as_tensor(lengths, dtype=torch.int64)
    i = torch.arange(scores.shape[-1])
    real = i < lens[:, None]  # [sentences, L]
    key = scores.double().masked_fill(~real[:, None, :], -torch.inf)
    key[:, i, i] = torch.inf  # self first
    rank = torch.sort(key, dim=-1, descending=True, stable=True).indices.argsort(-1)
    keep = (rank < window_degrees(lens, window)[:, :, None]) & real[:, :, None]
    _, dst, src = keep.nonzero(as_tuple=True)  # row-major: by sentence, destination, source
    counts = keep.sum((1, 2)).tolist()
    return [torch.stack(pair) for pair in zip(src.split(counts), dst.split(counts), strict=True)]


@torch.no_grad()
def learned_edges(
    model: GraphTransformer, sources: Iterable[Sequence[int]], window: int
) -> dict[tuple[int, ...], Tensor]:
    """The learned graph of every distinct non-empty source (ids without BOS/EOS), keyed by
    the tuple of its ids."""
    unique = sorted({tuple(int(i) for i in s) for s in sources if len(s)}, key=len)
    edges = {}
    for first in range(0, len(unique), BATCH_SENTENCES):
        chunk = unique[first:first + BATCH_SENTENCES]
        batch = model.as_batch([torch.tensor(s) for s in chunk])
        with observe_attention(model) as events:
            model.encode(batch)
        mean = torch.stack([e.weights for e in events]).mean(dim=(0, 2))[:, None]  # [edges, 1]
        dense = dense_attention(batch.enc_graph, mean, batch.src_lens, batch.src_lens)[:, 0]
        edges.update(zip(chunk, select_edges(dense, batch.src_lens, window), strict=True))
    return edges


def write(
    final: Path, root: Path | None, out: Path, window: int = 4,
    limits: Mapping[str, int] | None = None,
) -> dict:
    """Write the learned graph of the teacher ``final`` over every sentence a student reads:
    train, val and every available test set (data under ``root``; None: the teacher's
    ``data.root``), the first ``limits[split]`` sentences only where a limit is given (a
    student's ``data.train_limit``, ``data.val_limit``), each cut to the model's ``max_len``
    as decoding cuts it; to ``out`` (atomically). Returns a summary."""
    started = time.time()
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    translator = Translator.from_checkpoint(final)
    model, pipeline, run_cfg = translator.model, translator.pipeline, translator.config
    if model.cfg.encoder_graph != "complete" or model.cfg.enc_aggregator != "attention":
        raise CheckpointError(f"{final}: the teacher must attend over the complete encoder "
                              f"graph, not {model.cfg.encoder_graph!r} "
                              f"({model.cfg.enc_aggregator})")
    root = Path(run_cfg.data.root) if root is None else root
    splits = ["train", "val", *available_test_sets(root, pipeline.src_lang, pipeline.tgt_lang)]
    limits = limits or {}
    sources = [pipeline.encode(text, pipeline.src_lang)[:model.cfg.max_len] for split in splits
               for text in pipeline.read(root, split)[0][:limits.get(split) or None]]
    edges = learned_edges(model, sources, window)
    with replacing(out) as tmp:
        torch.save({"format": LEARNED_GRAPH_FORMAT, "window": window, "teacher": str(final),
                    "rule": RULE, "edges": edges}, tmp)
    kept = torch.cat(list(edges.values()), 1)
    distance = (kept[0] - kept[1]).abs()
    others = distance[distance > 0]
    return {
        "out": str(out), "teacher": str(final), "window": window, "splits": splits,
        "sentences": len(edges), "edges": kept.shape[1],
        "mean_edges_per_sentence": round(kept.shape[1] / len(edges), 2),
        "within_window_share": round(float((distance <= window).double().mean()), 4),
        "within_window_share_non_self": _round(float((others <= window).double().mean())
                                               if len(others) else None),
        "random_within_window_share_non_self": _round(random_within_window_share(
            torch.tensor([len(sentence) for sentence in edges]), window)),
        "seconds": round(time.time() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = checkpoint_parser("python -m repro.learned_graph", __doc__, "graph file to write")
    parser.add_argument("--window", type=int, default=4)
    args = parser.parse_args(argv)
    return exit_status(lambda: json.dumps(write(args.checkpoint, args.root, args.out,
                                                args.window)))


if __name__ == "__main__":
    sys.exit(main())
