# dsaccess: make install | run | test | integration | bench | lint
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out
SAMPLE := tests/fixtures/real389

.PHONY: install run test unit integration bench lint check clean

$(BIN)/dsaccess: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/dsaccess  ## virtualenv + editable install with the dev extras

run: install  ## the main job on the bundled sample (two real 389 DS 2.3.1 servers) into $(OUT)/
	$(BIN)/dsaccess run $(SAMPLE) -o $(OUT)

test: install  ## every test that needs no network (real Dask processes included)
	$(BIN)/pytest -q

unit: install
	$(BIN)/pytest -q -m "not integration"

integration: install  ## tests marked integration only
	$(BIN)/pytest -q -m integration

bench: install  ## throughput (MB/s, lines/s), peak memory and scaling against in-run baselines
	$(BIN)/python tests/bench/bench.py

lint: install
	$(BIN)/ruff check pipeline tests
	$(BIN)/pytest -q tests/test_architecture.py

check: lint test

clean:
	rm -rf $(VENV) $(OUT) bench-data
