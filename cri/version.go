package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/config"
)

// criVersion is the CRI API version peapod speaks.
const criVersion = "v1"

// Version answers the runtime's name and versions.
func (s *Server) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       config.DefaultRuntimeName,
		RuntimeVersion:    s.opts.Version,
		RuntimeApiVersion: criVersion,
	}, nil
}
