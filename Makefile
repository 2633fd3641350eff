# `make run` and `make test` each build .venv from nothing when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint bench mutation clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ganmgr

test: $(STAMP)
	$(BIN)/ruff check tui engine store tests bench
	# the layering contracts in pyproject.toml (tui -> store, engine.control; compute needs no database...)
	$(BIN)/lint-imports
	# Debian's slurmctld/slurmd/slurm-client for the tests marked slurm (root with apt-get only; elsewhere
	# it says why those tests will skip, and always exits 0)
	$(BIN)/python -m tests.slurm_cluster --install
	$(BIN)/python -m pytest -q --durations=25

# everything but the tests marked slow, slurm or gpu (`make test` runs them all); under 3 minutes on 2 cores
test-fast: $(STAMP)
	$(BIN)/ruff check tui engine store tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow and not slurm and not gpu"

lint: $(STAMP)
	$(BIN)/ruff check tui engine store tests bench
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench.train_speed
	$(BIN)/python -m bench.tui all
	$(BIN)/python -m bench.liveness

# mutation testing of the science core (not part of `make test`): per-module shards with one worker, resumable
# (run it again to continue; `$(BIN)/python -m bench.mutation --report --diffs` shows the survivors)
mutation: $(STAMP)
	nice -n 19 $(BIN)/python -m bench.mutation $(SHARDS)

clean-venv:
	rm -rf $(VENV)
