// Package corelog is the part of a *zap.Logger the shim uses, on a bare zapcore.Core: package
// zap links net/http and crypto/tls (for its HTTP level handler), which cost every per-pod
// shim about 1.7 MiB of binary and 0.15 MiB of memory it never uses. Its fields are zap's
// (zapcore.Field), its lines what a zap.New(core) logger writes: no caller, no stack traces.
package corelog

import (
	"fmt"
	"time"

	"go.uber.org/zap/zapcore"
)

// Field keys the daemon's internal/log names too (a test keeps them equal).
const (
	KeyPodSandboxID = "pod_sandbox_id"
	KeyContainerID  = "container_id"
	KeyPID          = "pid"
)

// Logger writes leveled lines to a core. The zero value and nil discard everything.
type Logger struct {
	core zapcore.Core
}

// New is a Logger on core.
func New(core zapcore.Core) *Logger { return &Logger{core: core} }

// Nop discards everything.
func Nop() *Logger { return &Logger{core: zapcore.NewNopCore()} }

// Core is the logger's core (a zap.Logger of the same lines is zap.New(l.Core())).
func (l *Logger) Core() zapcore.Core {
	if l == nil || l.core == nil {
		return zapcore.NewNopCore()
	}
	return l.core
}

// With is a logger whose every line carries fields.
func (l *Logger) With(fields ...zapcore.Field) *Logger {
	if len(fields) == 0 {
		return l
	}
	return &Logger{core: l.Core().With(fields)}
}

// Enabled says whether lines of level lvl are written.
func (l *Logger) Enabled(lvl zapcore.Level) bool { return l.Core().Enabled(lvl) }

// Sync flushes the core.
func (l *Logger) Sync() error { return l.Core().Sync() }

func (l *Logger) write(lvl zapcore.Level, msg string, fields []zapcore.Field) {
	core := l.Core()
	if !core.Enabled(lvl) {
		return
	}
	if ce := core.Check(zapcore.Entry{Level: lvl, Time: time.Now(), Message: msg}, nil); ce != nil {
		ce.Write(fields...)
	}
}

// Debug, Info, Warn and Error write one line at their level.
func (l *Logger) Debug(msg string, fields ...zapcore.Field) { l.write(zapcore.DebugLevel, msg, fields) }

// Info writes an info line.
func (l *Logger) Info(msg string, fields ...zapcore.Field) { l.write(zapcore.InfoLevel, msg, fields) }

// Warn writes a warning.
func (l *Logger) Warn(msg string, fields ...zapcore.Field) { l.write(zapcore.WarnLevel, msg, fields) }

// Error writes an error line.
func (l *Logger) Error(msg string, fields ...zapcore.Field) { l.write(zapcore.ErrorLevel, msg, fields) }

// ProductionEncoderConfig is zap.NewProductionEncoderConfig: the daemon's and the shim's log
// lines have the same keys and encodings.
func ProductionEncoderConfig() zapcore.EncoderConfig {
	return zapcore.EncoderConfig{
		TimeKey:        "ts",
		LevelKey:       "level",
		NameKey:        "logger",
		CallerKey:      "caller",
		FunctionKey:    zapcore.OmitKey,
		MessageKey:     "msg",
		StacktraceKey:  "stacktrace",
		LineEnding:     zapcore.DefaultLineEnding,
		EncodeLevel:    zapcore.LowercaseLevelEncoder,
		EncodeTime:     zapcore.EpochTimeEncoder,
		EncodeDuration: zapcore.SecondsDurationEncoder,
		EncodeCaller:   zapcore.ShortCallerEncoder,
	}
}

// The field constructors are zap's, for the types the shim logs.

// String is a string field.
func String(k, v string) zapcore.Field {
	return zapcore.Field{Key: k, Type: zapcore.StringType, String: v}
}

// Int is an int field.
func Int(k string, v int) zapcore.Field { return Int64(k, int64(v)) }

// Int64 is an int64 field.
func Int64(k string, v int64) zapcore.Field {
	return zapcore.Field{Key: k, Type: zapcore.Int64Type, Integer: v}
}

// Uint64 is a uint64 field.
func Uint64(k string, v uint64) zapcore.Field {
	return zapcore.Field{Key: k, Type: zapcore.Uint64Type, Integer: int64(v)} //nolint:gosec // zap stores it so
}

// Bool is a bool field.
func Bool(k string, v bool) zapcore.Field {
	var i int64
	if v {
		i = 1
	}
	return zapcore.Field{Key: k, Type: zapcore.BoolType, Integer: i}
}

// Duration is a duration field.
func Duration(k string, d time.Duration) zapcore.Field {
	return zapcore.Field{Key: k, Type: zapcore.DurationType, Integer: int64(d)}
}

// Error is zap.Error: an "error" field, none for a nil err.
func Error(err error) zapcore.Field {
	if err == nil {
		return zapcore.Field{Type: zapcore.SkipType}
	}
	return zapcore.Field{Key: "error", Type: zapcore.ErrorType, Interface: err}
}

// Stringer is a field of v's String.
func Stringer(k string, v fmt.Stringer) zapcore.Field {
	return zapcore.Field{Key: k, Type: zapcore.StringerType, Interface: v}
}

// Strings is a string array field.
func Strings(k string, ss []string) zapcore.Field {
	return zapcore.Field{Key: k, Type: zapcore.ArrayMarshalerType, Interface: stringArray(ss)}
}

type stringArray []string

func (ss stringArray) MarshalLogArray(arr zapcore.ArrayEncoder) error {
	for _, s := range ss {
		arr.AppendString(s)
	}
	return nil
}

// PodSandboxID and ContainerID are internal/log's fields of the same names.
func PodSandboxID(id string) zapcore.Field { return String(KeyPodSandboxID, id) }

// ContainerID is the container id field.
func ContainerID(id string) zapcore.Field { return String(KeyContainerID, id) }
