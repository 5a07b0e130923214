#!/usr/bin/env bash
# make bench-cluster: pod start-up figures through a real kubelet (critest/clusterbench) on the
# one-node cluster of hack/cluster.sh: the running one if `make cluster` started it, else one
# brought up for the run and down after it. Extra arguments go to clusterbench (-n, -replicas).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
if ! hack/cluster.sh status | grep "^kubelet: running" >/dev/null; then
  hack/cluster.sh up >/dev/null
  trap 'hack/cluster.sh down' EXIT
fi
go run ./critest/clusterbench "$@"
