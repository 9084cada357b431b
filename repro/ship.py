"""Ship a trained model with the repository: one checksummed file a user can translate with.

    python -m repro.ship runs/tiny/final.pt repro/models/tiny.pt

Writes the trained model (weights, subword model, run configuration, the chosen weights'
validation scores and the per-epoch history) in the :class:`TrainedModel` format that
``Translator.from_checkpoint`` and ``dgl-transformer translate/evaluate`` load, with the
weights stored once: an averaged checkpoint holds the tied embedding matrix three times
(source, target, output), so the weights go through the model, whose state shares it. Adds the
file's SHA-256 to ``SHA256SUMS`` beside it (``sha256sum -c SHA256SUMS`` checks a download) and
refuses a file over :data:`LIMIT_BYTES`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from dgl_transformer.mt.checkpoint import CheckpointError, TrainedModel
from dgl_transformer.mt.generate import Translator

#: The most a shipped model may weigh (the repository carries it).
LIMIT_BYTES = 12 * 1024 * 1024
SUMS = "SHA256SUMS"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ship(final: Path, out: Path) -> str:
    """Write ``final``'s model to ``out`` with shared weights stored once; record and return
    its SHA-256."""
    state = TrainedModel.load(final)
    model = Translator.from_checkpoint(final).model  # ties the shared matrices
    state.model = model.state_dict()
    state.save(out)
    size = out.stat().st_size
    if size > LIMIT_BYTES:
        out.unlink()
        raise CheckpointError(f"{out}: {size / 2**20:.1f} MiB, over the {LIMIT_BYTES / 2**20:.0f} "
                              "MiB a shipped model may weigh")
    digest = sha256(out)
    sums = out.parent / SUMS
    lines = [line for line in (sums.read_text().splitlines() if sums.exists() else [])
             if not line.endswith(f"  {out.name}")]
    sums.write_text("".join(f"{line}\n" for line in sorted([*lines, f"{digest}  {out.name}"],
                                                            key=lambda s: s.split()[-1])))
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.ship", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("final", type=Path, help="a trained model (a run's final.pt)")
    parser.add_argument("out", type=Path, help="where to write it, e.g. repro/models/tiny.pt")
    args = parser.parse_args(argv)
    try:
        digest = ship(args.final, args.out)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.out}: {args.out.stat().st_size / 2**20:.2f} MiB, sha256 {digest}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
