"""The model's hyper-parameters, in one dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .graphs import parse_encoder_graph

#: How a token combines its neighbours: softmax attention, or the plain mean of their messages.
AGGREGATORS = ("attention", "mean")


@dataclass
class TransformerConfig:
    """Shape of an encoder-decoder Transformer.

    ``max_len`` bounds every sequence (source, or decoder input) and sizes the sinusoidal
    position table. ``share_embeddings`` ties the source embedding, the target embedding and
    the output projection into one matrix, which needs one joint vocabulary
    (``src_vocab == tgt_vocab``). ``dropout`` applies to the embeddings and to every
    sublayer's output; ``attn_dropout`` to the attention weights; ``activation_dropout`` after
    the FFN's ReLU (``None``: the same as ``dropout``), as fairseq names them.

    Variants for the essay's questions: ``encoder_graph`` names the encoder's graph
    (``"complete"``, ``"window:4"``, ``"window_global:4:1"``, ``"random:4"``,
    ``"hierarchy:2"``, or ``"learned:4"`` with its ``graph_file``; see
    :func:`~dgl_transformer.nn.graphs.encoder_graph_builder`); ``norm_first=False`` is the
    original post-LayerNorm Transformer (no final LayerNorms); ``enc_aggregator`` /
    ``dec_aggregator`` = ``"mean"`` replaces encoder / decoder self-attention by a plain GNN
    aggregator on the same graph, the mean of the neighbours' learned linear messages (the
    value projection), as in GraphSAGE; ``scale_scores=False`` drops the ``1/sqrt(d_k)`` of
    the attention scores.
    """

    src_vocab: int
    tgt_vocab: int
    d_model: int = 256
    n_heads: int = 4
    d_ff: int = 1024
    n_enc_layers: int = 3
    n_dec_layers: int = 3
    dropout: float = 0.1
    attn_dropout: float = 0.0
    activation_dropout: float | None = None
    max_len: int = 256
    share_embeddings: bool = False
    encoder_graph: str = "complete"
    graph_file: str = ""
    norm_first: bool = True
    scale_scores: bool = True
    enc_aggregator: str = "attention"
    dec_aggregator: str = "attention"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            want = {"int": int, "float": (int, float), "bool": bool, "str": str,
                    "float | None": (int, float, type(None))}[str(f.type)]
            if isinstance(value, bool) and f.type != "bool" or not isinstance(value, want):
                raise ValueError(f"TransformerConfig.{f.name} must be {f.type}, got {value!r}")
        positive = ["src_vocab", "tgt_vocab", "d_model", "n_heads", "d_ff", "max_len"]
        for name in positive:
            if getattr(self, name) < 1:
                value = getattr(self, name)
                raise ValueError(f"TransformerConfig.{name} must be >= 1, got {value}")
        for name in ("n_enc_layers", "n_dec_layers"):
            if getattr(self, name) < 0:
                raise ValueError(f"TransformerConfig.{name} must be >= 0")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"TransformerConfig: d_model={self.d_model} is not divisible by "
                f"n_heads={self.n_heads}"
            )
        for name in ("dropout", "attn_dropout", "activation_dropout"):
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"TransformerConfig.{name} must be in [0, 1)")
        parse_encoder_graph(self.encoder_graph, self.graph_file)  # one-line ValueError if bad
        for name in ("enc_aggregator", "dec_aggregator"):
            if getattr(self, name) not in AGGREGATORS:
                raise ValueError(f"TransformerConfig.{name} must be one of "
                                 f"{', '.join(AGGREGATORS)}, got {getattr(self, name)!r}")
        if self.share_embeddings and self.src_vocab != self.tgt_vocab:
            raise ValueError(
                "TransformerConfig.share_embeddings needs one joint vocabulary: "
                f"src_vocab={self.src_vocab} != tgt_vocab={self.tgt_vocab}"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransformerConfig:
        """Build from a plain dict, naming any key the config does not have."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ValueError(f"unknown model config key {key!r} (known: {sorted(known)})")
        return cls(**values)
