"""Multi30k task 1: fetch, verify and read the parallel image descriptions.

Layout of a data directory (``data/multi30k`` after ``make data``, and of a local mirror)::

    raw/<split>.<lang>.gz                  cased raw text, byte-identical to upstream
    tok/<split>.lc.norm.tok.<lang>.gz      lowercased, normalised, Moses-tokenised text
                                           (gzip-compressed here; plain text upstream)

Every file is checked against the SHA-256 sums shipped with the package
(``dgl_transformer/mt/checksums/SHA256SUMS.raw`` covers the ``.gz`` files,
``SHA256SUMS.tok-uncompressed`` beside it the uncompressed tok content) on
fetch and again on every read. The later official test sets (2017, 2018) have no pinned sum:
they are fetched only on request and read only with ``allow_unverified=True``.

>>> src, tgt = read_parallel(Path("data/multi30k"), "train", "en", "de")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import sys
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pooch
import requests

from .command import main as run_command

pooch.get_logger().setLevel("WARNING")  # our report lists what was fetched

#: The pinned sums ship inside the package (package data), so any install can verify the data.
SUMS_DIR = Path(__file__).resolve().parent / "checksums"
SUMS_FILES = {"raw": "SHA256SUMS.raw", "tok": "SHA256SUMS.tok-uncompressed"}
#: Where ``dgl-transformer data`` puts the files, relative to the working directory.
DEFAULT_DEST = Path("data") / "multi30k"
BASE_URL = "https://github.com/multi30k/dataset/raw/master/data/task1"
MIRROR_ENV = "MULTI30K_DIR"

LANGS = ("en", "de", "fr", "cs")
FILE_KINDS = ("raw", "tok")  # the two forms of every file
CORE_SPLITS = ("train", "val", "test_2016_flickr")
#: Official test sets published after 2016, with the languages upstream has for each.
LATER_TEST_SETS = {
    "test_2017_flickr": ("en", "de", "fr"),
    "test_2017_mscoco": ("en", "de", "fr"),
    "test_2018_flickr": LANGS,
}
TEST_SETS = ("test_2016_flickr", *LATER_TEST_SETS)
SPLITS = (*CORE_SPLITS, *LATER_TEST_SETS)


class DataError(ValueError):
    """Bad, missing or unverifiable data; the message is one line naming the file."""


@dataclass(frozen=True)
class DataFile:
    """One Multi30k file: a (split, language, variant) triple."""

    split: str
    lang: str
    variant: str

    def __post_init__(self) -> None:
        _check_choice("split", self.split, SPLITS)
        _check_choice("language", self.lang, LANGS)
        _check_choice("variant", self.variant, FILE_KINDS)
        if self.lang not in LATER_TEST_SETS.get(self.split, LANGS):
            raise DataError(f"{self.split} is not published for language '{self.lang}'")

    @property
    def upstream_name(self) -> str:
        """The file name upstream and in the SHA256SUMS files."""
        if self.variant == "raw":
            return f"{self.split}.{self.lang}.gz"
        return f"{self.split}.lc.norm.tok.{self.lang}"

    @property
    def relpath(self) -> str:
        """Where the file lives under a data directory (always gzip-compressed)."""
        name = self.upstream_name
        return f"{self.variant}/{name if name.endswith('.gz') else name + '.gz'}"

    @property
    def url_path(self) -> str:
        """Path under :data:`BASE_URL`."""
        return f"{self.variant}/{self.upstream_name}"


def _check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise DataError(f"unknown {what} '{value}' (known: {', '.join(choices)})")


def load_sums(sums_dir: Path = SUMS_DIR) -> dict[str, dict[str, str]]:
    """Read the pinned sums: ``{variant: {upstream_name: sha256 hex}}``."""
    sums: dict[str, dict[str, str]] = {}
    for variant, name in SUMS_FILES.items():
        path = sums_dir / name
        if not path.is_file():
            raise DataError(f"{path}: checksum file missing from the installed package")
        table = sums.setdefault(variant, {})
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if len(parts) != 2 or len(parts[0]) != 64:
                raise DataError(f"{path}:{number}: expected '<sha256>  <file name>'")
            table[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _gunzip(data: bytes, where: str) -> bytes:
    try:
        return gzip.decompress(data)
    except EOFError:
        raise DataError(f"{where}: gzip data cut short (truncated file)") from None
    except (gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{where}: not valid gzip data ({err})") from None


def check_content(
    f: DataFile, stored: bytes, where: str, sums: dict[str, dict[str, str]], *,
    allow_unverified: bool = False,
) -> bytes:
    """Check one file as stored (gzip bytes); return its uncompressed content.

    Raises :class:`DataError` for broken gzip data, a checksum mismatch, or a file with no
    pinned sum unless ``allow_unverified`` (then it warns instead).
    """
    content = _gunzip(stored, where)
    expected = sums[f.variant].get(f.upstream_name)
    if expected is None:
        if not allow_unverified:
            raise DataError(
                f"{where}: no pinned SHA-256 for {f.upstream_name} in {SUMS_FILES[f.variant]};"
                " pass allow_unverified=True to use it unverified"
            )
        warnings.warn(f"{where}: used UNVERIFIED (no pinned SHA-256)", stacklevel=4)
        return content
    actual = hashlib.sha256(stored if f.variant == "raw" else content).hexdigest()
    if actual != expected:
        raise DataError(
            f"{where}: SHA-256 mismatch (expected {expected[:12]}..., got {actual[:12]}...)"
        )
    return content


def _lines(content: bytes, where: str) -> list[str]:
    """Decode strictly as UTF-8 and split on '\\n' only (no Unicode line breaks)."""
    if not content:
        raise DataError(f"{where}: empty file")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as err:
        line = content.count(b"\n", 0, err.start) + 1
        raise DataError(f"{where}:{line}: not valid UTF-8 ({err.reason})") from None
    lines = text.split("\n")
    return lines[:-1] if text.endswith("\n") else lines


def read_split(
    root: Path, split: str, lang: str, variant: str = "raw", *, allow_unverified: bool = False
) -> list[str]:
    """Read one verified file of a data directory as a list of lines (newlines removed)."""
    return _read(Path(root), DataFile(split, lang, variant), allow_unverified)


def read_parallel(
    root: Path, split: str, src_lang: str, tgt_lang: str, variant: str = "raw", *,
    allow_unverified: bool = False,
) -> tuple[list[str], list[str]]:
    """Read the aligned source and target lines of one split."""
    if src_lang == tgt_lang:
        raise DataError(f"source and target language are both '{src_lang}'")
    files = [DataFile(split, lang, variant) for lang in (src_lang, tgt_lang)]
    src, tgt = (_read(Path(root), f, allow_unverified) for f in files)
    if len(src) != len(tgt):
        raise DataError(
            f"{Path(root) / files[0].relpath} has {len(src)} lines but"
            f" {Path(root) / files[1].relpath} has {len(tgt)}: not parallel"
        )
    return src, tgt


def _read(root: Path, f: DataFile, allow_unverified: bool) -> list[str]:
    path = root / f.relpath
    if not path.is_file():
        raise DataError(f"{path}: missing; fetch it with `dgl-transformer data --dest {root}`")
    content = check_content(
        f, path.read_bytes(), str(path), load_sums(), allow_unverified=allow_unverified
    )
    return _lines(content, str(path))


def official_test_set_status(
    root: Path, src_lang: str, tgt_lang: str, variant: str = "raw"
) -> dict[str, str]:
    """State of every official test set for a language pair: 'verified' or why not."""
    status = {}
    for split in TEST_SETS:
        try:
            read_parallel(root, split, src_lang, tgt_lang, variant)
            status[split] = "verified"
        except DataError as err:
            status[split] = str(err)
    return status


def available_test_sets(
    root: Path, src_lang: str, tgt_lang: str, variant: str = "raw"
) -> list[str]:
    """The official test sets whose files are present and verified for this language pair."""
    status = official_test_set_status(root, src_lang, tgt_lang, variant)
    return [split for split, state in status.items() if state == "verified"]


@dataclass
class FilterReport:
    """What :func:`filter_pairs` kept and dropped."""

    total: int
    blank: int
    too_long: int
    max_len: int

    @property
    def kept(self) -> int:
        """Pairs left for training."""
        return self.total - self.blank - self.too_long

    def __str__(self) -> str:
        return (
            f"kept {self.kept:,} of {self.total:,} training pairs: dropped {self.blank:,} with a"
            f" blank side and {self.too_long:,} with a side longer than {self.max_len}"
        )


def filter_pairs(
    src: Sequence[str], tgt: Sequence[str], max_len: int,
    length_fn: Callable[[str], int] = lambda s: len(s.split()),
    tgt_length_fn: Callable[[str], int] | None = None,
) -> tuple[list[str], list[str], FilterReport]:
    """Drop training pairs with a blank side or a side longer than ``max_len``.

    ``length_fn`` measures a sentence (default: whitespace tokens; pass the encoder's length
    for the model's view), ``tgt_length_fn`` a target one (default: ``length_fn``). For
    training data only: never filter val or test sets.
    """
    tgt_length_fn = tgt_length_fn or length_fn
    if len(src) != len(tgt):
        raise DataError(f"filter_pairs: {len(src)} source lines but {len(tgt)} target lines")
    kept_src, kept_tgt = [], []
    blank = too_long = 0
    for s, t in zip(src, tgt, strict=True):
        if not s.strip() or not t.strip():
            blank += 1
        elif max(length_fn(s), tgt_length_fn(t)) > max_len:
            too_long += 1
        else:
            kept_src.append(s)
            kept_tgt.append(t)
    return kept_src, kept_tgt, FilterReport(len(src), blank, too_long, max_len)


class _NotFound(Exception):
    """The source does not have this file (no error for optional test sets)."""


def _downloader(
    f: DataFile, mirror: Path | None, where: str
) -> Callable[[str, str, pooch.Pooch], None]:
    """A pooch downloader for ``f`` that copies from ``mirror`` if given, else uses HTTP.

    It writes the bytes the registry's hash covers (the ``.gz`` file for raw, plain text for
    tok); a file the source lacks raises :class:`_NotFound`, which pooch does not retry.
    """

    def download(url: str, output_file: str, pup: pooch.Pooch) -> None:
        if mirror is not None:
            path = mirror / f.relpath
            if not path.is_file():
                raise _NotFound(f"{path}: not in the mirror")
            stored = path.read_bytes()
            plain = _gunzip(stored, where)
            Path(output_file).write_bytes(stored if f.variant == "raw" else plain)
            return
        try:
            pooch.HTTPDownloader(timeout=60)(url, output_file, pup)
        except requests.HTTPError as err:
            if err.response.status_code == 404:
                raise _NotFound(f"{url}: not published (HTTP 404)") from None
            raise
        if f.variant == "raw":  # broken gzip data: DataError (the later test sets have no sum)
            _gunzip(Path(output_file).read_bytes(), where)

    return download


def _gzip_in_place(fname: str, action: str, pup: pooch.Pooch) -> str:
    """pooch processor for tok files: replace the verified plain text by ``<name>.gz``."""
    plain = Path(fname)
    plain.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    return str(plain.replace(plain.with_name(plain.name + ".gz")))


@dataclass
class FetchReport:
    """Outcome of :func:`fetch`, one list of file paths per state."""

    source: str
    dest: Path
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for the console."""
        lines = [
            f"Multi30k task 1 from {self.source} into {self.dest}:",
            f"  {len(self.fetched)} fetched and verified, {len(self.present)} already present"
            " and verified",
        ]
        lines += [f"  UNVERIFIED (no pinned SHA-256): {p}" for p in self.unverified]
        lines += [f"  skipped: {p}" for p in self.skipped]
        lines += [f"  FAILED: {p}" for p in self.failed]
        return "\n".join(lines)


