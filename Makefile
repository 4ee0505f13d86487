# syncd — developer entry points. Every target sets up .venv itself on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

PROFILE ?= device

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/syncd demo --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/pytest -q -n auto --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check syncd tests
	$(BIN)/mypy syncd

bench: $(STAMP)
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
