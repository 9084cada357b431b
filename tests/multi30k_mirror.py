"""Where the tests find Multi30k: ``$MULTI30K_DIR``, else the shared mirror next to the repo."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIRROR = Path(os.environ.get("MULTI30K_DIR") or ROOT.parent / "shared" / "data" / "multi30k")
#: Module-level mark for tests that read the real data.
NEEDS_MIRROR = pytest.mark.skipif(
    not MIRROR.is_dir() and "MULTI30K_DIR" not in os.environ,
    reason=f"no Multi30k mirror at {MIRROR}; set MULTI30K_DIR",
)
