# dsaccess: make install | run | test | integration | bench | lint
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out
SAMPLE := tests/fixtures/real389

.PHONY: install system-deps run test unit integration bench lint check clean

# Debian packages the real-component tests use: OpenSSH's sshd (collect over SFTP),
# Chromium (the report in a real browser) and promtool (from prometheus: metrics.prom).
SYSTEM_PACKAGES := openssh-server chromium prometheus
SYSTEM_COMMANDS := /usr/sbin/sshd /usr/bin/chromium /usr/bin/promtool

$(BIN)/dsaccess: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/dsaccess  ## virtualenv + editable install with the dev extras

system-deps:  ## install the Debian packages above when root with apt (else those tests skip)
	@missing=""; for c in $(SYSTEM_COMMANDS); do [ -x $$c ] || missing=1; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); \
	else echo "not root or no apt-get: tests needing $(SYSTEM_PACKAGES) will be skipped"; fi

run: install  ## the main job on the bundled sample (two real 389 DS 2.3.1 servers) into $(OUT)/
	$(BIN)/dsaccess run $(SAMPLE) -o $(OUT)

test: install system-deps  ## every test: real sshd, real Dask worker processes, no network
	$(BIN)/pytest -q

unit: install
	$(BIN)/pytest -q -m "not integration"

integration: install system-deps  ## tests marked integration only
	$(BIN)/pytest -q -m integration

bench: install  ## throughput (MB/s, lines/s), peak memory and scaling against in-run baselines
	$(BIN)/python tests/bench/bench.py

lint: install
	$(BIN)/ruff check pipeline tests
	$(BIN)/pytest -q tests/test_architecture.py

check: lint test

clean:
	rm -rf $(VENV) $(OUT) bench-data
