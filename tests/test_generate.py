"""The Translator and the ``dgl-transformer`` command (translate with files and n-best lists,
evaluate on files), on a tiny untrained checkpoint: no data or training needed."""

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from tiny_checkpoint import make_checkpoint

from dgl_transformer.mt.generate import SourceTooLong, Translator, output_limit, translate_ids
from dgl_transformer.nn.decoding import beam_search

ROOT = Path(__file__).resolve().parent.parent
LINES = ["a dog runs in the park .", "", "the man plays with a red ball ."]


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("generate") / "final.pt")


@pytest.fixture(scope="module")
def translator(checkpoint_path) -> Translator:
    return Translator.from_checkpoint(checkpoint_path)


def cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dgl_transformer", *args], input=stdin,
                          capture_output=True, cwd=ROOT, timeout=300)


def test_output_limit_is_one_rule():
    assert output_limit(10, 1.2, 10, 128) == 22
    assert output_limit(200, 1.2, 10, 128) == 128  # never past the model's positions
    assert output_limit(5, 0.0, 0, 128) == 1


def test_translator_translates_lines_with_the_checkpoint_settings(translator):
    out = translator.translate(LINES)
    assert len(out) == 3 and out[1] == ""
    ids = [translator.pipeline.encode_src(s) for s in LINES]
    expected = [translator.pipeline.decode_tgt(h, plain=True) if h else ""
                for h in translate_ids(translator.model, ids, **translator.settings.decoding())]
    assert out == [" ".join(e.split()) for e in expected]
    assert translator.settings.max_len_b == 3  # the checkpoint's eval section


def test_nbest_is_sorted_scored_and_starts_with_the_beam_output(translator):
    k = 3
    lists = translator.nbest(LINES, k, beam_size=4)
    assert [len(x) for x in lists] == [k, 1, k]  # the empty line has one empty translation
    for line, hyps in zip(LINES, lists, strict=True):
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        if line:
            assert hyps[0].text == translator.translate([line], beam_size=4)[0]
            # the logprob is the model's: rescore the ids by teacher forcing
            src = torch.tensor(translator.pipeline.encode_src(line))
            again = beam_search(translator.model, [src], 4, 3, translator.settings.length_penalty,
                                nbest=k)[0]
            assert [h.logprob for h in hyps] == pytest.approx([h.logprob for h in again])


def test_over_long_sources_are_counted_and_warned_not_cut_silently(translator):
    limit = translator.model.cfg.max_len
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        translate_ids(translator.model, [[5] * (limit + 3), [5, 6]], beam_size=1)
    assert [str(w.message) for w in caught if w.category is SourceTooLong] == [
        f"1 source(s) longer than the model's max_len={limit} were cut to {limit} tokens"]


def test_translate_command_reads_and_writes_files_with_nbest(checkpoint_path, tmp_path):
    src, out = tmp_path / "in.en", tmp_path / "out.de"
    src.write_text("\n".join(LINES) + "\n")
    proc = cli("translate", "--checkpoint", str(checkpoint_path), "--input", str(src),
               "--output", str(out), "--beam", "2", "--threads", "1")
    assert proc.returncode == 0 and proc.stdout == b"", proc.stderr.decode()
    assert out.read_text().count("\n") == len(LINES)
    proc = cli("translate", "--checkpoint", str(checkpoint_path), "--nbest", "2", "--beam", "2",
               stdin=b"a dog runs .\n")
    rows = [r.split("\t") for r in proc.stdout.decode().splitlines()]
    assert [r[:2] for r in rows] == [["1", "1"], ["1", "2"]]
    assert float(rows[0][2]) >= float(rows[1][2])


def test_evaluate_command_scores_files_with_every_protocol(checkpoint_path, tmp_path):
    src, ref = tmp_path / "src.en", tmp_path / "ref.de"
    src.write_text("a dog runs .\nthe man plays .\n")
    ref.write_text("Ein Hund rennt.\nDer Mann spielt.\n")
    proc = cli("evaluate", "--checkpoint", str(checkpoint_path), "--src", str(src), "--ref",
               str(ref), "--json", str(tmp_path / "scores.json"))
    assert proc.returncode == 0, proc.stderr.decode()
    text = proc.stdout.decode()
    for protocol, signature in [("bleu_cased", "tok:13a"), ("bleu_dgl", "tok:none")]:
        line = next(x for x in text.splitlines() if x.strip().startswith(protocol))
        assert signature in line and "version:" in line
    assert "bleu_tok_lc" not in text  # needs --ref-tok
    assert "sources_in_pieces" in text


def test_evaluate_needs_a_reference_per_source(checkpoint_path, tmp_path):
    src, ref = tmp_path / "src.en", tmp_path / "ref.de"
    src.write_text("a dog runs .\nthe man plays .\n")
    ref.write_text("Ein Hund rennt.\n")
    proc = cli("evaluate", "--checkpoint", str(checkpoint_path), "--src", str(src),
               "--ref", str(ref))
    assert proc.returncode == 1
    assert proc.stderr.decode() == (
        "error: evaluate: 2 sources, 1 references: every source needs its reference\n")


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "dgl-transformer"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert all(c in proc.stdout for c in ("data", "train", "translate", "evaluate"))


def test_a_bug_while_loading_keeps_its_traceback(checkpoint_path, monkeypatch):
    """Only what a damaged file raises becomes a one-line 'unusable checkpoint'; a
    programming error (here a ZeroDivisionError inside loading) is not disguised as bad
    input."""
    from dgl_transformer.nn.model import GraphTransformer

    def broken(self, state, strict=True):
        return 1 / 0

    monkeypatch.setattr(GraphTransformer, "load_state_dict", broken)
    with pytest.raises(ZeroDivisionError):
        Translator.from_checkpoint(checkpoint_path)


def test_bad_settings_and_devices_are_one_clear_error(checkpoint_path, translator):
    from dgl_transformer.mt.configs import ConfigError

    with pytest.raises(ConfigError, match="need a beam of at least 4, got 2"):
        translator.nbest(LINES, 4, beam_size=2)
    with pytest.raises(ConfigError, match="batch size must be >= 1"):
        translator.translate(LINES, batch_size=0)
    with pytest.raises(TypeError, match="a list of sentences, not one string"):
        translator.translate("a dog runs .")
    with pytest.raises(ConfigError, match="device 'nonsense' is not available"):
        Translator.from_checkpoint(checkpoint_path, device="nonsense")
    proc = cli("translate", "--checkpoint", str(checkpoint_path), "--nbest", "3", "--beam", "2",
               stdin=b"a dog .\n")
    assert proc.returncode == 1
    assert proc.stderr.decode() == "error: 3 best translations need a beam of at least 3, got 2\n"
