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

.PHONY: setup test unit lint notebooks data repro bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --user --name dgl-transformer --display-name "dgl-transformer" >/dev/null
	$(PY) -c "import dgl_transformer, dgl, torch; print('dgl', dgl.__version__, 'torch', torch.__version__)"
	touch $@

test: unit notebooks

unit:
	$(WAIT) OMP_NUM_THREADS=$(THREADS) $(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check dgl_transformer tests repro notebooks/*.py

notebooks:
	$(WAIT) OMP_NUM_THREADS=$(THREADS) $(PY) notebooks/run_notebooks.py

data:
	$(PY) -m dgl_transformer.mt.data --dest data/multi30k

repro:
	OMP_NUM_THREADS=$(THREADS) $(PY) -m repro.run --config $(CONFIG)

bench:
	OMP_NUM_THREADS=$(THREADS) $(PY) -m repro.bench

clean:
	rm -rf $(VENV) runs .pytest_cache
