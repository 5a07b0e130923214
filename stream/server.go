// Package stream is the streaming server of exec, attach and port-forward: the CRI RPCs hand
// out a one-time URL on it, and kubectl or the kubelet connects there over SPDY or WebSocket
// (remotecommand v1 to v5, port-forward over SPDY or tunnelled in a WebSocket). The protocol
// work is k8s.io/cri-streaming's and k8s.io/streaming's; this package keeps the one-time
// tokens, routes requests, adds the WebSocket v5 remotecommand protocol the library lacks, and
// cancels a session whose client connection is gone.
package stream

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/peapod-runtime/peapod/internal/log"
)

// TerminalSize is a terminal's size in characters: the library's own type, so that its
// resize channel is handed on as it is.
type TerminalSize = remotecommand.TerminalSize

// Streams are the client's side of an exec or attach session. Absent streams are nil.
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Tty            bool
	// Resize carries terminal size changes; it is closed when the client sends no more.
	Resize <-chan TerminalSize
}

// Runtime runs the sessions.
type Runtime interface {
	// Exec runs cmd in the container and returns its exit code.
	Exec(ctx context.Context, containerID string, cmd []string, s Streams) (int, error)
	// Attach relays the container's own stdio until it exits.
	Attach(ctx context.Context, containerID string, s Streams) error
	// PortForward connects stream to port inside the pod's network namespace.
	PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error
}

// ExecRequest is an exec a URL was handed out for.
type ExecRequest struct {
	ContainerID                string
	Cmd                        []string
	Tty, Stdin, Stdout, Stderr bool
}

// AttachRequest is an attach a URL was handed out for.
type AttachRequest struct {
	ContainerID                string
	Tty, Stdin, Stdout, Stderr bool
}

type portForwardRequest struct {
	podID string
	ports []int32
}

// Options configure a Server.
type Options struct {
	// Addr is host:port to listen on; port 0 picks a free port.
	Addr    string
	Runtime Runtime
	Logger  *zap.Logger
	// IdleTimeout closes a session with no traffic for this long (default 4h, as kubelets do).
	IdleTimeout time.Duration
	// CreationTimeout bounds how long a SPDY client may take to open its streams (default 30s).
	CreationTimeout time.Duration
	// TokenTTL is how long a URL stays valid before it is used (default 1m).
	TokenTTL time.Duration
}

// maxPending bounds the URLs handed out and not yet used.
const maxPending = 1000

// Server serves the URLs that ExecURL, AttachURL and PortForwardURL hand out.
type Server struct {
	opts Options
	log  *zap.Logger
	l    net.Listener
	base url.URL
	http *http.Server

	mu      sync.Mutex
	pending map[string]pending
}

type pending struct {
	req     any
	expires time.Time
}

