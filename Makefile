# dsaccess: make install | run | test | integration | bench | lint
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out
SAMPLE := tests/fixtures/real389

.PHONY: install build-deps system-deps ds-deps run test unit integration bench fuzz lint check clean

# Debian packages the real-component tests use: OpenSSH's sshd (collect over SFTP),
# Chromium (the report in a real browser) and promtool (from prometheus: metrics.prom).
SYSTEM_PACKAGES := openssh-server chromium prometheus
SYSTEM_COMMANDS := /usr/sbin/sshd /usr/bin/chromium /usr/bin/promtool

# The compiled core (rust/): maturin builds it into pipeline/_core*.so on install; any
# change to its sources or manifests rebuilds it.
RUST_SOURCES := $(shell find rust -name '*.rs' -o -name 'Cargo.toml' -o -name 'Cargo.lock' \
                  | grep -v -e '^rust/target/' -e '^rust/fuzz/')

# What python-ldap (the exporter's LDAP client) compiles against.
BUILD_PACKAGES := libldap-dev libsasl2-dev
BUILD_HEADERS := /usr/include/ldap.h /usr/include/sasl/sasl.h

build-deps:  ## install the C headers python-ldap builds against, when root with apt
	@missing=""; for h in $(BUILD_HEADERS); do [ -e $$h ] || missing=1; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BUILD_PACKAGES); \
	else echo "not root or no apt-get: install $(BUILD_PACKAGES) for python-ldap"; fi

# --no-build-isolation (below) builds every sdist with the venv's own tools: python-ldap
# ships as one, and Python 3.11's bundled setuptools (65) cannot make a wheel of it
# without the `wheel` package (setuptools has bdist_wheel itself from 70.1).
$(BIN)/maturin:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'maturin>=1.7,<2' 'setuptools>=70.1'

$(BIN)/dsaccess: pyproject.toml $(RUST_SOURCES) | $(BIN)/maturin build-deps
	$(BIN)/pip install --quiet --no-build-isolation -e '.[dev]'
	@touch $@

install: $(BIN)/dsaccess  ## virtualenv + editable install with the dev extras (builds rust/)

system-deps:  ## install the Debian packages above when root with apt (else those tests skip)
	@missing=""; for c in $(SYSTEM_COMMANDS); do [ -x $$c ] || missing=1; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); \
	else echo "not root or no apt-get: tests needing $(SYSTEM_PACKAGES) will be skipped"; fi

# The whole-chain test also needs real 389 Directory Servers and their LDAP tools, and the
# exporter's test systemd-analyze (to verify its unit).
DS_PACKAGES := 389-ds-base ldap-utils python3-ldap python3-lib389 tzdata systemd

ds-deps: system-deps  ## install 389-ds-base and friends when root with apt (else skipped)
	@if [ -x /usr/sbin/ns-slapd ] && /usr/bin/python3 -c "import lib389, ldap" 2>/dev/null; \
	then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DS_PACKAGES); \
	else echo "not root or no apt-get: the 389 DS integration test will be skipped"; fi

run: install  ## the main job on the bundled sample (two real 389 DS 2.3.1 servers) into $(OUT)/
	$(BIN)/dsaccess run $(SAMPLE) -o $(OUT)

test: install system-deps  ## every test but the 389 DS chain: real sshd, Dask processes, Chromium
	cargo test --quiet --release --manifest-path rust/Cargo.toml --workspace --exclude dsaccess-python
	$(BIN)/pytest -q -m "not ds389"

unit: install
	cargo test --quiet --release --manifest-path rust/Cargo.toml --workspace --exclude dsaccess-python
	$(BIN)/pytest -q -m "not integration and not ds389"

integration: install ds-deps  ## real 389 DS servers → sshd → collect → Dask cluster → report
	$(BIN)/pytest -q -m ds389 -rs tests/integration

bench: install ds-deps  ## throughput, memory, scaling; baselines: naive Python, logconv -V (389-ds-base)
	cargo build --quiet --release --manifest-path rust/Cargo.toml --example tokenize_file --example join_file --example shuffle_file --example route_file
	$(BIN)/python tests/bench/bench.py

FUZZ_SECONDS ?= 120
FUZZ := cd rust/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --release

fuzz: install  ## cargo fuzz: tokenizer + join + shuffle, the JSON tokenizer, the filter parser, damaged shuffle files, routing and routed files (not in CI)
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	$(BIN)/python tests/fuzz_seeds.py rust/fuzz/corpus
	$(FUZZ) tokenize corpus/tokenize -- -max_total_time=$(FUZZ_SECONDS)
	$(FUZZ) json corpus/json -- -max_total_time=$(FUZZ_SECONDS)
	$(FUZZ) filter corpus/filter -- -max_total_time=$(FUZZ_SECONDS)
	$(FUZZ) shuffle corpus/shuffle -- -max_total_time=$(FUZZ_SECONDS)
	$(FUZZ) route corpus/route -- -max_total_time=$(FUZZ_SECONDS)

lint: install
	cargo clippy --quiet --release --manifest-path rust/Cargo.toml --workspace -- -D warnings
	$(BIN)/ruff check pipeline tests
	$(BIN)/pytest -q tests/test_architecture.py

check: lint test

clean:
	rm -rf $(VENV) $(OUT) bench-data rust/target pipeline/_core*.so
