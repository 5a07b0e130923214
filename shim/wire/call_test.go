package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestCallRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewCallWriter(&buf)
	out := bytes.Repeat([]byte("o"), MaxFramePayload+7)
	steps := []func() error{
		w.WriteHello,
		func() error {
			return w.WriteCall(1, MethodCreate, CreateRequest{ID: "c", Spec: []byte(`{"ociVersion":"1.2.0"}`)})
		},
		func() error { return w.WriteCall(2, MethodList, nil) },
		func() error { return w.WriteCancel(1) },
		func() error { return w.WriteCallData(3, StreamStdout, out) },
		func() error { return w.WriteCallData(3, StreamStderr, nil) }, // nothing: no frame
		func() error { return w.WriteAnswer(3, ExecSyncExit{ExitCode: 7}) },
		func() error { return w.WriteFail(2, fmt.Errorf("container c: %w", errdefs.ErrNotFound)) },
	}
	for i, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	r := NewCallReader(&buf)
	next := func() (FrameType, []byte) {
		t.Helper()
		ft, p, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		return ft, p
	}

	if err := ReadHello(r); err != nil {
		t.Fatalf("hello: %v", err)
	}
	ft, p := next()
	call, err := ParseCall(p)
	if ft != FrameCall || err != nil || call.ID != 1 || call.Method != MethodCreate {
		t.Fatalf("call: %q %+v %v", ft, call, err)
	}
	var cr CreateRequest
	if err := DecodeBody(call.Body, &cr); err != nil || cr.ID != "c" || string(cr.Spec) != `{"ociVersion":"1.2.0"}` {
		t.Fatalf("create request %+v: %v", cr, err)
	}
	ft, p = next()
	if call, err = ParseCall(p); ft != FrameCall || err != nil || call.ID != 2 || call.Method != MethodList || len(call.Body) != 0 {
		t.Fatalf("list call: %q %+v %v", ft, call, err)
	}
	ft, p = next()
	if id, rest, err := CallID(p); ft != FrameCancel || err != nil || id != 1 || len(rest) != 0 {
		t.Fatalf("cancel: %q %d %v", ft, id, err)
	}
	var data []byte
	for range 2 {
		ft, p = next()
		id, rest, err := CallID(p)
		if ft != FrameData || err != nil || id != 3 || rest[0] != StreamStdout {
			t.Fatalf("data: %q %d %v", ft, id, err)
		}
		data = append(data, rest[1:]...)
	}
	if !bytes.Equal(data, out) {
		t.Fatalf("data: %d bytes back of %d", len(data), len(out))
	}
	ft, p = next()
	id, rest, err := CallID(p)
	var exit ExecSyncExit
	if ft != FrameAnswer || err != nil || id != 3 || DecodeBody(rest, &exit) != nil || exit.ExitCode != 7 {
		t.Fatalf("answer: %q %d %+v %v", ft, id, exit, err)
	}
	ft, p = next()
	id, rest, _ = CallID(p)
	ferr := DecodeFail(rest)
	if ft != FrameFail || id != 2 || !errors.Is(ferr, errdefs.ErrNotFound) || ferr.Error() != "container c: not found" {
		t.Fatalf("failure: %q %d %v", ft, id, ferr)
	}
	if _, _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v", err)
	}
}

