# securebank — the commands a newcomer needs.
#   make run-server   start the bank (creates ./bank-data and two demo accounts on first run)
#   make run-client   start the interactive client (in a second terminal)
#   make test         run every test
#   make check        formatting, lints and tests (what CI runs)
#   make bench        measure throughput and latency (see BENCHMARKS.md)
#   make sim          the crash simulator with 1,000 seeds (make test runs 40)
# Watch the protocol: make run-server TRACE=1, make run-client TRACE=1 (or TRACE=bytes).
# Operator commands on ./bank-data (through the running server when one runs):
#   make add-account NAME=bob [DEPOSIT=25.00]   make unlock NAME=bob   make stats
#   make verify   make checkpoint   make stop-server   make forget (the client's pin for ADDR)

CARGO ?= cargo
DATA ?= ./bank-data
ADDR ?= 127.0.0.1:7878
TRACE ?=
TRACE_FLAG := $(if $(filter bytes,$(TRACE)),--trace=bytes,$(if $(TRACE),--trace,))
# Where cargo puts the release binaries (CARGO_TARGET_DIR if set, as cargo does).
BIN := $(or $(CARGO_TARGET_DIR),target)/release

.PHONY: run-server run-client test check fmt clippy bench build-server build-client
.PHONY: add-account unlock stats verify checkpoint stop-server forget

# Build with cargo's progress shown (the first build takes a while), then `exec` the
# binary in place of the shell: Ctrl-C reaches the program, which exits cleanly.
run-server: build-server
	@exec $(BIN)/bank-server --data $(DATA) --listen $(ADDR) --demo-accounts $(TRACE_FLAG)

run-client: build-client
	@exec $(BIN)/bank-client --connect $(ADDR) $(TRACE_FLAG)

build-server:
	$(CARGO) build --release --bin bank-server

build-client:
	$(CARGO) build --release --bin bank-client

add-account: build-server
	@test -n "$(NAME)" || { echo "usage: make add-account NAME=bob [DEPOSIT=25.00]" >&2; exit 2; }
	@exec $(BIN)/bank-server add-account $(NAME) --data $(DATA) $(if $(DEPOSIT),--deposit $(DEPOSIT))

unlock: build-server
	@test -n "$(NAME)" || { echo "usage: make unlock NAME=bob" >&2; exit 2; }
	@exec $(BIN)/bank-server unlock $(NAME) --data $(DATA)

stats verify checkpoint: build-server
	@exec $(BIN)/bank-server $@ --data $(DATA)

stop-server: build-server
	@exec $(BIN)/bank-server stop --data $(DATA)

forget: build-client
	@exec $(BIN)/bank-client forget $(ADDR)

test:
	$(CARGO) test --locked --all-targets

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --locked --all-targets -- -D warnings

check: fmt clippy test

bench:
	$(CARGO) run --release --locked --bin bank-bench --

# ---- Hardening: fuzzing and the dependency audit (see FUZZING.md) ----
.PHONY: fuzz audit

FUZZ_SECONDS ?= 60

# Every fuzz target for FUZZ_SECONDS each, one at a time; installs cargo-fuzz if missing.
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) CARGO=$(CARGO) bash fuzz/run.sh

# Every crate in the dependency tree must be allow-listed, with an allowed licence.
audit:
	python3 scripts/audit.py

# ---- The crash simulator at length (tests/simulated_disk.rs; `make test` runs 40 seeds) ----
.PHONY: sim

SIM_SEEDS ?= 1000

sim:
	SIM_SEEDS=$(SIM_SEEDS) $(CARGO) test --release --locked --test simulated_disk -- --nocapture
