# Two commands on a fresh machine: `make run` (API + one worker on SQLite) and `make test`.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
BIN := $(VENV)/bin
# Exact versions with hashes: make install, CI and the Docker image install the same packages.
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
PIP := $(BIN)/pip --quiet --disable-pip-version-check

.PHONY: install run test lint lock clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml requirements/test.lock | $(BIN)/activate
	$(PIP) install --require-hashes -r requirements/test.lock
	$(PIP) install --no-deps -e .
	touch $@

install: $(VENV)/.installed

# The API and one worker in the foreground. Ctrl-C reaches both processes by itself (the worker
# then hands its job back); a SIGTERM to this recipe is passed on to them once. The schema is
# upgraded first: the worker refuses to start on a database the API has not upgraded yet.
# --loop asyncio: uvloop accepts one new connection per turn of its loop, so under load new
# clients waited up to 0.8 s for their first answer (BENCHMARKS.md, "Fast under load").
run: install
	$(BIN)/python -m app.migrations upgrade
	@trap 'wait' INT; trap 'kill -TERM $$api $$worker 2>/dev/null; wait' TERM; \
	$(BIN)/python -m worker & worker=$$!; \
	$(BIN)/uvicorn app.main:app --loop asyncio --host $(HOST) --port $(PORT) & api=$$!; \
	wait

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install lint
	$(BIN)/python -m pytest

# After a change to pyproject.toml's dependencies, or to take newer releases: the one command
# that refreshes both locks (Linux x86_64, Python 3.11: the image's and CI's platform).
lock: | $(BIN)/activate
	$(PIP) install 'pip-tools>=7.4'
	cd requirements && ../$(BIN)/pip-compile $(LOCK_FLAGS) --extra test -o test.lock ../pyproject.toml
	cd requirements && ../$(BIN)/pip-compile $(LOCK_FLAGS) --extra export -o runtime.lock ../pyproject.toml runtime.in

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
