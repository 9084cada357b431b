"""``python -m repro.report [repro] [experiments] [benchmarks]``: regenerate the documents'
generated sections and figures from the result files (all of them by default)."""

import argparse
import sys

from .benchmarks import BENCH_JSON, read_bench_results, update_benchmarks, update_viewer_section
from .experiments import EXPERIMENT_RESULTS, update_experiments_section
from .repro_results import REPRO_README, REPRO_RESULTS, update_readme

UPDATES = {
    "repro": lambda: update_readme(REPRO_RESULTS, REPRO_README),
    "experiments": lambda: update_experiments_section(EXPERIMENT_RESULTS, REPRO_README),
    "benchmarks": lambda: update_benchmarks(read_bench_results(BENCH_JSON)),
    "viewer": update_viewer_section,  # its section of BENCHMARKS.md only
}

parser = argparse.ArgumentParser(prog="python -m repro.report", description=__doc__)
parser.add_argument("documents", nargs="*", metavar="{" + ",".join(UPDATES) + "}")
documents = parser.parse_args().documents or list(UPDATES)
unknown = [name for name in documents if name not in UPDATES]
if unknown:
    parser.error(f"unknown document {', '.join(unknown)} (known: {', '.join(UPDATES)})")
try:
    for name in documents:
        UPDATES[name]()
except OSError as err:  # no results, or nowhere to write (run from the repository's root)
    sys.exit(f"error: {err}")