def resolve_mirror(mirror: Path | None = None) -> Path | None:
    """The local mirror to copy from: ``mirror``, else ``$MULTI30K_DIR``, else None."""
    if mirror is None and os.environ.get(MIRROR_ENV):
        mirror = Path(os.environ[MIRROR_ENV])
    if mirror is not None and not Path(mirror).is_dir():
        raise DataError(f"{mirror}: mirror directory does not exist")
    return None if mirror is None else Path(mirror)


def _wanted(langs: Sequence[str], later_tests: bool) -> list[DataFile]:
    for lang in langs:
        _check_choice("language", lang, LANGS)
    splits = SPLITS if later_tests else CORE_SPLITS
    return [
        DataFile(split, lang, variant)
        for variant in FILE_KINDS for split in splits for lang in langs
        if lang in LATER_TEST_SETS.get(split, LANGS)
    ]


def fetch(
    dest: Path = DEFAULT_DEST, mirror: Path | None = None, *, langs: Sequence[str] = LANGS,
    later_tests: bool = False, base_url: str = BASE_URL, retries: int = 2,
) -> FetchReport:
    """Copy (from a local mirror) or download Multi30k into ``dest``, verifying every file.

    Both go through a pooch registry of the pinned sums: each file lands in a temporary file,
    is checked, and only then moved into place. Files already in ``dest`` that verify are kept;
    ones that do not are deleted and fetched again. A failed download (not a mirror copy) is
    tried ``retries`` more times; an unreachable server ends the fetch. ``later_tests`` also
    fetches the 2017/2018 test sets, which have no pinned sum (reported as UNVERIFIED; skipped
    where the source lacks them). Raises :class:`DataError` at the end if any wanted file failed.
    """
    source = resolve_mirror(mirror)
    report = FetchReport(str(source) if source else base_url, Path(dest))
    sums = load_sums()
    wanted = _wanted(langs, later_tests)
    registry = {
        f.url_path: f"sha256:{sums[f.variant][f.upstream_name]}"
        if f.upstream_name in sums[f.variant] else None
        for f in wanted
    }
    pup = pooch.create(dest, base_url, registry=registry, retry_if_failed=0 if source else retries)
    for f in wanted:
        if not _fetch_one(f, pup, source, sums, report):
            break
    if report.failed:
        more = f" (and {len(report.failed) - 1} more)" if len(report.failed) > 1 else ""
        raise DataError(f"{report.failed[0]}{more}")
    return report


