#!/bin/bash
# usage: repro/results/staging/smoke.sh NN [MOCK]
# Runs the lesson draft drafts/NN_*.py as a script on a copy of the tree (MOCK, default
# /tmp/mockNN) whose repro/results/experiments/ holds the staged records only (what is staged
# so far; the wall-clock records are removed). Exit status: the lesson's.
set -euo pipefail
src=/work/main
n=$1
mock=${2:-/tmp/mock$n}
rm -rf "$mock"; mkdir -p "$mock"
cd "$src"
git ls-files -z | xargs -0 cp --parents -t "$mock"
git ls-files -z --others --exclude-standard | xargs -0 -r cp --parents -t "$mock"
ln -s "$src/.venv" "$mock/.venv"
exp="$mock/repro/results/experiments"
rm -rf "$exp"; mkdir -p "$exp"
(cd repro/results/staging && find . -maxdepth 1 -mindepth 1 ! -name drafts ! -name '*.md' ! -name '*.sh' ! -name '*.py' -exec cp -r {} "$exp/" \;)
# MOCK07=1: fill the configs without a record with mock07.py's fakes (code paths only)
[ "${MOCK07:-0}" = 1 ] && PYTHONPATH="$src" .venv/bin/python repro/results/staging/mock07.py "$exp"
draft=$(ls repro/results/staging/drafts/${n}_*.py)
cp "$draft" "$mock/notebooks/"
cd "$mock"
export PYTHONPATH="$mock" MPLBACKEND=Agg MULTI30K_DIR=${MULTI30K_DIR:-/work/shared/data/multi30k}
exec .venv/bin/python "notebooks/$(basename "$draft")"
