"""Helpers for the tests of the course runner (``notebooks/run_notebooks.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def load_runner():
    """Import ``notebooks/run_notebooks.py`` (and its ``audit`` module) as a module."""
    if str(NOTEBOOKS) not in sys.path:
        sys.path.insert(0, str(NOTEBOOKS))
    spec = importlib.util.spec_from_file_location("run_notebooks", NOTEBOOKS / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
