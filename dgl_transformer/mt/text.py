"""Text pipeline: the text variants and their tokenizers (joint subword model, or words).

Variants (``TextPipeline.variant``):

``raw``
    Cased raw text, fed to the subword model as is; ``decode(encode(s)) == s`` (checked on
    every training sentence), except that whitespace-only text encodes to ``[]`` and the
    character U+2581 (sentencepiece's word marker) decodes to a space.
``lc_tok``
    The official lowercased, punctuation-normalised, Moses-tokenised (and escaped) files.
    Plain input is brought into that form with :func:`preprocess`; model output is turned
    back into plain (lowercased) text with :func:`postprocess`.
``word``
    Cased raw text split into words by spaCy's rule-based tokenizer for the sentence's language
    (``spacy.blank(lang)``, no trained pipeline): a word-level baseline like DGL's example.
    One vocabulary for both languages: the specials, then every word seen more than twice in
    the training split (both languages counted together); other words map to ``<unk>``.
    Output is detokenised with Moses (cased text, no space before punctuation), so it is plain
    text but not byte-exact.

The subword model (``raw``, ``lc_tok``) is BPE: training is deterministic and takes well under
a second on the 58k Multi30k training sentences, and we do not use the unigram model's subword
sampling. It keeps text byte-exact (no normalisation, whitespace kept) and falls back to UTF-8
byte pieces for characters never seen in training, so no input maps to ``<unk>`` or fails.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import sentencepiece as spm
from sacremoses import MosesDetokenizer, MosesPunctNormalizer, MosesTokenizer

from ..tokens import BOS, EOS, NUM_SPECIALS, PAD, SPECIALS, UNK
from .data import DataError, read_parallel

VARIANTS = ("raw", "lc_tok", "word")
#: Which data-file variant (see :mod:`dgl_transformer.mt.data`) each text variant reads.
FILE_VARIANT = {"raw": "raw", "lc_tok": "tok", "word": "raw"}
#: A word enters the word vocabulary when the training split has it at least this often.
MIN_WORD_COUNT = 3
#: A hyphen inside a word, written as Moses' aggressive hyphen splitting does.
JOINED_HYPHEN = "@-@"
#: Moses' XML escapes: whole pieces of the lc_tok subword model, so output never has half a one.
MOSES_ESCAPES = ("&amp;", "&#124;", "&lt;", "&gt;", "&apos;", "&quot;", "&#91;", "&#93;")


@cache
def moses(lang: str) -> tuple[MosesPunctNormalizer, MosesTokenizer, MosesDetokenizer]:
    """sacremoses' punctuation normaliser, tokenizer and detokenizer for ``lang`` (cached)."""
    return MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang), MosesDetokenizer(lang=lang)


def preprocess(text: str, lang: str) -> str:
    """Plain text to the official ``lc.norm.tok`` form: lowercase, normalise, tokenise, escape.

    Mirrors upstream's ``lowercase.perl | normalize-punctuation.perl | tokenizer.perl``
    (Moses snapshot 3a0631a) with sacremoses.
    """
    normalizer, tokenizer, _ = moses(lang)
    return tokenizer.tokenize(normalizer.normalize(text.lower()), escape=True, return_str=True)


def postprocess(text: str, lang: str) -> str:
    """Tokenised, escaped text back to plain text (detokenise, unescape; stays lowercased)."""
    return moses(lang)[2].detokenize(text.split(), unescape=True)


@cache
def _spacy_tokenizer(lang: str) -> Any:
    import spacy  # imported here: it takes seconds, and only the word variant needs it

    try:
        return spacy.blank(lang).tokenizer
    except ImportError:
        raise DataError(f"spaCy has no rule-based tokenizer for language '{lang}'") from None


def words(text: str, lang: str) -> list[str]:
    """The words of ``text`` by spaCy's rule-based tokenizer for ``lang``; whitespace dropped.

    A hyphen spaCy splits off inside a word (English ``blond-haired``; German keeps such
    compounds whole) becomes :data:`JOINED_HYPHEN`, so that detokenising joins it back.
    """
    doc = _spacy_tokenizer(lang)(text)
    return [JOINED_HYPHEN if _inside_word(t, doc) else t.text for t in doc if not t.is_space]


def _inside_word(token: Any, doc: Any) -> bool:
    return (token.text == "-" and 0 < token.i < len(doc) - 1 and not token.whitespace_
            and not doc[token.i - 1].whitespace_)


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise DataError(f"unknown text variant '{variant}' (known: {', '.join(VARIANTS)})")


