package server

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
)

// chunkReader yields data in pieces whose sizes cycle through sizes (each at least 1), as a
// pipe does: a line may arrive in several reads and several lines in one.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := 1 + int(r.sizes[r.i%len(r.sizes)])*67
	r.i++
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// FuzzLogWriter: whatever bytes a container writes, in whatever pieces, the log file holds
// well-formed CRI entries (`<RFC3339Nano> <stream> <P|F> <content>`, one a line), and
// reading them back gives exactly what was written: each F entry is a line whose "\n" (or
// "\r\n") was dropped, each P entry a piece of a line that is continued by the next entry
// (a full buffer) or cut by the end of the output. Nothing is lost, added or reordered.
func FuzzLogWriter(f *testing.F) {
	for _, seed := range []struct {
		data   string
		chunks []byte
	}{
		{"hello\nworld\n", []byte{0}},
		{"no newline", []byte{1}},
		{"a\r\nb\rc\n\n\n", []byte{0, 1, 2}},
		{"\r\n\r\r\n", []byte{0}},
		{string(bytes.Repeat([]byte("x"), MaxLogLine)) + "\r\nend", []byte{255}},
		{string(bytes.Repeat([]byte("y"), MaxLogLine-1)) + "\r\n", []byte{200, 3}},
		{string(bytes.Repeat([]byte("z"), 3*MaxLogLine+5)), []byte{255, 255}},
		{"\x00\xff binary \x1b[31m\n", []byte{0}},
	} {
		f.Add([]byte(seed.data), seed.chunks, true)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data, chunks []byte, stdout bool) {
		if len(chunks) == 0 {
			chunks = []byte{255}
		}
		path := filepath.Join(dir, "fuzz.log")
		_ = os.Remove(path)
		w, err := OpenLogWriter(dir, "fuzz.log", corelog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		stream := StreamStderr
		if stdout {
			stream = StreamStdout
		}
		w.Copy(&chunkReader{data: append([]byte(nil), data...), sizes: chunks}, stream)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkLogFile(raw, stream, data); err != nil {
			t.Fatalf("input %q: %v\nlog:\n%s", data, err, raw)
		}
	})
}

// checkLogFile checks that raw is well-formed CRI log of stream and reads back as want.
func checkLogFile(raw []byte, stream string, want []byte) error {
	pos := 0 // how much of want the entries so far account for
	lines := bytes.SplitAfter(raw, []byte("\n"))
	if last := lines[len(lines)-1]; len(last) == 0 {
		lines = lines[:len(lines)-1]
	} else {
		return fmt.Errorf("the log does not end with a newline: %q", last)
	}
	for i, line := range lines {
		line = line[:len(line)-1]
		ts, rest, ok := bytes.Cut(line, []byte(" "))
		if !ok {
			return fmt.Errorf("entry %d %q: no timestamp", i, line)
		}
		if _, err := time.Parse(time.RFC3339Nano, string(ts)); err != nil {
			return fmt.Errorf("entry %d %q: %w", i, line, err)
		}
		s, rest, ok := bytes.Cut(rest, []byte(" "))
		if !ok || string(s) != stream {
			return fmt.Errorf("entry %d %q: stream %q, want %q", i, line, s, stream)
		}
		tag, content, ok := bytes.Cut(rest, []byte(" "))
		if !ok || len(tag) != 1 || tag[0] != 'P' && tag[0] != 'F' {
			return fmt.Errorf("entry %d %q: tag %q", i, line, tag)
		}
		if len(content) > MaxLogLine {
			return fmt.Errorf("entry %d holds %d bytes, more than %d", i, len(content), MaxLogLine)
		}
		if !bytes.HasPrefix(want[pos:], content) {
			return fmt.Errorf("entry %d content %q is not what was written at offset %d", i, content, pos)
		}
		pos += len(content)
		switch {
		case tag[0] == 'F' && bytes.HasPrefix(want[pos:], []byte("\n")):
			pos++
		case tag[0] == 'F' && bytes.HasPrefix(want[pos:], []byte("\r\n")):
			pos += 2
		case tag[0] == 'F':
			return fmt.Errorf("entry %d is full (F) but no newline follows it at offset %d", i, pos)
		case len(content) != MaxLogLine && i != len(lines)-1:
			// A partial entry is a full buffer, or the end of the output.
			return fmt.Errorf("entry %d is partial (P) with %d bytes but not the last", i, len(content))
		}
	}
	if pos != len(want) {
		return fmt.Errorf("the entries hold %d of the %d bytes written", pos, len(want))
	}
	return nil
}
