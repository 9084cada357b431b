"""Where the tests find Multi30k: ``$MULTI30K_DIR``, else ``data/multi30k`` (``make data``)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIRROR = Path(os.environ.get("MULTI30K_DIR") or ROOT / "data" / "multi30k")
#: Module-level mark for tests that read the real data (``make test`` fetches it first).
NEEDS_MIRROR = pytest.mark.skipif(
    not MIRROR.is_dir(), reason=f"no Multi30k at {MIRROR}: run `make data` or set MULTI30K_DIR"
)
