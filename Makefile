# kefu: `make run` starts kefu with demo data; `make test` runs every test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint format bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("kefu needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kefu run --demo

# TEST_ARGS go to scripts/run_tests.py, e.g. make test TEST_ARGS="--only embedded -- -x"
test: $(STAMP)
	$(BIN)/python scripts/run_tests.py $(TEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check kefu tests bench scripts
	$(BIN)/ruff format --check kefu tests bench scripts
	$(BIN)/mypy kefu

format: $(STAMP)
	$(BIN)/ruff format kefu tests bench scripts
	$(BIN)/ruff check --fix kefu tests bench scripts

clean:
	rm -rf $(VENV) var
