# dgl-transformer: two commands to start, `make setup` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
THREADS ?= 2
CONFIG ?= repro/configs/default.yaml
# Tests run with idle OpenMP threads sleeping instead of spinning: on a shared 2-core machine,
# spinning threads of torch and DGL competing with other processes made steps up to 10x slower.
# `make repro` keeps OpenMP's default; on a busy machine run it with OMP_WAIT_POLICY=PASSIVE.
# `make bench` compares the policies.
WAIT := OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE}

.PHONY: setup browser test unit integration lint notebooks audit lab data repro experiments bench site site-build clean

setup: $(VENV)/.installed browser

# The attention viewer's tests drive Debian's Chromium and ChromeDriver (never a downloaded
# browser): installed here where apt-get can (as root), else one line says how to get them.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	elif command -v apt-get >/dev/null; then \
	  echo "make setup: the viewer's tests need Chromium: sudo apt-get install chromium chromium-driver"; \
	else echo "make setup: the viewer's tests need Chromium and ChromeDriver at /usr/bin/chromium and /usr/bin/chromedriver (e.g. Debian's chromium and chromium-driver packages)"; fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --user --name dgl-transformer --display-name "dgl-transformer" >/dev/null
	$(PY) -c "import dgl_transformer, dgl, torch; print('dgl', dgl.__version__, 'torch', torch.__version__)"
	touch $@

test: unit integration notebooks

# Unit tests read Multi30k too (data, text, training): fetch it first.
unit: data
	$(WAIT) OMP_NUM_THREADS=$(THREADS) $(PY) -m pytest -q -m "not integration"

# End-to-end runs of whole commands (`make experiments` on a one-minute schedule).
integration: data
	$(WAIT) OMP_NUM_THREADS=$(THREADS) $(PY) -m pytest -q -m integration

lint:
	$(VENV)/bin/ruff check dgl_transformer tests repro notebooks/*.py

# Lesson 5 reads Multi30k, so the notebooks first make sure it is there (see `data`).
notebooks: data
	$(WAIT) OMP_NUM_THREADS=$(THREADS) $(PY) notebooks/run_notebooks.py

# The course in JupyterLab, running the project's venv (its `python3` kernel is the venv's).
lab: setup
	$(VENV)/bin/python -m jupyterlab notebooks/

# How much each trained check of the lessons and unit tests varies: every check over seeds 0-4
# and three CPU code paths, in both modes (hours on 2 cores; a recorded run is kept and skipped).
# Writes notebooks/audit.json and the table in notebooks/README.md.
audit: data
	$(WAIT) OMP_NUM_THREADS=1 $(PY) notebooks/audit.py --jobs $(THREADS)

# Multi30k task 1 (en, de, fr, cs; train, val, test 2016; raw and tokenised): fetched and
# checked against the SHA-256 sums shipped in dgl_transformer/mt/checksums/ into data/multi30k.
# Nothing to do when MULTI30K_DIR names a local copy (lesson 5 reads it there; `make repro`
# copies it from there) or when every file is already here (each read verifies its checksum
# again).
MULTI30K := data/multi30k
M30K_FILES := $(foreach split,train val test_2016_flickr,$(foreach lang,en de fr cs,\
	$(MULTI30K)/raw/$(split).$(lang).gz $(MULTI30K)/tok/$(split).lc.norm.tok.$(lang).gz))

data:
	@if [ -n "$$MULTI30K_DIR" ]; then \
	  echo "make data: nothing to do, MULTI30K_DIR=$$MULTI30K_DIR"; \
	elif ls $(M30K_FILES) >/dev/null 2>&1; then \
	  echo "make data: nothing to do, Multi30k is in $(MULTI30K)"; \
	else \
	  $(VENV)/bin/dgl-transformer data --dest $(MULTI30K); \
	fi

# THREADS sets the run's train.threads too (the config's value is only its default).
repro:
	OMP_NUM_THREADS=$(THREADS) $(PY) -m repro.run --config $(CONFIG) --set train.threads=$(THREADS)

# The essay's questions: one short run per repro/experiments/*.yaml; a finished one is skipped.
experiments:
	OMP_NUM_THREADS=$(THREADS) $(PY) -m repro.experiments --set train.threads=$(THREADS)

bench:
	OMP_NUM_THREADS=$(THREADS) $(PY) -m repro.bench

# The course (committed notebooks with their outputs and live attention viewers), the results
# and the benchmarks as a static website in site/ (mkdocs.yml), offline: open site/index.html,
# or serve it with `python -m http.server -d site`. Needs the venv only (no browser, no
# network once it is installed).
site: $(VENV)/.installed
	@$(MAKE) --no-print-directory site-build

# The build alone, with any Python that has the `site` extra's pins: the GitHub Pages
# workflow (.github/workflows/pages.yml) runs `make site-build PY=python`.
site-build:
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --clean --site-dir site

clean:
	rm -rf $(VENV) runs .pytest_cache
