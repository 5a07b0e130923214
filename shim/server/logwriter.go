package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/shim"
)

// MaxLogLine is the longest piece of a line one log entry holds (the kubelet's limit); a longer
// line is split into partial (P) entries.
const MaxLogLine = 16 << 10

// Log stream names of the CRI log format.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// LogWriter writes a container's output to a file in the CRI log format, one entry per line:
//
//	2026-08-22T10:00:00.123456789Z stdout F the full line
//	2026-08-22T10:00:00.123456789Z stderr P a piece of a longer line
//
// A line ending in a newline is written with F (its "\n" or "\r\n" dropped); a piece of
// MaxLogLine bytes with no newline yet, or what is left at EOF, is written with P. Each entry
// is one write under a lock, so the two streams never interleave inside an entry and Reopen
// loses or repeats nothing.
type LogWriter struct {
	mu     sync.Mutex
	root   string // the log directory, which rel never leaves
	rel    string
	path   string
	f      *os.File
	line   []byte
	now    func() time.Time
	log    *corelog.Logger
	failed bool
}

// OpenLogWriter opens the log file rel beneath the log directory root for appending
// (creating it and its directories if needed), never through a symlink (see OpenLogFile).
func OpenLogWriter(root, rel string, l *corelog.Logger) (*LogWriter, error) {
	f, err := shim.OpenLogFile(root, rel)
	if err != nil {
		return nil, err
	}
	return newLogWriter(root, rel, f.Name(), f, l), nil
}

// newLogWriter writes to f, opened at path (rel beneath root).
func newLogWriter(root, rel, path string, f *os.File, l *corelog.Logger) *LogWriter {
	return &LogWriter{root: root, rel: rel, path: path, f: f, now: time.Now, log: l}
}

// Reopen closes the file and opens its path again: the kubelet has renamed the old file
// away. The path is resolved afresh, with the same refusals as at open.
func (w *LogWriter) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("reopen log %s: writer is closed", w.path)
	}
	f, err := shim.OpenLogFile(w.root, w.rel)
	if err != nil {
		return fmt.Errorf("reopen log: %w", err)
	}
	old := w.f
	w.f = f
	w.failed = false
	return old.Close()
}

// Close closes the file; later entries are dropped.
func (w *LogWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// Copy writes everything r yields as entries of stream until r ends (EOF or an error such as
// EIO from a pty whose other side is gone).
func (w *LogWriter) Copy(r io.Reader, stream string) {
	br := bufio.NewReaderSize(r, MaxLogLine)
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			chunk = bytes.TrimSuffix(chunk[:len(chunk)-1], []byte{'\r'})
			w.entry(stream, 'F', chunk)
			continue
		case errors.Is(err, bufio.ErrBufferFull):
			w.entry(stream, 'P', chunk)
			continue
		}
		if len(chunk) > 0 {
			w.entry(stream, 'P', chunk)
		}
		return
	}
}

func (w *LogWriter) entry(stream string, tag byte, content []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return
	}
	b := w.now().AppendFormat(w.line[:0], time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ', tag, ' ')
	b = append(b, content...)
	b = append(b, '\n')
	w.line = b
	if _, err := w.f.Write(b); err != nil && !w.failed {
		// Keep draining the container's output whatever happens to the file: a full disk must
		// not block the container. Say so once per file.
		w.failed = true
		w.log.Error("write container log", corelog.String("path", w.path), corelog.Error(err))
	}
	if cap(w.line) > 2*MaxLogLine {
		w.line = nil
	}
}