def _fetch_one(
    f: DataFile, pup: pooch.Pooch, mirror: Path | None, sums: dict[str, dict[str, str]],
    report: FetchReport,
) -> bool:
    """Fetch ``f`` unless a verified copy is in ``report.dest``; False: server unreachable."""
    target = report.dest / f.relpath
    known = pup.registry[f.url_path]
    if target.is_file():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unverified files are listed in the report
                check_content(f, target.read_bytes(), str(target), sums, allow_unverified=True)
            (report.present if known else report.unverified).append(str(target))
            return True
        except DataError:
            target.unlink()  # corrupt copy: never leave it where a read would find it
    url = pup.get_url(f.url_path)
    where = f"{f.url_path} from {report.source}"
    try:
        pup.fetch(
            f.url_path, processor=None if f.variant == "raw" else _gzip_in_place,
            downloader=_downloader(f, mirror, where),
        )
    except _NotFound as err:
        (report.skipped if f.split in LATER_TEST_SETS else report.failed).append(str(err))
    except DataError as err:
        report.failed.append(str(err))
    except requests.HTTPError as err:
        report.failed.append(f"{url}: download failed (HTTP {err.response.status_code})")
    except requests.RequestException as err:
        report.failed.append(f"{url}: download failed ({err}); set {MIRROR_ENV} to a local mirror")
        return not isinstance(err, requests.ConnectionError)
    except ValueError:  # the only other ValueError pooch raises here: its hash check
        expected = known.removeprefix("sha256:")
        report.failed.append(f"{where}: SHA-256 mismatch (expected {expected[:12]}...)")
    else:
        (report.fetched if known else report.unverified).append(str(target))
    return True


