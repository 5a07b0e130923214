package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/peapod-runtime/peapod/internal/log"
)

// readOnlyRPC reports whether an RPC only reads: those log at Debug, since a kubelet calls
// them every second.
func readOnlyRPC(method string) bool {
	switch method {
	case "Version", "ImageFsInfo", "RuntimeConfig":
		return true
	}
	return strings.HasPrefix(method, "List") || strings.HasPrefix(method, "Stream") ||
		strings.HasSuffix(method, "Status") || strings.HasSuffix(method, "Stats")
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) begin(ctx context.Context, fullMethod string) (context.Context, string, error) {
	method := path.Base(fullMethod)
	if !s.ready.Load() {
		return ctx, method, status.Error(codes.Unavailable, "peapod is starting: state is not recovered yet")
	}
	l := s.log.With(zap.String(log.KeyRPC, method), zap.String(log.KeyRequestID, newRequestID()))
	return log.WithLogger(ctx, l), method, nil
}

func (s *Server) end(ctx context.Context, method string, start time.Time, err error) error {
	err = toStatus(err)
	level := zapcore.InfoLevel
	if readOnlyRPC(method) {
		level = zapcore.DebugLevel
	}
	fields := []zap.Field{zap.Duration(log.KeyDuration, time.Since(start))}
	if err != nil {
		st, _ := status.FromError(err)
		fields = append(fields, zap.String("code", st.Code().String()), zap.String("error", st.Message()))
		if st.Code() == codes.Unknown || st.Code() == codes.Internal {
			level = zapcore.ErrorLevel
		} else if level < zapcore.InfoLevel && st.Code() != codes.NotFound {
			level = zapcore.InfoLevel
		}
	}
	if ce := log.From(ctx).Check(level, "rpc"); ce != nil {
		ce.Write(fields...)
	}
	return err
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ctx, method, err := s.begin(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	resp, err := handler(ctx, req)
	if err == nil {
		if err = checkReplySize(method, resp); err != nil {
			resp = nil
		}
	}
	return resp, s.end(ctx, method, start, err)
}

type streamWithContext struct {
	grpc.ServerStream
	ctx context.Context
}

func (w streamWithContext) Context() context.Context { return w.ctx }

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	ctx, method, err := s.begin(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return s.end(ctx, method, start, handler(srv, streamWithContext{ServerStream: ss, ctx: ctx}))
}
