package corelog_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	plog "github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/internal/log/corelog"
)

type name string

func (n name) String() string { return string(n) }

// TestSameLinesAsZap: the shim's lines read as the daemon's (same keys, same encodings).
func TestSameLinesAsZap(t *testing.T) {
	err := errors.New("boom")
	var zbuf, cbuf bytes.Buffer
	cfg := zap.NewProductionEncoderConfig()
	cfg.TimeKey = zapcore.OmitKey // no clock in the comparison
	zl := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(cfg), zapcore.AddSync(&zbuf), zap.InfoLevel))
	cl := corelog.New(zapcore.NewCore(zapcore.NewJSONEncoder(corelogConfigNoTime()), zapcore.AddSync(&cbuf), zap.InfoLevel))

	zl.With(plog.PodSandboxID("p"), plog.ContainerID("c")).Warn("m",
		zap.String("s", "v"), zap.Int(plog.KeyPID, 7), zap.Int64("i", -3), zap.Uint64("u", 1<<63), zap.Bool("b", true),
		zap.Duration("d", 1500*time.Millisecond), zap.Error(err), zap.Error(nil), zap.Stringer("n", name("x")),
		zap.Strings("ss", []string{"a", "b"}))
	zl.Debug("not written")
	cl.With(corelog.PodSandboxID("p"), corelog.ContainerID("c")).Warn("m",
		corelog.String("s", "v"), corelog.Int(corelog.KeyPID, 7), corelog.Int64("i", -3), corelog.Uint64("u", 1<<63), corelog.Bool("b", true),
		corelog.Duration("d", 1500*time.Millisecond), corelog.Error(err), corelog.Error(nil), corelog.Stringer("n", name("x")),
		corelog.Strings("ss", []string{"a", "b"}))
	cl.Debug("not written")
	if zbuf.String() != cbuf.String() {
		t.Errorf("corelog wrote\n%s\nzap wrote\n%s", cbuf.String(), zbuf.String())
	}
	if !strings.Contains(cbuf.String(), `"container_id":"c"`) {
		t.Errorf("no container_id in %s", cbuf.String())
	}
	var nilLogger *corelog.Logger
	nilLogger.Info("discarded") // must not panic
	corelog.Nop().With(corelog.String("k", "v")).Error("discarded")
}

func corelogConfigNoTime() zapcore.EncoderConfig {
	cfg := corelog.ProductionEncoderConfig()
	cfg.TimeKey = zapcore.OmitKey
	return cfg
}

// TestKeysAreInternalLogs: one grep for pod_sandbox_id finds the shim's lines too.
func TestKeysAreInternalLogs(t *testing.T) {
	for _, k := range [][2]string{
		{corelog.KeyPodSandboxID, plog.KeyPodSandboxID},
		{corelog.KeyContainerID, plog.KeyContainerID},
		{corelog.KeyPID, plog.KeyPID},
	} {
		if k[0] != k[1] {
			t.Errorf("corelog key %q, internal/log's %q", k[0], k[1])
		}
	}
}

// TestProductionTime: the time is zap production's too (key and encoding).
func TestProductionTime(t *testing.T) {
	at := time.Unix(1700000000, 500000000)
	line := func(cfg zapcore.EncoderConfig) string {
		b, err := zapcore.NewJSONEncoder(cfg).EncodeEntry(zapcore.Entry{Time: at, Message: "m"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if c, z := line(corelog.ProductionEncoderConfig()), line(zap.NewProductionEncoderConfig()); c != z {
		t.Errorf("corelog %s, zap %s", c, z)
	}
}
