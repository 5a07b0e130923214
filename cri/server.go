// Package cri serves the Container Runtime Interface (k8s.io/cri-api v1) over gRPC: one file
// per RPC, thin handlers that validate, call one domain method and convert the answer, and one
// place (errors.go) where domain errors become gRPC codes. It is the only daemon package that
// imports cri-api.
package cri

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/config"
)

// Options are the dependencies of a Server, wired by cmd/peapod.
type Options struct {
	Config  config.Config
	Logger  *zap.Logger
	Version string
	// Network may be nil until pod networking is wired: NetworkReady is then false.
	Network    networkStatus
	Sandboxes  sandboxes
	Images     imageStore
	Containers containers
	// Stats is the background sampler the stats and metrics RPCs answer from; nil answers
	// Unavailable.
	Stats statsSource
	// Streams hands out the URLs of Exec, Attach and PortForward; nil answers Unavailable.
	Streams streamURLs
}

// Server implements RuntimeService and ImageService. RPCs that have no handler yet fall
// through to the embedded Unimplemented servers, which answer codes.Unimplemented naming the
// method.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	opts   Options
	log    *zap.Logger
	ready  atomic.Bool
	events *eventHub
}

// New returns a Server that answers Unavailable until SetReady is called.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	s := &Server{opts: opts, log: opts.Logger}
	s.events = serverEventHub(opts)
	return s
}

// SetReady lets RPCs through: call it once state is recovered.
func (s *Server) SetReady() {
	s.events.ready(time.Now())
	s.ready.Store(true)
}

// Register adds both CRI services to g.
func (s *Server) Register(g *grpc.Server) {
	runtimeapi.RegisterRuntimeServiceServer(g, s)
	runtimeapi.RegisterImageServiceServer(g, s)
}

// ServerOptions returns the interceptors every CRI server must run with.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		// No answer goes out larger than the clients take; the unary interceptor refuses
		// one with a clear error before it gets here.
		grpc.MaxSendMsgSize(maxReplySize),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	}
}
