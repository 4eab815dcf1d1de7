# The README's commands (.ci/run runs the same).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo install test test-fast lint typecheck bench

$(BIN)/newsflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/newsflow

demo: install
	$(BIN)/newsflow demo

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n 2

# Everything that needs neither the Prefect engine's server nor a CLI process, on both cores;
# tests/conftest.py marks the engine's tests and fails a CLI process started here.
test-fast: install
	NEWSFLOW_TEST_LANE=fast $(BIN)/pytest -q -m "not slow and not engine" -n 2

# mypy cannot follow setuptools' editable-install finder, so it checks the namespace through a
# folder of symlinks laid out as the installed package is (pyproject's package-dir).
typecheck: install
	rm -rf build/mypy && mkdir -p build/mypy/newsflow
	ln -s $(CURDIR)/newsflow/__init__.py $(CURDIR)/newsflow/cli $(CURDIR)/newsflow/runtime \
		$(CURDIR)/newsflow/demo $(CURDIR)/flows $(CURDIR)/tasks $(CURDIR)/schemas \
		$(CURDIR)/deployments build/mypy/newsflow/
	MYPYPATH=build/mypy $(BIN)/mypy -p newsflow

bench: install
	$(BIN)/python benchmarks/ingest.py
