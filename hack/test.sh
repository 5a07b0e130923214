#!/usr/bin/env bash
# Runs every test (unit and integration, as root) and lists each skipped test with its reason.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp /tmp/peapod-test-XXXXXX.log)
go test -count=1 -timeout 20m -v ./... >"$log" 2>&1
rc=$?
echo "packages:"
grep -E '^(ok|FAIL|\?)\s' "$log" | sed 's/^/  /'
if [ $rc -ne 0 ]; then
  echo
  echo "failures (with the lines before each):"
  grep -E -B40 -- '--- FAIL|^FAIL|panic:|\.go:[0-9]+:[0-9]+:' "$log" | tail -n 600
fi
echo
echo "skipped tests and why:"
# go test -v prints a skip's reason on the line before its "--- SKIP".
grep -E -B1 -- '--- SKIP' "$log" | grep -vE '^--$' | sed 's/^/  /' || true
pass=$(grep -cE -- '--- PASS' "$log" || true)
fail=$(grep -cE -- '--- FAIL' "$log" || true)
skip=$(grep -cE -- '--- SKIP' "$log" || true)
echo
echo "full log: $log"
echo "$pass passed, $fail failed, $skip skipped"
exit $rc
