#!/usr/bin/env bash
# Runs every Go fuzz target (func FuzzXxx in a _test.go file) in the repository for $FUZZTIME
# each (default 10s), one after the other, and prints each target's executions. A crash stops
# the run: go test writes the failing input under the package's testdata/fuzz/<target>/, to be
# committed with the fix. FUZZ_PARALLEL sets the fuzzing workers (default: GOMAXPROCS);
# FUZZMINTIME bounds the minimization of each new interesting input (default 2s: go's 1m
# default would spend a short run minimizing, which go test does not count as executions).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
mintime=${FUZZMINTIME:-2s}
parallel=()
if [ -n "${FUZZ_PARALLEL:-}" ]; then parallel=(-parallel "$FUZZ_PARALLEL"); fi
total=0
targets=0
while IFS=: read -r file name; do
  pkg=./$(dirname "$file")
  log=$(mktemp /tmp/peapod-fuzz-XXXXXX.log)
  echo "fuzz $pkg $name for $fuzztime"
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$mintime" "${parallel[@]}" "$pkg" >"$log" 2>&1; then
    cat "$log"
    echo "FAIL: $name in $pkg (log: $log)"
    exit 1
  fi
  execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+' || echo 0)
  echo "  $execs executions, no crash"
  total=$((total + execs))
  targets=$((targets + 1))
  rm -f "$log"
done < <(grep -rEo --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]*)\(' . | sed -E 's/^\.\///; s/\($//; s/:func /:/' | sort)
echo "$targets fuzz targets, $total executions, no crash"
