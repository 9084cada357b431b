"""Text pipeline: a joint sentencepiece subword model and the two text variants.

Variants (``TextPipeline.variant``):

``raw``
    Cased raw text, fed to the subword model as is; ``decode(encode(s)) == s`` (checked on
    every training sentence), except that whitespace-only text encodes to ``[]`` and the
    character U+2581 (sentencepiece's word marker) decodes to a space.
``lc_tok``
    The official lowercased, punctuation-normalised, Moses-tokenised (and escaped) files.
    Plain input is brought into that form with :func:`preprocess`; model output is turned
    back into plain (lowercased) text with :func:`postprocess`.

The subword model is BPE: training is deterministic and takes well under a second on the
58k Multi30k training sentences, and we do not use the unigram model's subword sampling. It
keeps text byte-exact (no normalisation, whitespace kept) and falls back to UTF-8 byte pieces
for characters never seen in training, so no input maps to ``<unk>`` or fails.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import sentencepiece as spm
from sacremoses import MosesDetokenizer, MosesPunctNormalizer, MosesTokenizer

from ..tokens import BOS, EOS, NUM_SPECIALS, PAD, SPECIALS, UNK
from .data import DataError, read_parallel

VARIANTS = ("raw", "lc_tok")
#: Which data-file variant (see :mod:`dgl_transformer.mt.data`) each text variant reads.
FILE_VARIANT = {"raw": "raw", "lc_tok": "tok"}
#: Moses' XML escapes: whole pieces of the lc_tok subword model, so output never has half a one.
MOSES_ESCAPES = ("&amp;", "&#124;", "&lt;", "&gt;", "&apos;", "&quot;", "&#91;", "&#93;")


@cache
def _moses(lang: str) -> tuple[MosesPunctNormalizer, MosesTokenizer, MosesDetokenizer]:
    return MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang), MosesDetokenizer(lang=lang)


def preprocess(text: str, lang: str) -> str:
    """Plain text to the official ``lc.norm.tok`` form: lowercase, normalise, tokenise, escape.

    Mirrors upstream's ``lowercase.perl | normalize-punctuation.perl | tokenizer.perl``
    (Moses snapshot 3a0631a) with sacremoses.
    """
    normalizer, tokenizer, _ = _moses(lang)
    return tokenizer.tokenize(normalizer.normalize(text.lower()), escape=True, return_str=True)


def postprocess(text: str, lang: str) -> str:
    """Tokenised, escaped text back to plain text (detokenise, unescape; stays lowercased)."""
    return _moses(lang)[2].detokenize(text.split(), unescape=True)


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise DataError(f"unknown text variant '{variant}' (known: {', '.join(VARIANTS)})")


class SubwordTokenizer:
    """A sentencepiece model whose first ids are the project's specials (PAD, BOS, EOS, UNK)."""

    def __init__(self, proto: bytes) -> None:
        self._proto = bytes(proto)
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._proto)
        except RuntimeError:
            raise DataError("not a serialized sentencepiece model") from None
        ids = (self._sp.pad_id(), self._sp.bos_id(), self._sp.eos_id(), self._sp.unk_id())
        pieces = tuple(self._sp.id_to_piece(i) for i in range(min(NUM_SPECIALS, len(self))))
        if ids != (PAD, BOS, EOS, UNK) or pieces != SPECIALS:
            raise DataError(f"sentencepiece model's special ids {ids} do not match tokens.py")

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, *, model_type: str = "bpe",
        user_symbols: Sequence[str] = (),
    ) -> SubwordTokenizer:
        """Train in memory on ``texts`` (training data only); deterministic for the same input.

        ``user_symbols`` are strings always kept as one piece.
        """
        writer = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(texts), model_writer=writer, vocab_size=vocab_size,
                model_type=model_type, pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=UNK,
                normalization_rule_name="identity", remove_extra_whitespaces=False,
                byte_fallback=True, character_coverage=1.0, num_threads=1, minloglevel=2,
                user_defined_symbols=list(user_symbols),
            )
        except RuntimeError as err:
            message = str(err).strip().splitlines()[-1]
            raise DataError(f"sentencepiece training failed: {message}") from None
        return cls(writer.getvalue())

    @classmethod
    def from_bytes(cls, proto: bytes) -> SubwordTokenizer:
        """Load from :meth:`to_bytes` output (e.g. stored in a checkpoint)."""
        return cls(proto)

    def to_bytes(self) -> bytes:
        """The serialized model proto."""
        return self._proto

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the model proto: equal fingerprints mean identical vocabularies."""
        return hashlib.sha256(self._proto).hexdigest()

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials and byte pieces included."""
        return self._sp.get_piece_size()

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> list[int]:
        """Piece ids of ``text``, without BOS/EOS; empty or whitespace-only text gives []."""
        return self._sp.encode(text) if text.strip() else []

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special ids (PAD, BOS, EOS, UNK) are skipped."""
        return self._sp.decode([int(i) for i in ids if int(i) >= NUM_SPECIALS])

    def pieces(self, text: str) -> list[str]:
        """The pieces of ``text``, for display."""
        return [self._sp.id_to_piece(i) for i in self.encode(text)]


class TextPipeline:
    """Everything between plain text and ids for one language pair and one text variant.

    *Corpus form* is how the variant's data files store text (raw: as is; lc_tok: tokenised).
    Training and scoring work in corpus form (:meth:`read`, :meth:`encode`,
    :meth:`decode_tgt`); :meth:`encode_src` and ``decode_tgt(..., plain=True)`` take and
    give plain text for translating new input.
    """

    def __init__(
        self, variant: str, src_lang: str, tgt_lang: str, tokenizer: SubwordTokenizer
    ) -> None:
        _check_variant(variant)
        self.variant, self.src_lang, self.tgt_lang = variant, src_lang, tgt_lang
        self.tokenizer = tokenizer

    @classmethod
    def train(
        cls, root: Path, variant: str, src_lang: str, tgt_lang: str, vocab_size: int
    ) -> TextPipeline:
        """Train the joint subword model on the training split of both languages."""
        _check_variant(variant)
        src, tgt = read_parallel(root, "train", src_lang, tgt_lang, FILE_VARIANT[variant])
        symbols = MOSES_ESCAPES if variant == "lc_tok" else ()
        tokenizer = SubwordTokenizer.train(src + tgt, vocab_size, user_symbols=symbols)
        return cls(variant, src_lang, tgt_lang, tokenizer)

    def read(self, root: Path, split: str) -> tuple[list[str], list[str]]:
        """Source and target lines of ``split`` in corpus form."""
        return read_parallel(root, split, self.src_lang, self.tgt_lang, FILE_VARIANT[self.variant])

    def encode(self, text: str) -> list[int]:
        """Ids of corpus-form text (either language), without BOS/EOS."""
        return self.tokenizer.encode(text)

    def encode_src(self, text: str) -> list[int]:
        """Ids of a plain source sentence, as typed by a user (without BOS/EOS)."""
        if self.variant == "lc_tok":
            text = preprocess(text, self.src_lang)
        return self.tokenizer.encode(text)

    def decode_tgt(self, ids: Sequence[int], *, plain: bool = False) -> str:
        """Target text of ``ids``: corpus form (for scoring), or plain text if ``plain``."""
        text = self.tokenizer.decode(ids)
        return postprocess(text, self.tgt_lang) if plain and self.variant == "lc_tok" else text

    def to_state(self) -> dict[str, Any]:
        """A picklable description for checkpoints (includes the subword model)."""
        return {
            "variant": self.variant, "src_lang": self.src_lang, "tgt_lang": self.tgt_lang,
            "tokenizer": self.tokenizer.to_bytes(), "fingerprint": self.tokenizer.fingerprint,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TextPipeline:
        """Rebuild from :meth:`to_state`, checking the subword model's fingerprint."""
        tokenizer = SubwordTokenizer.from_bytes(state["tokenizer"])
        if tokenizer.fingerprint != state["fingerprint"]:
            raise DataError("checkpoint's subword model does not match its recorded fingerprint")
        return cls(state["variant"], state["src_lang"], state["tgt_lang"], tokenizer)
