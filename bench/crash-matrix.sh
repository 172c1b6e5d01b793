#!/usr/bin/env bash
# Issue 19's crash-kill matrix: kill -9 of a berth command at a random moment of run -d,
# run --rm, rm -f, commit, load, pull, push, build and volume rm (pull and push against a
# docker-registry in the test's namespace), then the same command again, then
# `berth system check`, TRIALS times per operation; prints trials and failures per operation
# (a failure: the command again failed, or the check found corruption or a leak).
#
#   bench/crash-matrix.sh            (env: TRIALS=100 SEED=<u64> to replay a run)
#
# It is crates/cli/tests/crash.rs run with more trials (the test suite runs 4 per operation).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" -eq 0 ] || { echo "crash-matrix.sh: run as root" >&2; exit 1; }
export CRASH_TRIALS=${TRIALS:-100}
[ -n "${SEED:-}" ] && export CRASH_SEED=$SEED
cargo test -p berth-cli --test crash -- --nocapture 2>&1 | grep -E '^\||trial [0-9]+|test result'