HELP = "fetch and verify Multi30k task 1"
ERRORS = (DataError,)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``dgl-transformer data``'s options."""
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST,
                        help="where to put the files (default: data/multi30k)")
    parser.add_argument("--mirror", type=Path, help=f"local mirror (default: ${MIRROR_ENV})")
    parser.add_argument("--langs", nargs="+", default=list(LANGS), choices=LANGS,
                        help="languages to fetch (default: all four)")
    parser.add_argument(
        "--later-tests", action="store_true",
        help="also fetch test_2017_flickr/test_2017_mscoco/test_2018_flickr (no pinned sums)",
    )


def command(args: argparse.Namespace) -> int:
    """``dgl-transformer data``: fetch what is missing, verify everything, say what was done."""
    report = fetch(args.dest, args.mirror, langs=args.langs, later_tests=args.later_tests)
    print(report.summary())
    if not args.later_tests:
        print(f"  not fetched: {', '.join(LATER_TEST_SETS)} (no pinned SHA-256;"
              " --later-tests fetches them unverified)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dgl_transformer.mt.data``: ``dgl-transformer data``."""
    return run_command("python -m dgl_transformer.mt.data", HELP, add_arguments, command,
                       ERRORS, argv)


if __name__ == "__main__":
    sys.exit(main())
