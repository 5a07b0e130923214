// Package critest is peapod's conformance suite. Its tests drive a CRI endpoint through the
// kubelet's own client (k8s.io/cri-client) and the harness in critest/framework: by default a
// peapod started from bin/peapod in a throwaway root, or any runtime named with -endpoint
// (containerd, CRI-O), in which case tests of peapod-only promises skip with their reason.
//
//	go test ./critest/...                                            # our own daemon
//	go test ./critest/... -args -endpoint unix:///run/containerd/containerd.sock \
//	    -registry-addr 127.0.0.1:5000                                # another runtime
package critest
