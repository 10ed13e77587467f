# Two commands on a fresh machine: `make run` (API + one worker on SQLite) and `make test`.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
BIN := $(VENV)/bin

.PHONY: install run test lint clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The API and one worker in the foreground; Ctrl-C stops both (the worker hands its job back).
run: install
	@trap 'kill -TERM $$api $$worker 2>/dev/null; wait' INT TERM; \
	$(BIN)/python -m worker & worker=$$!; \
	$(BIN)/uvicorn app.main:app --host $(HOST) --port $(PORT) & api=$$!; \
	wait

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
