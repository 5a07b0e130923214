package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// A starting shim says once, on the ready fd its starter passed, whether it serves: one JSON
// line, with the class of the error that prevents it (ErrorClass) so that the daemon can tell
// "a shim already serves this pod" (AlreadyExists) from a failure.

type readyMessage struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Class string `json:"class,omitempty"`
}

// WriteReady is how a starting shim tells shim/client's Start that it serves (err == nil) or
// why it cannot.
func WriteReady(w io.Writer, err error) error {
	m := readyMessage{OK: err == nil}
	if err != nil {
		m.Error = err.Error()
		m.Class = ErrorClass(err)
	}
	b, _ := json.Marshal(m)
	_, werr := w.Write(append(b, '\n'))
	return werr
}

// ReadReady is what Start makes of a starting shim's message: nil when it serves.
func ReadReady(b []byte) error {
	var m readyMessage
	if err := json.Unmarshal(bytes.TrimSpace(b), &m); err != nil {
		return fmt.Errorf("shim exited before it served (said %q)", b)
	}
	if m.OK {
		return nil
	}
	return ClassError(m.Class, m.Error)
}
