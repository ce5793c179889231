# Two commands do all the set-up on a fresh machine with python3 and the package registries:
#   make demo   builds the demo city packs if missing, imports the bundled incidents into an
#               embedded SQLite database and starts the service; options of `citywatch demo`
#               go in ARGS, e.g. make demo ARGS="--pack shenzhen --port 8080 --no-feed"
#   make test   runs the whole test suite with ruff and mypy
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench lock clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

ARGS ?=

demo: $(STAMP)
	$(BIN)/citywatch demo $(ARGS)

test: $(STAMP)
	bash scripts/test-setup.sh
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy src/citywatch
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock:
	$(PYTHON) -m pip install --quiet uv && $(PYTHON) -m uv pip compile pyproject.toml --extra dev \
		--universal --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
