// Package api holds the wire messages and the ttrpc service of the peapod shim API
// (shim.proto). Only the shim packages use it; the daemon talks to a shim through
// shim/client.
//
// The .pb.go files are generated and committed, so a build never needs protoc. To regenerate
// after editing shim.proto (protoc from Debian's protobuf-compiler, plugins at the versions
// go.mod pins):
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go install github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc@v1.2.10
//	go generate ./shim/api
package api

//go:generate protoc -I. --go_out=paths=source_relative:. --go-ttrpc_out=paths=source_relative:. shim.proto
