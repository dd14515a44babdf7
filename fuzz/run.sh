#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after another on one core, and prints a
# summary line per target: executions, seconds, crashes. Used by `make fuzz`.
#
#   FUZZ_SECONDS=60 bash fuzz/run.sh [TARGET...]
#
# cargo-fuzz drives libFuzzer and needs `-Zsanitizer=address`, a nightly-only flag. Only a
# stable toolchain can be installed here, so RUSTC_BOOTSTRAP=1 lets stable rustc accept the
# flag (the AddressSanitizer runtime ships with the stable x86_64-linux std). Release build
# with debug assertions (`-O -a`), so integer overflow panics as in `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"

CARGO=${CARGO:-cargo}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
CARGO_FUZZ_VERSION=0.13.2
ALL_TARGETS=(frame client_hello server_hello record_open request response event amount journal_scan journal_replay operator_command)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${ALL_TARGETS[@]}"); fi

if ! "$CARGO" fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION (from crates.io, built from source)"
    "$CARGO" install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

export RUSTC_BOOTSTRAP=1
echo "== building the fuzz targets"
"$CARGO" fuzz build -O -a
mkdir -p logs
summary=()
failed=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "seeds/$target"
    log="logs/$target.log"
    echo "== fuzzing $target for ${FUZZ_SECONDS}s (log: fuzz/$log)"
    started=$(date +%s)
    status=0
    # The first corpus directory receives new inputs; seeds/ is read-only input.
    "$CARGO" fuzz run -O -a "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - started ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$status" -eq 0 ]; then
        crashes="none"
    else
        failed=1
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        crashes="CRASH (exit $status) ${artifact:-see fuzz/$log}"
        tail -n 40 "$log"
    fi
    summary+=("$target: ${execs:-?} executions in ${elapsed}s, crashes: $crashes")
done

echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ), cargo-fuzz $("$CARGO" fuzz --version | awk '{print $2}'), $(rustc --version))"
printf '%s\n' "${summary[@]}"
exit "$failed"
