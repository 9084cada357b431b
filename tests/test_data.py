"""Fetching, verifying and reading Multi30k (uses the local mirror, never the network)."""

import gzip
import shutil
from pathlib import Path

import pytest
from multi30k_mirror import MIRROR, NEEDS_MIRROR

from dgl_transformer.mt.data import (
    CORE_SPLITS,
    DataError,
    DataFile,
    available_test_sets,
    fetch,
    filter_pairs,
    main,
    official_test_set_status,
    read_parallel,
    read_split,
)

pytestmark = NEEDS_MIRROR
EN_DE = ("en", "de")
UNVERIFIED_OK = pytest.mark.filterwarnings("ignore:.*UNVERIFIED")


def one_line_error(call, *args, **kwargs) -> str:
    """Run ``call``, expect a DataError, and return its (single-line) message."""
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def copy_mirror(dest: Path, langs=EN_DE) -> Path:
    """A writable copy of the mirror's files for ``langs``."""
    for variant in ("raw", "tok"):
        for split in CORE_SPLITS:
            for lang in langs:
                rel = DataFile(split, lang, variant).relpath
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(MIRROR / rel, dest / rel)
    return dest


def write_gz(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content))
    return path


@pytest.fixture(scope="module")
def fetched(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("fetched") / "multi30k"
    fetch(dest, MIRROR, langs=EN_DE)
    return dest


def test_fetch_from_env_mirror_verifies_and_reads_29000_pairs(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTI30K_DIR", str(MIRROR))
    dest = tmp_path / "multi30k"
    report = fetch(dest, langs=EN_DE)
    assert len(report.fetched) == 12 and not report.failed and report.source == str(MIRROR)
    src, tgt = read_parallel(dest, "train", "en", "de")
    assert len(src) == len(tgt) == 29_000
    assert src[0] == "Two young, White males are outside near many bushes."
    assert tgt[0] == "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche."
    tok_src, _ = read_parallel(dest, "train", "en", "de", "tok")
    assert tok_src[0] == "two young , white males are outside near many bushes ."
    again = fetch(dest, langs=EN_DE)
    assert len(again.present) == 12 and not again.fetched


def test_corrupt_mirror_file_is_reported_and_not_stored(tmp_path):
    mirror = copy_mirror(tmp_path / "mirror")
    bad = mirror / "raw" / "val.de.gz"
    write_gz(bad, gzip.decompress(bad.read_bytes()).replace(b"Mann", b"Frau", 1))
    message = one_line_error(fetch, tmp_path / "dest", mirror, langs=EN_DE)
    assert "raw/val.de.gz" in message and "SHA-256 mismatch" in message
    assert not (tmp_path / "dest" / "raw" / "val.de.gz").exists()
    assert (tmp_path / "dest" / "raw" / "val.en.gz").exists()  # the good files were stored


def test_corrupt_stored_file_is_never_read_and_fetch_replaces_it(tmp_path):
    dest = copy_mirror(tmp_path / "dest", langs=("en",))
    stored = dest / "tok" / "val.lc.norm.tok.en.gz"
    stored.write_bytes(stored.read_bytes()[:5000])
    message = one_line_error(read_split, dest, "val", "en", "tok")
    assert str(stored) in message and "cut short" in message
    report = fetch(dest, MIRROR, langs=("en",))
    assert report.fetched == [str(stored)] and len(report.present) == 5
    assert len(read_split(dest, "val", "en", "tok")) == 1014


def test_download_from_canonical_layout(tmp_path, monkeypatch):
    """The URL path, offline: a file:// tree laid out like upstream (tok files uncompressed)."""
    monkeypatch.delenv("MULTI30K_DIR", raising=False)
    upstream = tmp_path / "upstream"
    for split in CORE_SPLITS:
        for variant in ("raw", "tok"):
            f = DataFile(split, "en", variant)
            data = (MIRROR / f.relpath).read_bytes()
            (upstream / f.url_path).parent.mkdir(parents=True, exist_ok=True)
            (upstream / f.url_path).write_bytes(data if variant == "raw" else gzip.decompress(data))
    dest = tmp_path / "dest"
    report = fetch(dest, langs=("en",), later_tests=True, base_url=upstream.as_uri())
    assert len(report.fetched) == 6 and len(report.skipped) == 6 and not report.unverified
    assert read_split(dest, "val", "en", "tok") == read_split(MIRROR, "val", "en", "tok")
    stored = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    wanted = [DataFile(s, "en", v).relpath for s in CORE_SPLITS for v in ("raw", "tok")]
    assert stored == sorted(wanted)


def test_download_failure_is_one_line_and_stores_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("MULTI30K_DIR", raising=False)
    message = one_line_error(fetch, tmp_path, langs=("en",), base_url="http://127.0.0.1:9")
    assert "download failed" in message and "MULTI30K_DIR" in message
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_truncated_gzip(tmp_path):
    path = tmp_path / "raw" / "train.en.gz"
    path.parent.mkdir()
    path.write_bytes((MIRROR / "raw" / "train.en.gz").read_bytes()[:-100])
    message = one_line_error(read_split, tmp_path, "train", "en")
    assert message.startswith(str(path)) and "cut short" in message


def test_checksum_mismatch_on_read(tmp_path):
    path = write_gz(tmp_path / "raw" / "val.en.gz", b"A dog runs.\n")
    assert "SHA-256 mismatch" in one_line_error(read_split, tmp_path, "val", "en")
    assert str(path) in one_line_error(read_split, tmp_path, "val", "en")


@UNVERIFIED_OK
def test_different_line_counts(tmp_path):
    write_gz(tmp_path / "raw" / "test_2017_flickr.en.gz", b"a\nb\nc\n")
    write_gz(tmp_path / "raw" / "test_2017_flickr.de.gz", b"a\nb\n")
    message = one_line_error(
        read_parallel, tmp_path, "test_2017_flickr", "en", "de", allow_unverified=True
    )
    assert "test_2017_flickr.en.gz has 3 lines" in message
    assert "test_2017_flickr.de.gz has 2" in message


@UNVERIFIED_OK
def test_empty_file(tmp_path):
    path = write_gz(tmp_path / "raw" / "test_2017_flickr.en.gz", b"")
    message = one_line_error(read_split, tmp_path, "test_2017_flickr", "en", allow_unverified=True)
    assert message == f"{path}: empty file"


@UNVERIFIED_OK
def test_non_utf8_bytes_name_the_line(tmp_path):
    content = b"fine\nalso fine\nbad \xff byte\n"
    path = write_gz(tmp_path / "raw" / "test_2017_flickr.en.gz", content)
    message = one_line_error(read_split, tmp_path, "test_2017_flickr", "en", allow_unverified=True)
    assert message.startswith(f"{path}:3: not valid UTF-8")


def test_unverified_file_needs_opt_in_and_warns(tmp_path):
    write_gz(tmp_path / "raw" / "test_2018_flickr.cs.gz", "Pes běží.\n".encode())
    assert "no pinned SHA-256" in one_line_error(read_split, tmp_path, "test_2018_flickr", "cs")
    with pytest.warns(UserWarning, match="UNVERIFIED"):
        lines = read_split(tmp_path, "test_2018_flickr", "cs", allow_unverified=True)
    assert lines == ["Pes běží."]


@UNVERIFIED_OK
def test_lines_split_on_newline_only(tmp_path):
    """U+2028 or a form feed inside a sentence must not shift the alignment."""
    write_gz(tmp_path / "raw" / "test_2017_flickr.en.gz", "a\u2028b\x0cc\nd".encode())
    lines = read_split(tmp_path, "test_2017_flickr", "en", allow_unverified=True)
    assert lines == ["a\u2028b\x0cc", "d"]


def test_missing_and_unknown_splits(fetched, tmp_path):
    assert "missing" in one_line_error(read_split, tmp_path, "val", "en")
    assert "unknown split 'dev'" in one_line_error(read_split, fetched, "dev", "en")
    assert "unknown language" in one_line_error(read_split, fetched, "val", "xx")
    assert "not published" in one_line_error(read_split, fetched, "test_2017_mscoco", "cs")
    assert "missing" in one_line_error(read_parallel, fetched, "val", "en", "fr")


def test_only_present_verified_test_sets_are_available(fetched):
    assert available_test_sets(fetched, "en", "de") == ["test_2016_flickr"]
    status = official_test_set_status(fetched, "en", "de", "tok")
    assert status["test_2016_flickr"] == "verified"
    assert "missing" in status["test_2017_flickr"] and "missing" in status["test_2018_flickr"]
    assert "not published" in official_test_set_status(fetched, "en", "cs")["test_2017_mscoco"]


def test_filter_pairs_drops_blank_and_long_and_reports():
    src = ["a b c", "", "one two", "x " * 60, "ok", "  "]
    tgt = ["d e", "leer", "eins", "kurz", "y " * 60, "z"]
    kept_src, kept_tgt, report = filter_pairs(src, tgt, max_len=50)
    assert (kept_src, kept_tgt) == (["a b c", "one two"], ["d e", "eins"])
    assert (report.total, report.blank, report.too_long, report.kept) == (6, 2, 2, 2)
    assert "kept 2 of 6" in str(report) and "2 with a blank side" in str(report)
    _, _, by_chars = filter_pairs(src, tgt, max_len=5, length_fn=len)
    assert by_chars.too_long == 3
    assert "2 source lines but 1" in one_line_error(filter_pairs, ["a", "b"], ["c"], 5)


def test_cli_prints_summary_and_one_line_errors(tmp_path, capsys):
    assert main(["--dest", str(tmp_path / "d"), "--mirror", str(MIRROR), "--langs", "cs"]) == 0
    out = capsys.readouterr().out
    assert "6 fetched and verified" in out and "not fetched: test_2017_flickr" in out
    assert main(["--dest", str(tmp_path / "d"), "--mirror", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mirror directory does not exist" in err
