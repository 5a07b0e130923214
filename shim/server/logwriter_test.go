package server

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
)

func TestLogWriterFormat(t *testing.T) {
	long := strings.Repeat("x", MaxLogLine)
	for _, tc := range []struct {
		name   string
		stream string
		in     []string // successive writes
		want   []string
	}{
		{name: "full lines", stream: StreamStdout, in: []string{"a\nb\n"}, want: []string{"stdout F a", "stdout F b"}},
		{name: "line split across writes", stream: StreamStderr, in: []string{"hel", "lo\n"}, want: []string{"stderr F hello"}},
		{name: "crlf dropped", stream: StreamStdout, in: []string{"tty\r\n"}, want: []string{"stdout F tty"}},
		{name: "empty line", stream: StreamStdout, in: []string{"\n"}, want: []string{"stdout F "}},
		{name: "partial at eof", stream: StreamStdout, in: []string{"done\nno newline"}, want: []string{"stdout F done", "stdout P no newline"}},
		{name: "long line split", stream: StreamStdout, in: []string{long + "yz\n"}, want: []string{"stdout P " + long, "stdout F yz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "sub", "0.log")
			w, err := OpenLogWriter(dir, "sub/0.log", corelog.New(zaptest.NewLogger(t).Core()))
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 8, 22, 10, 0, 0, 123456789, time.UTC)
			w.now = func() time.Time { return at }
			r, pw := io.Pipe()
			go func() {
				for _, s := range tc.in {
					pw.Write([]byte(s))
				}
				pw.Close()
			}()
			w.Copy(r, tc.stream)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var want string
			for _, l := range tc.want {
				want += "2026-08-22T10:00:00.123456789Z " + l + "\n"
			}
			if string(b) != want {
				t.Errorf("log:\n%q\nwant:\n%q", b, want)
			}
		})
	}
}

func TestLogWriterReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	w, err := OpenLogWriter(dir, "0.log", corelog.New(zaptest.NewLogger(t).Core()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Copy(strings.NewReader("one\n"), StreamStdout)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.Copy(strings.NewReader("two\n"), StreamStdout)
	for file, want := range map[string]string{path + ".1": "one", path: "two"} {
		b, _ := os.ReadFile(file)
		if !strings.HasSuffix(string(b), " stdout F "+want+"\n") || strings.Count(string(b), "\n") != 1 {
			t.Errorf("%s: %q, want one entry %q", file, b, want)
		}
	}
}
