"""Execute the course notebooks top to bottom, each on a fresh kernel.

    python notebooks/run_notebooks.py              # run all, report times, write nothing
    python notebooks/run_notebooks.py 03 04        # run the notebooks whose names start so
    python notebooks/run_notebooks.py --quick      # DGLT_QUICK=1: shorter training (CI)
    python notebooks/run_notebooks.py --write      # regenerate .ipynb from the paired .py,
                                                   # execute, save outputs into the .ipynb
    python notebooks/run_notebooks.py --seed 3     # DGLT_SEED=3: train with another seed
    python notebooks/run_notebooks.py --record F   # keep going past failing cells and write
                                                   # the trained checks' values to F (JSON);
                                                   # notebooks/audit.py runs this for the audit

The ``.py`` file (jupytext percent format) is the source; the ``.ipynb`` beside it is what
GitHub shows and is committed with outputs.  Without ``--write`` the committed notebooks are
never touched: the runner executes an in-memory copy of the cells of the ``.py`` source.

Each notebook gets a fresh kernel running *this* Python interpreter (a private kernelspec is
written to a temporary directory, so whatever ``python3`` kernel a user has installed does not
matter), with the working directory ``notebooks/`` and the repository root on ``PYTHONPATH``.
The exit status is non-zero if any cell fails; the failing notebook and cell are named.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
from audit import CHECKS, record_cell
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KERNEL_NAME = "dgl-transformer-run"


def lesson_sources(directory: Path = HERE) -> list[Path]:
    """The lesson sources: ``NN_name.py`` files, in course order."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.py"))


def _private_kernelspec(tmp: Path) -> None:
    """Write a kernelspec that runs this interpreter and point Jupyter at it first."""
    spec_dir = tmp / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "dgl-transformer (runner)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(tmp)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    )


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()[:80]
    return "<empty>"


def run_one(
    source: Path, *, write: bool, timeout: int, record: Path | None = None
) -> tuple[float, str | None]:
    """Execute one notebook. Returns (seconds, error message or None).

    With ``record``, a failing cell does not stop the run (the error is still returned), and
    one last cell writes the values of the lesson's trained checks (``audit.CHECKS``) to
    ``record`` as JSON.
    """
    nb = jupytext.read(source)
    if record is not None:
        lesson = source.name[:2]
        nb.cells.append(nbformat.v4.new_code_cell(
            record_cell([c for c in CHECKS if c.lesson == lesson], record)))
    ipynb = source.with_suffix(".ipynb")
    if write and ipynb.exists():
        # keep the committed notebook's top-level metadata, take the cells from the source
        old = nbformat.read(ipynb, as_version=4)
        for key, value in old.metadata.items():
            nb.metadata.setdefault(key, value)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    current = {"index": -1}

    def on_cell_start(cell, cell_index, **_):
        current["index"] = cell_index

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(source.parent)}},
        on_cell_start=on_cell_start,
        allow_errors=record is not None,
    )
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        i = current["index"]
        cell = nb.cells[i] if 0 <= i < len(nb.cells) else None
        where = f"cell {i}" + (f" ({_first_line(cell.source)!r})" if cell is not None else "")
        error = f"{source.name}: {where} failed\n{exc}"
    if record is not None:
        failed = [f"cell {i}: {o.ename}: {o.evalue}" for i, c in enumerate(nb.cells)
                  if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        error = error or (f"{source.name}: " + "; ".join(failed) if failed else None)
    seconds = time.perf_counter() - start
    # the kernel's own kernelspec name is private to this run; save the portable one
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    if write and error is None:
        jupytext.write(nb, ipynb, fmt="ipynb")
    return seconds, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("only", nargs="*", help="run only notebooks whose names start so")
    parser.add_argument("--write", action="store_true", help="save outputs into the .ipynb")
    parser.add_argument("--quick", action="store_true", help="set DGLT_QUICK=1 (CI)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--seed", type=int, help="DGLT_SEED: the lessons' training seed")
    parser.add_argument("--record", type=Path, metavar="FILE",
                        help="run past failing cells; write the trained checks' values here")
    parser.add_argument("--dir", type=Path, default=HERE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.quick:
        os.environ["DGLT_QUICK"] = "1"
    if args.seed is not None:
        os.environ["DGLT_SEED"] = str(args.seed)
    if args.record is not None and len(args.only) != 1:
        parser.error("--record takes exactly one notebook")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # idle OpenMP threads sleep instead of spinning (much faster on a busy 2-core machine)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # pooch (Multi30k downloads) imports tqdm.auto, which warns in a kernel without ipywidgets;
    # the lessons show no progress bar, so the warning would only clutter lesson 5's output
    os.environ.setdefault("PYTHONWARNINGS", "ignore:IProgress not found")

    sources = lesson_sources(args.dir)
    if args.only:
        sources = [s for s in sources if any(s.name.startswith(o) for o in args.only)]
    if not sources:
        print("no notebooks selected", file=sys.stderr)
        return 2

    mode = "quick" if os.environ.get("DGLT_QUICK") == "1" else "default"
    seed = os.environ.get("DGLT_SEED", "0")
    print(f"running {len(sources)} notebook(s), mode={mode}, seed={seed}, write={args.write}",
          flush=True)
    failures, total = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        _private_kernelspec(Path(tmp))
        for source in sources:
            seconds, error = run_one(source, write=args.write, timeout=args.timeout,
                                     record=args.record)
            total += seconds
            status = "ok" if error is None else "FAILED"
            print(f"{source.stem:<40s} {seconds:7.1f} s  {status}", flush=True)
            if error is not None:
                failures.append(error)
    print(f"{'total':<40s} {total:7.1f} s", flush=True)
    for error in failures:
        print("\n" + error, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