// New listens on opts.Addr; Serve serves.
func New(opts Options) (*Server, error) {
	if opts.Runtime == nil {
		return nil, fmt.Errorf("stream server needs a runtime: %w", errdefs.ErrInvalidArgument)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 4 * time.Hour
	}
	if opts.CreationTimeout <= 0 {
		opts.CreationTimeout = remotecommand.DefaultStreamCreationTimeout
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Minute
	}
	l, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("stream server: listen on %s: %w", opts.Addr, err)
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		l:       &watchedListener{Listener: l},
		base:    url.URL{Scheme: "http", Host: l.Addr().String()},
		pending: make(map[string]pending),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/{token}", s.serveExec)
	mux.HandleFunc("/attach/{token}", s.serveAttach)
	mux.HandleFunc("/portforward/{token}", s.servePortForward)
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext:       connContext,
		ErrorLog:          zap.NewStdLog(s.log),
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// Serve serves until Close.
func (s *Server) Serve() error {
	s.log.Info("stream server serving", zap.Stringer("address", s.l.Addr()))
	if err := s.http.Serve(s.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stream server: %w", err)
	}
	return nil
}

// Close stops the server and cuts every open session; the processes of exec sessions are
// killed.
func (s *Server) Close() error { return s.http.Close() }

// ExecURL hands out the one-time URL of an exec.
func (s *Server) ExecURL(r ExecRequest) (string, error) {
	if err := checkStreams(r.Tty, r.Stdin, r.Stdout, r.Stderr); err != nil {
		return "", err
	}
	if r.ContainerID == "" || len(r.Cmd) == 0 {
		return "", fmt.Errorf("exec needs a container and a command: %w", errdefs.ErrInvalidArgument)
	}
	return s.url("exec", r)
}

// AttachURL hands out the one-time URL of an attach.
func (s *Server) AttachURL(r AttachRequest) (string, error) {
	if err := checkStreams(r.Tty, r.Stdin, r.Stdout, r.Stderr); err != nil {
		return "", err
	}
	if r.ContainerID == "" {
		return "", fmt.Errorf("attach needs a container: %w", errdefs.ErrInvalidArgument)
	}
	return s.url("attach", r)
}

// PortForwardURL hands out the one-time URL of a port forward to pod podID; ports, when
// given, are the only ports the client may ask for.
func (s *Server) PortForwardURL(podID string, ports []int32) (string, error) {
	if podID == "" {
		return "", fmt.Errorf("port forward needs a pod: %w", errdefs.ErrInvalidArgument)
	}
	for _, p := range ports {
		if p <= 0 || p > 65535 {
			return "", fmt.Errorf("port %d is not a TCP port: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	return s.url("portforward", portForwardRequest{podID: podID, ports: ports})
}

func checkStreams(tty, stdin, stdout, stderr bool) error {
	if tty && stderr {
		return fmt.Errorf("a terminal has no separate stderr: tty and stderr cannot both be set: %w", errdefs.ErrInvalidArgument)
	}
	if !stdin && !stdout && !stderr {
		return fmt.Errorf("one of stdin, stdout and stderr must be set: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

func (s *Server) url(kind string, req any) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("stream token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, p := range s.pending {
		if now.After(p.expires) {
			delete(s.pending, t)
		}
	}
	if len(s.pending) >= maxPending {
		return "", fmt.Errorf("%d stream URLs are waiting to be used: %w", len(s.pending), errdefs.ErrResourceExhausted)
	}
	s.pending[token] = pending{req: req, expires: now.Add(s.opts.TokenTTL)}
	u := s.base
	u.Path = "/" + kind + "/" + token
	return u.String(), nil
}

// consume returns the request a token was handed out for, once.
func consume[T any](s *Server, r *http.Request) (T, bool) {
	var zero T
	token := r.PathValue("token")
	s.mu.Lock()
	p, ok := s.pending[token]
	delete(s.pending, token)
	s.mu.Unlock()
	if !ok || time.Now().After(p.expires) {
		return zero, false
	}
	req, ok := p.req.(T)
	return req, ok
}

func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	req, ok := consume[ExecRequest](s, r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	o := &remotecommand.Options{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, TTY: req.Tty}
	l := s.log.With(log.ContainerID(req.ContainerID))
	l.Debug("exec session", zap.Strings("cmd", req.Cmd), zap.String("protocols", r.Header.Get("Sec-Websocket-Protocol")))
	if wantsV5(r) {
		s.serveV5(w, r, o, l, func(ctx context.Context, st Streams) (int, error) {
			return s.opts.Runtime.Exec(ctx, req.ContainerID, req.Cmd, st)
		})
		return
	}
	remotecommand.ServeExec(w, r, adapter{s: s}, "", "", req.ContainerID, req.Cmd, o,
		s.opts.IdleTimeout, s.opts.CreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (s *Server) serveAttach(w http.ResponseWriter, r *http.Request) {
	req, ok := consume[AttachRequest](s, r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	o := &remotecommand.Options{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, TTY: req.Tty}
	l := s.log.With(log.ContainerID(req.ContainerID))
	l.Debug("attach session", zap.String("protocols", r.Header.Get("Sec-Websocket-Protocol")))
	if wantsV5(r) {
		s.serveV5(w, r, o, l, func(ctx context.Context, st Streams) (int, error) {
			return 0, s.opts.Runtime.Attach(ctx, req.ContainerID, st)
		})
		return
	}
	remotecommand.ServeAttach(w, r, adapter{s: s}, "", "", req.ContainerID, o,
		s.opts.IdleTimeout, s.opts.CreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (s *Server) servePortForward(w http.ResponseWriter, r *http.Request) {
	req, ok := consume[portForwardRequest](s, r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	o, err := portforward.BuildV4Options(req.ports)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.log.Debug("port forward session", log.PodSandboxID(req.podID), zap.String("protocols", r.Header.Get("Sec-Websocket-Protocol")))
	if wantsTunnel(r) {
		s.serveTunnel(w, r, req.podID, o)
		return
	}
	portforward.ServePortForward(w, r, adapter{s: s, ctx: r.Context()}, req.podID, "", o,
		s.opts.IdleTimeout, s.opts.CreationTimeout, portforward.SupportedProtocols)
}
