# The README's two commands, each doing its own set-up on a fresh machine:
#   make run    the main job (the default, laptop-sized workflow)
#   make test   the test suite
# make run SEEDS=0,1,2 trains every ALFI and amortised model with those seeds instead of
# config.yaml's (the README's columns over seeds); more seeds are more jobs on the same results.
# The environment (.venv) is made on first use and remade when pyproject.toml changes. Without a
# CUDA device the pinned CPU build of torch goes in first (an unpinned torch pulls a multi-GB
# CUDA build); with one, pip picks a CUDA build within pyproject's range. The baselines extra
# (sbi) is included, so both commands can run every method.

VENV ?= .venv
PYTHON ?= python3
CPU_TORCH ?= torch==2.13.0
READY := $(VENV)/.ready
SEEDS ?=

.PHONY: run test env clean-results

run: $(READY)
	$(VENV)/bin/snakemake --cores all $(if $(SEEDS),--config "seeds=[$(SEEDS)]")

# Two workers, one test file each at a time: the SLURM and rerun files (minutes each, mostly
# waiting on job start-up and status polls) start first, one per worker, the others behind them
# (tests/conftest.py collects them first; --no-loadscope-reorder, pytest-xdist >= 3.8, keeps
# xdist from moving the files with few tests last).
test: $(READY)
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

env: $(READY)

$(READY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then \
		$(VENV)/bin/python -m pip install -q "$(CPU_TORCH)"; fi
	$(VENV)/bin/python -m pip install -q -e ".[workflow,dev,baselines]"
	touch $@

clean-results:
	rm -rf results
