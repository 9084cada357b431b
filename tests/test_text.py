"""The subword model and the raw / lc_tok text pipelines, on the real Multi30k training data."""

import io

import pytest
import sentencepiece as spm
from multi30k_mirror import MIRROR, NEEDS_MIRROR

import dgl_transformer.mt.text as text
from dgl_transformer.mt.data import DataError, read_split
from dgl_transformer.mt.text import (
    MOSES_ESCAPES,
    SubwordTokenizer,
    TextPipeline,
    postprocess,
    preprocess,
)
from dgl_transformer.tokens import BOS, EOS, NUM_SPECIALS, PAD, SPECIALS, UNK

pytestmark = NEEDS_MIRROR
VOCAB = 8000
UNSEEN = "Ein Hund 🐕 läuft — 狗在跑 \x00\x07 \u2028 ok"


@pytest.fixture(scope="module")
def raw() -> TextPipeline:
    return TextPipeline.train(MIRROR, "raw", "en", "de", VOCAB)


@pytest.fixture(scope="module")
def lc_tok() -> TextPipeline:
    return TextPipeline.train(MIRROR, "lc_tok", "en", "de", VOCAB)


def test_ids_aligned_with_specials(raw):
    tok = raw.tokenizer
    assert tok.vocab_size == len(tok) == VOCAB
    sp = spm.SentencePieceProcessor(model_proto=tok.to_bytes())
    assert [sp.id_to_piece(i) for i in range(NUM_SPECIALS)] == list(SPECIALS)
    assert (sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id()) == (PAD, BOS, EOS, UNK)
    ids = tok.encode("A dog runs.")
    assert min(ids) >= NUM_SPECIALS
    assert tok.decode([BOS, *ids, UNK, EOS, PAD, PAD]) == "A dog runs."


def test_raw_round_trip_on_every_training_sentence(raw):
    src, tgt = raw.read(MIRROR, "train")
    lines = src + tgt
    broken = [s for s in lines if raw.tokenizer.decode(raw.encode(s)) != s]
    assert not broken, broken[:3]
    assert not any(UNK in raw.encode(s) for s in lines[::50])


def test_training_reads_only_the_training_split(monkeypatch):
    splits = []

    def spy(root, split, *args):
        splits.append(split)
        return ["a dog runs ."] * 50, ["ein hund läuft ."] * 50

    monkeypatch.setattr(text, "read_parallel", spy)
    TextPipeline.train(MIRROR, "lc_tok", "en", "de", 300)
    assert splits == ["train"]


def test_training_is_deterministic_and_fingerprint_tracks_vocabulary():
    lines = read_split(MIRROR, "val", "en") + read_split(MIRROR, "val", "de")
    first, second = (SubwordTokenizer.train(lines, 1000) for _ in range(2))
    assert first.to_bytes() == second.to_bytes() and first.fingerprint == second.fingerprint
    assert SubwordTokenizer.train(lines[:-100], 1000).fingerprint != first.fingerprint


def test_serialisation_and_checkpoint_state(raw):
    clone = SubwordTokenizer.from_bytes(raw.tokenizer.to_bytes())
    assert clone.fingerprint == raw.tokenizer.fingerprint
    assert clone.encode("Zwei Männer.") == raw.encode("Zwei Männer.")
    state = raw.to_state()
    assert TextPipeline.from_state(state).encode_src("Zwei Männer.") == raw.encode("Zwei Männer.")
    tampered = {**state, "fingerprint": "0" * 64}
    with pytest.raises(DataError, match="fingerprint"):
        TextPipeline.from_state(tampered)


def test_rejects_foreign_models_and_impossible_vocab_sizes(raw):
    with pytest.raises(DataError, match="not a serialized sentencepiece model"):
        SubwordTokenizer.from_bytes(b"not a model")
    with pytest.raises(DataError, match="[Vv]ocabulary size") as info:
        SubwordTokenizer.train(["a dog runs"] * 20, 5000)
    assert "\n" not in str(info.value)
    writer = io.BytesIO()  # sentencepiece's own id layout: unk=0, bos=1, eos=2
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(read_split(MIRROR, "val", "en")), model_writer=writer,
        vocab_size=500, minloglevel=2,
    )
    with pytest.raises(DataError, match="special ids"):
        SubwordTokenizer.from_bytes(writer.getvalue())
    with pytest.raises(DataError, match="unknown text variant"):
        TextPipeline("cased", "en", "de", raw.tokenizer)


@pytest.mark.parametrize("lang", ["en", "de"])
def test_preprocess_reproduces_official_tok_val(lang):
    """Measured: en 1014/1014, de 1013/1014 (fr 1013, cs 1014); train en-de 99.99%.

    The only misses are quirks of the 2017 Moses snapshot upstream used (e.g. German
    ``tea."`` became ``tea &quot; .``). 0.99 leaves room for sacremoses updates while still
    catching a wrong step order or a missing step (lowercasing first, escaping on).
    """
    raw_lines = read_split(MIRROR, "val", lang)
    official = read_split(MIRROR, "val", lang, "tok")
    matches = sum(preprocess(s, lang) == t for s, t in zip(raw_lines, official, strict=True))
    assert matches / len(official) >= 0.99


def test_postprocess_detokenises_and_unescapes():
    assert postprocess("a man &apos;s &quot; red &quot; hat &amp; coat .", "en") == (
        'a man\'s "red" hat & coat.'
    )
    assert postprocess(preprocess("Zwei Männer, die „Hallo“ rufen.", "de"), "de") == (
        'zwei männer, die "hallo" rufen.'
    )


def test_lc_tok_pipeline(lc_tok):
    assert lc_tok.encode_src('A man\'s "RED" hat.') == lc_tok.encode(
        "a man &apos;s &quot; red &quot; hat ."
    )
    escapes = " ".join(MOSES_ESCAPES)
    assert lc_tok.tokenizer.pieces(escapes)[1::2] == list(MOSES_ESCAPES)  # one piece each
    ids = lc_tok.encode("ein &quot; roter &quot; hut &amp; mantel .")
    assert lc_tok.decode_tgt(ids) == "ein &quot; roter &quot; hut &amp; mantel ."
    assert lc_tok.decode_tgt(ids, plain=True) == 'ein "roter" hut & mantel.'


@pytest.mark.parametrize("variant", ["raw", "lc_tok"])
def test_unseen_characters_and_empty_input(variant, raw, lc_tok):
    pipeline = raw if variant == "raw" else lc_tok
    ids = pipeline.encode_src(UNSEEN)
    assert ids and UNK not in ids and max(ids) < VOCAB
    if variant == "raw":
        assert pipeline.decode_tgt(ids) == UNSEEN  # byte fallback keeps every character
    for blank in ["", "   ", "\t\n", "\u3000"]:
        assert pipeline.encode_src(blank) == []
    assert pipeline.decode_tgt([]) == ""
