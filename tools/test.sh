#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, runs every test target
# (unit tests, hostile-input tests, real-peer tests with dpdk-testpmd and QEMU
# guests — those skip with a one-line reason when run without root or a peer),
# then runs each fuzz target briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
log=$(mktemp)
if ! swift build --build-tests >"$log" 2>&1; then tail -60 "$log"; echo "build failed"; exit 1; fi
grep -E "warning:|Build complete" "$log" | sort -u | tail -20 || true
# The system tests run the binaries this build made.
export SLUICE_BIN_DIR="$PWD/.build/debug"
set +e
swift test --skip-build --disable-swift-testing 2>&1 | tee .build/test-output.txt | grep -vE "^Test Case '.*' (started|passed)"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then echo "swift test failed ($status)"; exit "$status"; fi
if [ -x tools/fuzz/run.sh ]; then
  FUZZ_SECONDS="${FUZZ_SECONDS:-30}"   # a smoke run per target; the long runs happen while working
  bash tools/fuzz/run.sh "$FUZZ_SECONDS" || { echo "fuzzing found a crash"; exit 1; }
fi
# One plain closing line: N passed, N failed, N skipped (from XCTest's summary).
summary=$(grep -E "Executed [0-9]+ tests?, with" .build/test-output.txt | tail -1)
total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
skipped=$(echo "$summary" | grep -oE '[0-9]+ tests? skipped' | grep -oE '^[0-9]+' || echo 0)
failed=$(echo "$summary" | grep -oE '[0-9]+ failures?' | grep -oE '^[0-9]+' || echo 0)
echo "$((total - skipped - failed)) passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
