"""Fetching, verifying and reading Multi30k (uses the local mirror, never the network)."""

import collections
import gzip
import http.server
import shutil
import threading
from functools import partial
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
EN_FILES = [DataFile(s, "en", v) for s in CORE_SPLITS for v in ("raw", "tok")]
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


class _Upstream(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; ``server.faults[path]`` lists failures for that path's next GETs."""

    def do_GET(self):
        self.server.hits[self.path] += 1
        fault = self.server.faults.get(self.path, []) and self.server.faults[self.path].pop(0)
        if fault == "503":
            self.send_error(503)
        elif fault == "cut":  # promise the whole file, send half, hang up
            data = (self.server.root / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        else:
            super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 laid out like upstream for 'en' (tok files uncompressed)."""
    monkeypatch.delenv("MULTI30K_DIR", raising=False)
    root = tmp_path / "upstream"
    for f in EN_FILES:
        data = (MIRROR / f.relpath).read_bytes()
        (root / f.url_path).parent.mkdir(parents=True, exist_ok=True)
        (root / f.url_path).write_bytes(data if f.variant == "raw" else gzip.decompress(data))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_Upstream, directory=str(root))
    )
    server.root, server.url = root, f"http://127.0.0.1:{server.server_port}"
    server.hits, server.faults = collections.Counter(), {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def stored_files(dest: Path) -> list[str]:
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())


def test_download_from_canonical_layout(tmp_path, upstream):
    dest = tmp_path / "dest"
    report = fetch(dest, langs=("en",), later_tests=True, base_url=upstream.url)
    assert len(report.fetched) == 6 and len(report.skipped) == 6 and not report.unverified
    assert all("HTTP 404" in line for line in report.skipped)
    assert read_split(dest, "val", "en", "tok") == read_split(MIRROR, "val", "en", "tok")
    assert stored_files(dest) == sorted(f.relpath for f in EN_FILES)


@pytest.mark.parametrize("variant", ["raw", "tok"])
def test_download_not_matching_the_registry_is_rejected(tmp_path, upstream, variant):
    bad = DataFile("val", "en", variant)
    served = upstream.root / bad.url_path
    content = served.read_bytes()
    served.write_bytes(
        gzip.compress(gzip.decompress(content) + b"A dog.\n") if variant == "raw"
        else content + b"a dog .\n"
    )
    dest = tmp_path / "dest"
    message = one_line_error(fetch, dest, langs=("en",), base_url=upstream.url, retries=0)
    assert message.startswith(f"{bad.url_path} from {upstream.url}: SHA-256 mismatch")
    assert stored_files(dest) == sorted(f.relpath for f in EN_FILES if f != bad)


@pytest.mark.parametrize("fault", ["503", "cut"])
def test_transient_download_failure_is_retried(tmp_path, upstream, fault):
    flaky = "/" + DataFile("train", "en", "raw").url_path
    upstream.faults[flaky] = [fault]
    dest = tmp_path / "dest"
    report = fetch(dest, langs=("en",), base_url=upstream.url, retries=1)
    assert upstream.hits[flaky] == 2 and len(report.fetched) == 6
    assert read_split(dest, "train", "en") == read_split(MIRROR, "train", "en")
    assert stored_files(dest) == sorted(f.relpath for f in EN_FILES)


def test_persistent_http_error_is_one_line_and_stores_nothing(tmp_path, upstream):
    flaky = "/" + DataFile("train", "en", "raw").url_path
    upstream.faults[flaky] = ["503", "503"]
    message = one_line_error(fetch, tmp_path / "dest", langs=("en",), base_url=upstream.url,
                             retries=1)
    assert message == f"{upstream.url}{flaky}: download failed (HTTP 503)"
    assert "raw/train.en.gz" not in stored_files(tmp_path / "dest")


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
