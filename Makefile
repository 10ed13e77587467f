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

# The API and one worker in the foreground. Ctrl-C reaches both processes by itself (the worker
# then hands its job back); a SIGTERM to this recipe is passed on to them once.
run: install
	@trap 'wait' INT; trap 'kill -TERM $$api $$worker 2>/dev/null; wait' TERM; \
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
