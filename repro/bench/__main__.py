"""``python -m repro.bench`` (see the package docstring)."""

import os
import sys

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. On a machine shared
# with other processes, spinning threads steal the cores that the busy ones need (see
# BENCHMARKS.md). The package itself imports nothing, so this comes first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .cli import main  # noqa: E402

sys.exit(main())
