package main

import (
	"github.com/go-logr/logr"
	"go.uber.org/zap"
	"k8s.io/klog/v2"
)

// routeKlog sends what the Kubernetes streaming libraries log through klog to the daemon's
// zap logger, named "k8s". Their errors are mostly a client hanging up ("use of closed network
// connection", "context canceled"), so they are logged at info, and their info at debug.
// klog's logger is process-wide by klog's design; the daemon sets it once at start.
func routeKlog(l *zap.Logger) {
	klog.SetLogger(logr.New(&zapSink{l: l.Named("k8s").WithOptions(zap.AddCallerSkip(1))}))
}

type zapSink struct {
	l    *zap.Logger
	name string
}

func (s *zapSink) Init(logr.RuntimeInfo) {}

func (s *zapSink) Enabled(level int) bool { return s.l.Core().Enabled(zap.DebugLevel) }

func (s *zapSink) Info(level int, msg string, kv ...any) {
	s.l.Debug(msg, fields(kv)...)
}

func (s *zapSink) Error(err error, msg string, kv ...any) {
	s.l.Info(msg, append(fields(kv), zap.Error(err))...)
}

func (s *zapSink) WithValues(kv ...any) logr.LogSink {
	return &zapSink{l: s.l.With(fields(kv)...), name: s.name}
}

func (s *zapSink) WithName(name string) logr.LogSink {
	return &zapSink{l: s.l.Named(name), name: name}
}

func fields(kv []any) []zap.Field {
	out := make([]zap.Field, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			k = "key"
		}
		out = append(out, zap.Any(k, kv[i+1]))
	}
	return out
}