class Vocabulary:
    """What every tokenizer shares: it is stored as bytes (``to_bytes``; ``from_bytes`` loads
    them back), and those bytes identify it."""

    kind: ClassVar[str]

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> Vocabulary:
        """Load from :meth:`to_bytes` output (e.g. stored in a checkpoint)."""
        return cls(data)

    def to_bytes(self) -> bytes:
        return self._data

    @property
    def fingerprint(self) -> str:
        """SHA-256 of :meth:`to_bytes`: equal fingerprints mean identical vocabularies."""
        return hashlib.sha256(self._data).hexdigest()

    def __len__(self) -> int:
        return self.vocab_size


class SubwordTokenizer(Vocabulary):
    """A sentencepiece model whose first ids are the project's specials (PAD, BOS, EOS, UNK).

    The model is joint: the ``lang`` arguments exist for the interface it shares with
    :class:`WordTokenizer` and change nothing.
    """

    kind: ClassVar[str] = "sentencepiece"

    def __init__(self, proto: bytes) -> None:
        super().__init__(proto)
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._data)
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

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials and byte pieces included."""
        return self._sp.get_piece_size()

    def encode(self, text: str, lang: str | None = None) -> list[int]:
        """Piece ids of ``text``, without BOS/EOS; empty or whitespace-only text gives []."""
        return self._sp.encode(text) if text.strip() else []

    def decode(self, ids: Sequence[int], lang: str | None = None) -> str:
        """Text of ``ids``; special ids (PAD, BOS, EOS, UNK) are skipped."""
        return self._sp.decode([int(i) for i in ids if int(i) >= NUM_SPECIALS])

    def pieces(self, text: str, lang: str | None = None) -> list[str]:
        """The pieces of ``text``, for display."""
        return [self._sp.id_to_piece(i) for i in self.encode(text)]


class WordTokenizer(Vocabulary):
    """A word vocabulary over :func:`words`: ids 0..3 are the specials, then one id per word.

    Serialised as a UTF-8 JSON list of every entry in id order, specials included.
    """

    kind: ClassVar[str] = "words"

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self._words = tuple(vocabulary)
        if self._words[:NUM_SPECIALS] != SPECIALS:
            raise DataError(f"word vocabulary starts {self._words[:NUM_SPECIALS]}, not the "
                            f"specials {SPECIALS} of tokens.py")
        self._ids = {word: i for i, word in enumerate(self._words)}
        if len(self._ids) != len(self._words):
            raise DataError("word vocabulary lists a word more than once")
        super().__init__(json.dumps(self._words, ensure_ascii=False).encode("utf-8"))

    @classmethod
    def train(cls, texts: Mapping[str, Iterable[str]], max_size: int) -> WordTokenizer:
        """Count words in ``texts`` (language -> training lines; all languages together).

        Keeps the words seen at least :data:`MIN_WORD_COUNT` times, most frequent first (ties
        in code-point order, so the same input gives the same ids), and at most ``max_size``
        ids in all (if more words qualify, the rarest are left out).
        """
        if max_size <= NUM_SPECIALS:
            raise DataError(f"word vocabulary size {max_size} leaves no room after the "
                            f"{NUM_SPECIALS} specials")
        counts = Counter(w for lang, lines in texts.items() for line in lines
                         for w in words(line, lang))
        kept = sorted((w for w, n in counts.items() if n >= MIN_WORD_COUNT and w not in SPECIALS),
                      key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *kept[: max_size - NUM_SPECIALS]])

    @classmethod
    def from_bytes(cls, data: bytes) -> WordTokenizer:
        """Load from :meth:`to_bytes` output (e.g. stored in a checkpoint)."""
        try:
            vocabulary = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            vocabulary = None
        if not isinstance(vocabulary, list) or not all(isinstance(w, str) for w in vocabulary):
            raise DataError("not a serialized word vocabulary (a JSON list of strings)")
        return cls(vocabulary)

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials included."""
        return len(self._words)

    def encode(self, text: str, lang: str) -> list[int]:
        """Word ids of ``text`` in language ``lang``, unknown words as UNK, without BOS/EOS."""
        return [self._ids.get(word, UNK) for word in words(text, lang)]

    def decode(self, ids: Sequence[int], lang: str) -> str:
        """Moses-detokenised text of ``ids`` in ``lang``; special ids (UNK too) are skipped."""
        kept = [self._words[int(i)] for i in ids if int(i) >= NUM_SPECIALS]
        return moses(lang)[2].detokenize(kept, unescape=False)

    def pieces(self, text: str, lang: str) -> list[str]:
        """The words of ``text`` as the vocabulary sees them (unknown ones as ``<unk>``)."""
        return [self._words[i] for i in self.encode(text, lang)]


