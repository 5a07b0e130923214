#!/usr/bin/env bash
# Where a full node's start-up CPU goes: runs the bench's Density scenario (110 one-container
# pods) under `perf record -a` and prints, for the window in which the pods start, the CPU of
# every process name in ms per pod (perf's 4 kHz cpu-clock samples / 4 / pods), largest first.
# Start-up is CPU-bound on a small node, so this splits the start time between the runtime's
# own processes (daemon, monitors, helpers), what every runtime runs the same way (the CNI
# plugins, runc's container init, the container's exec) and the kernel's threads.
# ("swapper" is the cores' idle time.)
#
#   hack/density-profile.sh                      peapod from bin/ (run `make build` first)
#   hack/density-profile.sh -endpoint unix:///run/peapod-containerd/containerd.sock \
#       -pid PID -registry-addr 127.0.0.1:5101 -bridge ppctrd0     another runtime, as make bench
#
# Arguments go to the bench (critest/bench). The window runs from the first to the last sample
# of the CNI bridge plugin before the idle window (its first gap longer than 2 s). Needs perf
# (Debian's linux-perf, installed when missing). Holds /tmp/peapod-node.lock, as make test does.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
[ "$(id -u)" = 0 ] || { echo "density-profile: needs root (perf record -a)" >&2; exit 1; }
if ! command -v perf >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends linux-perf >/dev/null
fi
pods=110
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
  -density-pods | --density-pods) pods=${args[i + 1]} ;;
  -density-pods=* | --density-pods=*) pods=${args[i]#*=} ;;
  esac
done
work=$(mktemp -d /tmp/density-profile.XXXXXX)
trap 'rm -rf "$work"' EXIT
go build -o "$work/bench" ./critest/bench
flock /tmp/peapod-node.lock perf record -q -a -o "$work/perf.data" -- \
  "$work/bench" -scenarios Density -density-idle 3s "$@" >"$work/bench.txt" 2>&1 || {
  cat "$work/bench.txt" >&2
  exit 1
}
grep -E '^Density ' "$work/bench.txt" | sed 's/^/bench: /'
grep -E 'start_node' "$work/bench.txt" | sed 's/^/bench: /'
window=$(perf script -i "$work/perf.data" -F comm,time 2>/dev/null | awk '
  $1 == "bridge" { t = $2 + 0; if (!first) first = t; if (last && t - last > 2.0) cut = 1; if (!cut) last = t }
  END { if (first) printf "%.3f,%.3f", first, last }')
[ -n "$window" ] || { echo "density-profile: no CNI bridge plugin ran: no start window" >&2; exit 1; }
perf script -i "$work/perf.data" --time "$window" -F comm 2>/dev/null | sed 's/^ *//' | sort | uniq -c | sort -rn |
  awk -v pods="$pods" -v window="$window" '
    { n += $1; c = $1; $1 = ""; sub(/^ /, ""); line[NR] = sprintf("%8.2f ms/pod  %s", c / 4 / pods, $0) }
    END {
      printf "window %s (perf clock): %.2f ms of CPU per pod in all\n", window, n / 4 / pods
      for (i = 1; i <= NR && i <= 25; i++) print line[i]
    }'
