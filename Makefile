# `make run` and `make test` each build .venv from nothing when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ganmgr

test: $(STAMP)
	$(BIN)/ruff check tui engine store tests bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check tui engine store tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.train_speed
	$(BIN)/python -m bench.tui all

clean-venv:
	rm -rf $(VENV)
