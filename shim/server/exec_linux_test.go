package server

import (
	"errors"
	"testing"
)

func TestExecStartExitCode(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		code int
		ok   bool
	}{
		{`unable to start container process: exec: "nope": executable file not found in $PATH`, 127, true},
		{`exec: "/no/such": stat /no/such: no such file or directory`, 127, true},
		{`exec: "/etc/passwd": permission denied`, 126, true},
		{`chdir to cwd ("/nope") set in config.json failed: no such file or directory`, 0, false},
		{`container not running`, 0, false},
	} {
		code, ok := execStartExitCode(errors.New(tc.msg))
		if code != tc.code || ok != tc.ok {
			t.Errorf("%q: got %d %v, want %d %v", tc.msg, code, ok, tc.code, tc.ok)
		}
	}
}
