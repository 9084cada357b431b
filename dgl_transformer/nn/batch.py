"""One packed, padding-free batch that travels from collate to loss and to decoding.

:class:`PackedBatch` is built once per batch (by :meth:`PackedBatch.collate`, in the spirit of
PyG's ``Batch``) and holds everything the network reads: the packed token ids of both sides,
their lengths, offsets and positions, the teacher-forcing input and gold output, and the three
attention graphs. Nothing downstream rebuilds a graph.

Teacher forcing is where a target of ``n`` tokens becomes ``n + 1`` decoder positions: the
decoder reads ``[BOS] + y`` and must predict ``y + [EOS]``. :meth:`PackedBatch.decoder_length`
states that rule for code that sizes batches before collating them (:meth:`pair_lengths`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import dgl
import torch
from torch import Tensor

from ..tokens import BOS, EOS
from . import graphs
from .graphs import GraphBuilder


def check_sequences(seqs: Sequence[Tensor], name: str) -> None:
    """Raise a one-line ``ValueError`` unless ``seqs`` is a non-empty list of 1-D, non-empty
    integer tensors (the structure every batch needs; vocabulary and length limits are the
    model's to check)."""
    if isinstance(seqs, Tensor) or not isinstance(seqs, Sequence):
        raise ValueError(f"{name} must be a list of 1-D LongTensors, got {type(seqs).__name__}")
    if len(seqs) == 0:
        raise ValueError(f"{name} is an empty batch: give at least one sequence")
    for i, s in enumerate(seqs):
        if not isinstance(s, Tensor) or s.dim() != 1 or s.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{name}[{i}] must be a 1-D integer tensor, got {s!r:.60}")
        if s.numel() == 0:
            raise ValueError(f"{name}[{i}] is an empty sequence: every sequence needs >= 1 token")


def _with_formats(graph: dgl.DGLGraph) -> dgl.DGLGraph:
    """``graph`` with its COO, CSR and CSC formats built now, once per batch. DGL builds a
    missing format on the graph object that needs it, and the backward runs on reverse graphs
    (new objects each call) that share only the formats the original already has: without
    this, every layer's backward would rebuild the CSR. Measured: 0.96-0.99x the attention time
    of a training step (graphs built, all layers, forward and backward)."""
    graph.create_formats_()
    return graph


class DecoderInput(NamedTuple):
    """What one decoder pass reads: token ids, their positions, and the two graphs.

    For teacher forcing it comes from a :class:`PackedBatch`; for incremental decoding the
    cache builds one per step, with a self-attention graph from cached rows to the new tokens.
    """

    tokens: Tensor
    positions: Tensor
    self_graph: dgl.DGLGraph
    cross_graph: dgl.DGLGraph


@dataclass
class PackedBatch:
    """A batch of sentence pairs packed node after node (sentence ``b`` owns the rows
    ``offsets[b] : offsets[b] + lengths[b]`` of every node tensor), with its three graphs.

    Built by :meth:`collate`; the target side is absent (``None``) for a batch of sources only,
    as decoding starts from one. ``encoder_graph`` is the builder of the encoder's graph;
    ``None`` builds no graphs at all (the padded dense model needs none).
    """

    src: Tensor  # [S] source ids
    src_lens: Tensor  # [B]
    src_pos: Tensor  # [S] position of each source token in its sentence
    enc_graph: dgl.DGLGraph | None  # encoder self-attention (complete by default; a
    # hierarchy graph also has span nodes, numbered after the tokens)
    tgt_in: Tensor | None = None  # [T] decoder inputs: BOS + y per sentence
    tgt_lens: Tensor | None = None  # [B] decoder lengths: len(y) + 1
    tgt_pos: Tensor | None = None  # [T]
    gold: Tensor | None = None  # [T] expected outputs: y + EOS (None if built from tgt_in)
    dec_graph: dgl.DGLGraph | None = None  # causal decoder self-attention
    cross_graph: dgl.DGLGraph | None = None  # bipartite: source of pair b -> target of pair b
    encoder_graph: GraphBuilder | None = graphs.complete_graph  # the builder of enc_graph

    @staticmethod
    def decoder_length(target_length: int) -> int:
        """Decoder positions of a target of ``target_length`` tokens (BOS + y, or y + EOS)."""
        return target_length + 1

    @classmethod
    def pair_lengths(
        cls, src: Sequence[Tensor], tgt: Sequence[Tensor]
    ) -> tuple[list[int], list[int]]:
        """Token-budget lengths of sentence pairs: source tokens, decoder positions."""
        return [len(s) for s in src], [cls.decoder_length(len(t)) for t in tgt]

    @classmethod
    def collate(
        cls,
        src: Sequence[Tensor],
        tgt: Sequence[Tensor] | None = None,
        *,
        encoder_graph: GraphBuilder | None = graphs.complete_graph,
    ) -> PackedBatch:
        """Pack sources and (optionally) targets given WITHOUT BOS/EOS; build the graphs and
        their sparse formats."""
        if tgt is None:
            return cls._pack(src, None, None, encoder_graph)
        check_sequences(tgt, "tgt")
        bos, eos = torch.tensor([BOS]), torch.tensor([EOS])
        tgt_in = [torch.cat([bos, t.to(torch.int64)]) for t in tgt]
        gold = torch.cat([torch.cat([t.to(torch.int64), eos]) for t in tgt])
        return cls._pack(src, tgt_in, gold, encoder_graph)

    @classmethod
    def from_decoder_inputs(
        cls,
        src: Sequence[Tensor],
        tgt_in: Sequence[Tensor],
        *,
        encoder_graph: GraphBuilder | None = graphs.complete_graph,
    ) -> PackedBatch:
        """Pack sources and decoder inputs given as is (BOS included); there is no gold."""
        return cls._pack(src, tgt_in, None, encoder_graph)

    @classmethod
    def _pack(
        cls,
        src: Sequence[Tensor],
        tgt_in: Sequence[Tensor] | None,
        gold: Tensor | None,
        encoder_graph: GraphBuilder | None,
    ) -> PackedBatch:
        check_sequences(src, "src")
        src_lens = graphs.as_lengths([len(s) for s in src])
        src_ids = torch.cat([s.to(torch.int64).cpu() for s in src])
        enc_graph = None
        if encoder_graph is not None:  # a builder that reads tokens (LearnedGraph) gets them
            reads = getattr(encoder_graph, "reads_tokens", False)
            enc_graph = _with_formats(encoder_graph(src_lens, tokens=src_ids) if reads
                                      else encoder_graph(src_lens))
        batch = cls(
            src=src_ids,
            src_lens=src_lens,
            src_pos=graphs.positions(src_lens),
            enc_graph=enc_graph,
            encoder_graph=encoder_graph,
        )
        if tgt_in is None:
            return batch
        check_sequences(tgt_in, "tgt_in")
        if len(src) != len(tgt_in):
            raise ValueError(f"src has {len(src)} sequences but tgt_in has {len(tgt_in)}")
        tgt_lens = graphs.as_lengths([len(t) for t in tgt_in])
        with_graphs = encoder_graph is not None
        return replace(
            batch,
            tgt_in=torch.cat([t.to(torch.int64).cpu() for t in tgt_in]),
            tgt_lens=tgt_lens,
            tgt_pos=graphs.positions(tgt_lens),
            gold=None if gold is None else gold.cpu(),
            dec_graph=_with_formats(graphs.causal_graph(tgt_lens)) if with_graphs else None,
            cross_graph=(_with_formats(graphs.cross_graph(src_lens, tgt_lens)) if with_graphs
                         else None),
        )

    # -- views ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.src_lens)

    @property
    def has_target(self) -> bool:
        return self.tgt_in is not None

    @property
    def src_offsets(self) -> Tensor:
        return graphs.offsets(self.src_lens)

    @property
    def tgt_offsets(self) -> Tensor:
        return graphs.offsets(self._target("tgt_offsets")[1])

    @property
    def num_target_tokens(self) -> int:
        """Decoder positions in the batch: the number of predicted tokens."""
        return int(self._target("num_target_tokens")[1].sum())

    @property
    def num_nodes(self) -> int:
        """Source plus decoder tokens: the batch's size in the token budget."""
        return len(self.src) + (self.num_target_tokens if self.has_target else 0)

    @property
    def decoder_input(self) -> DecoderInput:
        """The decoder's view of the batch (teacher forcing)."""
        tgt_in, _ = self._target("decoder_input")
        return DecoderInput(tgt_in, self.tgt_pos, self.dec_graph, self.cross_graph)

    def sources(self) -> list[Tensor]:
        """The source sentences, unpacked."""
        return list(self.src.split(self.src_lens.tolist()))

    def decoder_inputs(self) -> list[Tensor]:
        """The decoder inputs (BOS + y), unpacked."""
        tgt_in, lens = self._target("decoder_inputs")
        return list(tgt_in.split(lens.tolist()))

    def _target(self, what: str) -> tuple[Tensor, Tensor]:
        if self.tgt_in is None or self.tgt_lens is None:
            raise ValueError(f"PackedBatch.{what}: this batch holds sources only")
        return self.tgt_in, self.tgt_lens

    def to(self, device: torch.device | str) -> PackedBatch:
        """A copy on ``device`` (token tensors and graphs; lengths stay on the CPU)."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_lens") or f.name == "encoder_graph" or value is None:
                continue
            moved[f.name] = value.to(device)
        return replace(self, **moved)
