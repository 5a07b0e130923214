#!/usr/bin/env bash
# Runs every test (unit and integration, as root) and lists each skipped test with its reason.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp /tmp/peapod-test-XXXXXX.log)
# peapod's QoS tier cgroups (/peapod, /peapod/burstable, /peapod/besteffort) are node-wide:
# the packages' test daemons run at once and each removes the tiers only if they were absent
# when it started, so the last one out may find them there from another package. The run
# removes them once every package is done, if they were not there before it (rmdir keeps a
# tier anything still uses).
tiers=(/sys/fs/cgroup/*/peapod /sys/fs/cgroup/peapod)
had_tiers=0
for t in "${tiers[@]}"; do [ -d "$t" ] && had_tiers=1; done
# The portmap plugin's node-wide chains (made at the first hostPort, never removed by it) are
# the same: a package that finds them made by another one running beside it leaves them, so
# the run removes them once every package is done, if they were not there before it and no
# hostPort rule is left in them.
had_portmap=0
iptables -t nat -S CNI-HOSTPORT-DNAT >/dev/null 2>&1 && had_portmap=1
go test -count=1 -timeout 20m -v ./... >"$log" 2>&1
rc=$?
if [ $had_tiers = 0 ]; then
  for t in /sys/fs/cgroup/*/peapod /sys/fs/cgroup/peapod; do
    [ -d "$t" ] && rmdir "$t/burstable" "$t/besteffort" "$t" 2>/dev/null
  done
fi
if [ $had_portmap = 0 ] && [ "$(iptables -t nat -S CNI-HOSTPORT-DNAT 2>/dev/null | wc -l)" = 1 ]; then
  iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT 2>/dev/null
  iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT 2>/dev/null
  iptables -t nat -D POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ 2>/dev/null
  for c in CNI-HOSTPORT-DNAT CNI-HOSTPORT-MASQ CNI-HOSTPORT-SETMARK; do
    iptables -t nat -F "$c" 2>/dev/null
    iptables -t nat -X "$c" 2>/dev/null
  done
fi
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
