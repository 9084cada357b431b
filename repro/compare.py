"""Paired comparison of two recorded runs on a test set: sacreBLEU's paired bootstrap.

    python -m repro.compare BASELINE SYSTEM [--split test_2016_flickr] [--protocol P]
                            [--results repro/results]

Reads both runs' translations (``<results>/outputs/<name>.<split>.<lang>``, written by ``make
repro`` and ``make experiments``) and the split's references, resamples the sentences 1,000
times (the same resamples for both runs) and records the BLEU difference, its 95% interval and
the share of resamples in which SYSTEM does not score higher (``mt/bleu.py``'s
:func:`paired_bootstrap`). The entry replaces any earlier one for the same pair, split and
protocol in ``<results>/comparisons.json``, which ``python -m repro.report`` reads. The
protocol defaults to SYSTEM's headline protocol (``eval.protocol``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dgl_transformer.mt.bleu import PROTOCOLS, corpus_bleu, paired_bootstrap, sentence_statistics
from dgl_transformer.mt.data import DEFAULT_DEST, MIRROR_ENV, DataError, read_split

from .report.repro_results import REPRO_RESULTS, headline


def load_result(results: Path, name: str) -> dict:
    path = results / f"{name}.json"
    if not path.exists():
        raise DataError(f"{path}: no such result file (record the run {name} first)")
    return json.loads(path.read_text(encoding="utf-8"))


def outputs(results: Path, result: dict, split: str) -> list[str]:
    """A run's translations of ``split``, as ``make repro`` wrote them under ``results``."""
    lang = result["config"]["data"]["tgt_lang"]
    path = results / "outputs" / f"{result['name']}.{split}.{lang}"
    if not path.exists():
        raise DataError(f"{path}: no translations of {split} for {result['name']} (result files "
                        "written before outputs were kept: record the run again)")
    return path.read_text(encoding="utf-8").splitlines()


def compare(baseline: tuple[Path, str], system: tuple[Path, str], split: str,
            protocol: str | None, root: Path) -> dict:
    """The paired comparison of two recorded runs, each given as (results folder, name); see
    the module docstring."""
    (base_dir, base_name), (sys_dir, sys_name) = baseline, system
    base, sys_ = load_result(base_dir, base_name), load_result(sys_dir, sys_name)
    protocol = protocol or headline(sys_)
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    lang = sys_["config"]["data"]["tgt_lang"]
    refs = read_split(root, split, lang, "tok" if protocol == "bleu_tok_lc" else "raw")
    stats = [sentence_statistics(protocol, outputs(d, r, split), refs, lang)
             for d, r in ((base_dir, base), (sys_dir, sys_))]
    return {"baseline": base_name, "system": sys_name, "split": split, "protocol": protocol,
            "baseline_bleu": round(corpus_bleu(stats[0]), 2),
            "system_bleu": round(corpus_bleu(stats[1]), 2), **paired_bootstrap(*stats)}


def record(results: Path, entry: dict) -> Path:
    """Put ``entry`` into ``<results>/comparisons.json`` (replacing the same comparison)."""
    path = results / "comparisons.json"
    entries = json.loads(path.read_text())["comparisons"] if path.exists() else []
    same = ("baseline", "system", "split", "protocol")
    entries = [e for e in entries if any(e[k] != entry[k] for k in same)] + [entry]
    path.write_text(json.dumps({"comparisons": entries}, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline")
    parser.add_argument("system")
    parser.add_argument("--split", default="test_2016_flickr")
    parser.add_argument("--protocol", help="default: the system's headline protocol")
    parser.add_argument("--results", type=Path, default=REPRO_RESULTS)
    args = parser.parse_args(argv)
    root = Path(os.environ.get(MIRROR_ENV) or DEFAULT_DEST)
    try:
        entry = compare((args.results, args.baseline), (args.results, args.system),
                        args.split, args.protocol, root)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(entry), file=sys.stderr)
    print(f"wrote {record(args.results, entry)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