Tokenizer = SubwordTokenizer | WordTokenizer
#: The tokenizer class for each ``kind`` a checkpoint's pipeline state may name.
TOKENIZER_KINDS: dict[str, type[Tokenizer]] = {
    cls.kind: cls for cls in (SubwordTokenizer, WordTokenizer)
}


class TextPipeline:
    """Everything between plain text and ids for one language pair and one text variant.

    *Corpus form* is how the variant's data files store text (raw: as is; lc_tok: tokenised).
    Training and scoring work in corpus form (:meth:`read`, :meth:`encode`,
    :meth:`decode_tgt`); :meth:`encode_src` and ``decode_tgt(..., plain=True)`` take and
    give plain text for translating new input. The word variant's corpus form is raw text and
    its output is always plain text.
    """

    def __init__(self, variant: str, src_lang: str, tgt_lang: str, tokenizer: Tokenizer) -> None:
        _check_variant(variant)
        wanted = WordTokenizer if variant == "word" else SubwordTokenizer
        if not isinstance(tokenizer, wanted):
            raise DataError(f"text variant '{variant}' needs a '{wanted.kind}' tokenizer, got "
                            f"'{tokenizer.kind}'")
        self.variant, self.src_lang, self.tgt_lang = variant, src_lang, tgt_lang
        self.tokenizer = tokenizer

    @classmethod
    def train(
        cls, root: Path, variant: str, src_lang: str, tgt_lang: str, vocab_size: int
    ) -> TextPipeline:
        """Build the vocabulary from the training split of both languages.

        Subword variants: a joint model of exactly ``vocab_size`` ids. Word variant:
        ``vocab_size`` is an upper bound (see :meth:`WordTokenizer.train`).
        """
        _check_variant(variant)
        src, tgt = read_parallel(root, "train", src_lang, tgt_lang, FILE_VARIANT[variant])
        tokenizer: Tokenizer
        if variant == "word":
            tokenizer = WordTokenizer.train({src_lang: src, tgt_lang: tgt}, vocab_size)
        else:
            symbols = MOSES_ESCAPES if variant == "lc_tok" else ()
            tokenizer = SubwordTokenizer.train(src + tgt, vocab_size, user_symbols=symbols)
        return cls(variant, src_lang, tgt_lang, tokenizer)

    def read(self, root: Path, split: str) -> tuple[list[str], list[str]]:
        """Source and target lines of ``split`` in corpus form."""
        return read_parallel(root, split, self.src_lang, self.tgt_lang, FILE_VARIANT[self.variant])

    def encode(self, text: str, lang: str) -> list[int]:
        """Ids of corpus-form text in ``lang`` (the source or target language), no BOS/EOS."""
        if lang not in (self.src_lang, self.tgt_lang):
            raise DataError(f"language '{lang}' is neither the source ('{self.src_lang}') nor "
                            f"the target ('{self.tgt_lang}') language")
        return self.tokenizer.encode(text, lang)

    def encode_src(self, text: str) -> list[int]:
        """Ids of a plain source sentence, as typed by a user (without BOS/EOS)."""
        if self.variant == "lc_tok":
            text = preprocess(text, self.src_lang)
        return self.tokenizer.encode(text, self.src_lang)

    def decode_tgt(self, ids: Sequence[int], *, plain: bool = False) -> str:
        """Target text of ``ids``: corpus form (for scoring), or plain text if ``plain``."""
        text = self.tokenizer.decode(ids, self.tgt_lang)
        return postprocess(text, self.tgt_lang) if plain and self.variant == "lc_tok" else text

    def to_state(self) -> dict[str, Any]:
        """A picklable description for checkpoints (includes the vocabulary)."""
        return {
            "variant": self.variant, "src_lang": self.src_lang, "tgt_lang": self.tgt_lang,
            "kind": self.tokenizer.kind, "tokenizer": self.tokenizer.to_bytes(),
            "fingerprint": self.tokenizer.fingerprint,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TextPipeline:
        """Rebuild from :meth:`to_state`, checking the vocabulary's fingerprint.

        A state without ``kind`` (written before the word variant existed) is sentencepiece.
        """
        if not isinstance(state, dict):
            raise DataError(f"checkpoint's pipeline is not a mapping ({type(state).__name__})")
        kind = state.get("kind", SubwordTokenizer.kind)
        if kind not in TOKENIZER_KINDS:
            raise DataError(f"checkpoint's pipeline has unknown tokenizer kind '{kind}' "
                            f"(known: {', '.join(TOKENIZER_KINDS)})")
        tokenizer = TOKENIZER_KINDS[kind].from_bytes(state["tokenizer"])
        if tokenizer.fingerprint != state["fingerprint"]:
            raise DataError("checkpoint's vocabulary does not match its recorded fingerprint")
        return cls(state["variant"], state["src_lang"], state["tgt_lang"], tokenizer)