// TestCallFramesBounded: each protocol reads only its own frames, within their limits.
func TestCallFramesBounded(t *testing.T) {
	frame := func(ft FrameType, n int) []byte {
		b := []byte{byte(ft), 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(n))
		return append(b, make([]byte, n)...)
	}
	for name, tc := range map[string]struct {
		b    []byte
		call bool
	}{
		"stream header on the call socket":    {frame(FrameHeader, 10), true},
		"call on the stream socket":           {frame(FrameCall, 10), false},
		"call over 4 MiB":                     {frame(FrameCall, MaxCallPayload+1), true},
		"answer over 4 MiB":                   {frame(FrameAnswer, MaxCallPayload+1), true},
		"data over its limit":                 {frame(FrameData, callDataHead+MaxFramePayload+1), true},
		"cancel of 3 bytes":                   {frame(FrameCancel, 3), true},
		"cancel of 5 bytes":                   {frame(FrameCancel, 5), true},
		"unknown type":                        {frame('z', 0), true},
		"length over 4 GiB - 1 for a payload": {[]byte{byte(FrameCall), 0xff, 0xff, 0xff, 0xff}, true},
	} {
		r := NewFrameReader(bytes.NewReader(tc.b))
		if tc.call {
			r = NewCallReader(bytes.NewReader(tc.b))
		}
		if _, _, err := r.Next(); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want a protocol error", name, err)
		}
	}
	if _, err := ParseCall([]byte{0, 0, 0, 1}); !errors.Is(err, ErrProtocol) {
		t.Errorf("call without a method: %v", err)
	}
	if _, _, err := CallID([]byte{0, 1}); !errors.Is(err, ErrProtocol) {
		t.Errorf("frame without a call id: %v", err)
	}
	w := NewCallWriter(io.Discard)
	if err := w.WriteCall(1, MethodCreate, CreateRequest{Spec: []byte(`"` + strings.Repeat("x", MaxCallPayload) + `"`)}); !errors.Is(err, ErrProtocol) {
		t.Errorf("a call over 4 MiB was written: %v", err)
	}
	if err := DecodeBody([]byte("{"), &IDRequest{}); !errors.Is(err, ErrProtocol) {
		t.Errorf("broken JSON: %v", err)
	}
	for m := Method(0); m <= methodEnd; m++ {
		if want := m >= MethodInfo && m <= MethodPrepare; m.Valid() != want || want && strings.HasPrefix(m.String(), "method(") {
			t.Errorf("method %d: valid %v, named %q", m, m.Valid(), m)
		}
	}
}

// FuzzCallFrames: whatever bytes a peer sends on the call socket, reading and decoding them
// ends in a frame, a protocol error or the end of input, never a panic; a frame read is within
// its type's limit, and a call's body decodes into any request or fails as a protocol error.
func FuzzCallFrames(f *testing.F) {
	var seed bytes.Buffer
	w := NewCallWriter(&seed)
	_ = w.WriteCall(1, MethodCreate, CreateRequest{ID: "c", Spec: []byte(`{}`), LogPath: "/l"})
	_ = w.WriteCall(2, MethodExecSync, ExecSyncRequest{ID: "c", Args: []string{"sh"}, Timeout: 5})
	_ = w.WriteCancel(2)
	_ = w.WriteCallData(2, StreamStderr, []byte("x"))
	_ = w.WriteFail(3, errdefs.ErrNotFound)
	f.Add(seed.Bytes())
	f.Add([]byte{byte(FrameCall), 0, 0, 0, 5, 0, 0, 0, 1, 99})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewCallReader(bytes.NewReader(b))
		for {
			ft, p, err := r.Next()
			if err != nil {
				return
			}
			if limit, _ := callLimit(ft); limit < 0 || len(p) > limit {
				t.Fatalf("frame %q of %d bytes read", ft, len(p))
			}
			switch ft {
			case FrameCall:
				call, err := ParseCall(p)
				if err != nil {
					continue
				}
				for _, v := range []any{&IDRequest{}, &CreateRequest{}, &SignalRequest{}, &ExecSyncRequest{}, &CheckpointRequest{}} {
					if err := DecodeBody(call.Body, v); err != nil && !errors.Is(err, ErrProtocol) {
						t.Fatalf("decode %T: %v is not a protocol error", v, err)
					}
				}
			case FrameFail:
				if _, rest, err := CallID(p); err == nil {
					_ = DecodeFail(rest).Error()
				}
			}
		}
	})
}

func TestReadHello(t *testing.T) {
	var good, other, bad bytes.Buffer
	_ = NewCallWriter(&good).WriteHello()
	_ = NewCallWriter(&other).writeFrame(FrameHello, nil, []byte("peapod-shim-call/0"))
	_ = NewCallWriter(&bad).WriteCancel(1)
	if err := ReadHello(NewCallReader(&good)); err != nil {
		t.Errorf("our hello: %v", err)
	}
	for name, b := range map[string]*bytes.Buffer{"another version": &other, "another frame": &bad, "nothing": {}} {
		if err := ReadHello(NewCallReader(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
