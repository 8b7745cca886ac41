# The two commands of the quickstart are `make demo` and `make test`; each creates .venv on a
# fresh machine with Python 3.11 and installs what it needs, so either works as the only command.
# Both first check the system packages (bubblewrap) with scripts/ensure-system-deps, which
# installs them as root or through passwordless sudo, and otherwise stops before .venv exists.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q

.PHONY: demo test lint unit bench install dev clean system-deps screenshots

# For demo and test the system check comes before the venv, also under `make -j`.
SYSTEM_DEPS := $(if $(filter demo test,$(MAKECMDGOALS)),system-deps)

$(BIN)/python: | $(SYSTEM_DEPS)
	$(PYTHON) -m venv $(VENV)

system-deps:  # the browser only for the tests (the dashboard's are in a real chromium)
	@scripts/ensure-system-deps bubblewrap $(if $(filter test,$(MAKECMDGOALS)),chromium)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev,cluster,ml]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

demo: system-deps $(VENV)/.installed
	$(BIN)/python -m compileall -q src
	$(BIN)/pasar devnet demo

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

# Byte-compiled once up front: where PYTHONDONTWRITEBYTECODE is set no import writes a .pyc, so
# every market, provider, CLI and sandboxed job the tests start would compile pasar's sources
# again (~50 ms of each start); an up-to-date .pyc is read either way, a stale one ignored.
# Two workers by default (TEST_WORKERS=0 runs serially): most of the suite waits on real
# markets, providers and sandboxes, so two files at once finish sooner even on two cores; each
# file runs whole on one worker (--dist loadfile), its module fixtures once. (Two Ray clusters
# at once do not meet: each gang has a network namespace of its own.)
TEST_WORKERS ?= 2

unit: $(VENV)/.dev-installed
	$(BIN)/python -m compileall -q src
	$(BIN)/pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

test: system-deps lint unit

bench: $(VENV)/.dev-installed
	@for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

# the dashboard's pages as docs/screenshots/*.png (a local devnet, a few jobs, chromium)
screenshots: $(VENV)/.dev-installed
	@scripts/ensure-system-deps bubblewrap chromium
	$(BIN)/python scripts/dashboard_screenshots.py docs/screenshots

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-out
