#!/usr/bin/env bash
# Issue 19's fuzzing: every target of fuzz/ (one per parser that takes outside input) under
# libFuzzer, each for SECS seconds, starting from the committed corpus (fuzz/corpus/TARGET).
#
#   bench/fuzz.sh [TARGET...]       (default: every target; env: SECS=60 JOBS=1)
#
# Needs a nightly toolchain and cargo-fuzz (installed here when missing:
# `rustup toolchain install nightly`, `cargo install cargo-fuzz`). New inputs libFuzzer finds
# go to fuzz/corpus/TARGET (keep the interesting ones); a crash stops that target and leaves
# its input in fuzz/artifacts/TARGET/: fix it, then add the input to the corpus, where
# fuzz/tests/smoke.rs (stable, in .ci/run) runs it from then on. Prints a table of targets,
# runs, and findings.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECS=${SECS:-60}; JOBS=${JOBS:-1}
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
results=()
for t in "${targets[@]}"; do
    log=$(mktemp)
    # -s none: no sanitizer. The ASan build does not link with this machine's nightly
    # (undefined __sancov_gen_* symbols); the code under test is safe Rust, where ASan adds
    # little, and libFuzzer's coverage guidance works without it.
    if cargo +nightly fuzz run -s none --fuzz-dir fuzz --features libfuzzer "$t" fuzz/corpus/"$t" -- \
        -max_total_time="$SECS" -jobs="$JOBS" -workers="$JOBS" -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status="CRASH (fuzz/artifacts/$t)"
    fi
    # libFuzzer's -jobs workers log into fuzz-N.log in the current directory.
    cat fuzz-[0-9]*.log >>"$log" 2>/dev/null || true
    rm -f fuzz-[0-9]*.log
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    results+=("| $t | ${runs:-?} | $status |")
    [ "$status" = ok ] || tail -30 "$log" >&2
    rm -f "$log"
done
echo "| target | executions in ${SECS}s | result |"
echo "|---|---|---|"
printf '%s\n' "${results[@]}"
