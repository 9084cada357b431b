#!/bin/bash
# usage: repro/results/staging/land.sh   (from the repository root, once every config has its record)
# Landing steps 1-3 and the split's patch (STAGING.md): the staged records replace the
# wall-clock ones, the verdicts and the README section are regenerated, the recorded-runs test
# moves in, and the docs edits of the lesson split apply. Steps 4-7 (drafts, times, audit,
# cold reads, tests) stay by hand. Stops at the first failure. Deleted with the staging folder.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
staging=repro/results/staging
exp=repro/results/experiments
py=.venv/bin/python
export MULTI30K_DIR=${MULTI30K_DIR:-/work/shared/data/multi30k} PYTHONPATH=. MPLBACKEND=Agg

# every config has its record, and the code the runs used is the code of the freeze
missing=$(for f in repro/experiments/[!_]*.yaml; do
  n=$(basename "$f" .yaml); [ -f "$staging/$n.json" ] || echo "$n"; done)
[ -z "$missing" ] || { echo "land.sh: no staged record for: $missing" >&2; exit 1; }
changed=$(git diff --name-only b48059d -- dgl_transformer 'repro/*.py' repro/report repro/configs \
  ':!repro/results/staging')
[ -z "$changed" ] || { echo "land.sh: code changed since the runs began: $changed" >&2; exit 1; }

# 1. the staged records replace the wall-clock ones
git rm -r -q "$exp"
mkdir -p "$exp"
for p in "$staging"/*; do
  case "$(basename "$p")" in
    drafts|*.md|*.sh|*.py|*.patch) ;;
    *) git mv "$p" "$exp/" ;;
  esac
done

# 2. verdicts, README section, figures
$py -m repro.essay
$py -m repro.report experiments

# 3. the recorded-runs test that also checks every experiment record against its config
cp "$staging/test_recorded_runs.py" tests/
$py -m pytest -q tests/test_recorded_runs.py

# the split's docs edits (fill TIME7/TIME8 and the totals by hand, from run_notebooks)
git apply "$staging/split_docs.patch"
git status --short | head -40
echo "land.sh: steps 1-3 done; next: STAGING.md step 4 (drafts), then 5-7"
