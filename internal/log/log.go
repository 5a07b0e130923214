// Package log carries a *zap.Logger in a context.Context and names the field keys
// every peapod package logs with, so that one grep for pod_sandbox_id finds a pod's story.
package log

import (
	"context"

	"go.uber.org/zap"
)

// Field keys shared by every package. Keep them snake_case and stable: operators grep for them.
const (
	KeyPodSandboxID  = "pod_sandbox_id"
	KeyPodName       = "pod_name"
	KeyPodNamespace  = "pod_namespace"
	KeyPodUID        = "pod_uid"
	KeyContainerID   = "container_id"
	KeyContainerName = "container_name"
	KeyImage         = "image"
	KeyNetNS         = "netns"
	KeyCgroup        = "cgroup"
	KeyPID           = "pid"
	KeyDuration      = "duration"
	KeyRPC           = "rpc"
	KeyRequestID     = "request_id"
)

type loggerKey struct{}

// WithLogger returns a context that carries l.
func WithLogger(ctx context.Context, l *zap.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// From returns the logger carried by ctx, or a no-op logger: never the global one.
func From(ctx context.Context) *zap.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*zap.Logger); ok && l != nil {
		return l
	}
	return zap.NewNop()
}

// With returns a context whose logger has the extra fields.
func With(ctx context.Context, fields ...zap.Field) context.Context {
	return WithLogger(ctx, From(ctx).With(fields...))
}

// PodSandboxID and ContainerID are the two fields nearly every line carries.
func PodSandboxID(id string) zap.Field { return zap.String(KeyPodSandboxID, id) }

// ContainerID is the container id field.
func ContainerID(id string) zap.Field { return zap.String(KeyContainerID, id) }
