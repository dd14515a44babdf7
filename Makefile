# securebank — the commands a newcomer needs.
#   make run-server   start the bank (creates ./bank-data and two demo accounts on first run)
#   make run-client   start the interactive client (in a second terminal)
#   make test         run every test
#   make check        formatting, lints and tests (what CI runs)
#   make bench        measure throughput and latency (see BENCHMARKS.md)
#   make sim          the crash simulator with 1,000 seeds (make test runs 40)
# Watch the protocol: make run-server TRACE=1, make run-client TRACE=1 (or TRACE=bytes).

CARGO ?= cargo
DATA ?= ./bank-data
ADDR ?= 127.0.0.1:7878
TRACE ?=
TRACE_FLAG := $(if $(filter bytes,$(TRACE)),--trace=bytes,$(if $(TRACE),--trace,))

.PHONY: run-server run-client test check fmt clippy bench

run-server:
	$(CARGO) run --release --quiet --bin bank-server -- --data $(DATA) --listen $(ADDR) --demo-accounts $(TRACE_FLAG)

run-client:
	$(CARGO) run --release --quiet --bin bank-client -- --connect $(ADDR) $(TRACE_FLAG)

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
