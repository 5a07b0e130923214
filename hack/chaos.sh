#!/usr/bin/env bash
# The reliability suite, long form: ./chaos with CHAOS_KILLS daemon kills (default 100) and
# CHAOS_CYCLES soak cycles (default 1000), then every Go fuzz target for FUZZTIME each
# (default 60s) through hack/fuzz.sh when the repository has it, else the same way here.
# Prints the suite's figures (lines starting with CHAOS-FIGURES) and the fuzzers' executions.
set -uo pipefail
cd "$(dirname "$0")/.."
kills=${CHAOS_KILLS:-100}
cycles=${CHAOS_CYCLES:-1000}
export FUZZTIME=${FUZZTIME:-60s}
began=$(date +%s)
rc=0

log=$(mktemp /tmp/peapod-chaos-XXXXXX.log)
echo "chaos suite: $kills daemon kills, $cycles soak cycles (log: $log)"
go test -count=1 -timeout 3h -v ./chaos -chaos.kills="$kills" -chaos.cycles="$cycles" >"$log" 2>&1 || rc=1
grep -E -- '^\s*--- (PASS|FAIL|SKIP)|CHAOS-FIGURES|random seed' "$log" | sed -E 's/^\s+//; s/^[a-z_]+_test\.go:[0-9]+: //'
if [ $rc -ne 0 ]; then
  echo "chaos suite FAILED; failures:"
  grep -E -- '_test\.go:[0-9]+: ' "$log" | grep -v -e CHAOS-FIGURES -e 'random seed' | head -n 100
fi

if [ -x hack/fuzz.sh ]; then
  hack/fuzz.sh || rc=1
else
  total=0
  targets=0
  while IFS=: read -r file name; do
    pkg=./$(dirname "$file")
    flog=$(mktemp /tmp/peapod-fuzz-XXXXXX.log)
    echo "fuzz $pkg $name for $FUZZTIME"
    if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" >"$flog" 2>&1; then
      cat "$flog"
      echo "FAIL: $name in $pkg (log: $flog)"
      rc=1
      continue
    fi
    execs=$(grep -oE 'execs: [0-9]+' "$flog" | tail -n1 | grep -oE '[0-9]+' || echo 0)
    echo "  $execs executions, no crash"
    total=$((total + execs))
    targets=$((targets + 1))
    rm -f "$flog"
  done < <(grep -rEo --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]*)\(' . | sed -E 's/^\.\///; s/\($//; s/:func /:/' | sort)
  echo "$targets fuzz targets, $total executions, no crash"
fi
echo "make chaos took $(( $(date +%s) - began ))s"
exit $rc
