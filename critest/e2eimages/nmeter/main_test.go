package main

import (
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.UTC)
	for format, want := range map[string]string{
		"%3t":       "03:04:05.678",
		"%t":        "03:04:05",
		"a %6t b":   "a 03:04:05.678901 b",
		"100%%":     "100%",
		"%x":        "%x",
		"trailing%": "trailing%",
	} {
		if got := render(format, now); got != want {
			t.Errorf("render(%q) = %q, want %q", format, got, want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		delay  time.Duration
		format string
		ok     bool
	}{
		{[]string{"-d0", "%3t"}, 0, "%3t", true}, // what the node e2e specs run
		{[]string{"-d", "500", "%t"}, 500 * time.Millisecond, "%t", true},
		{[]string{"%t"}, time.Second, "%t", true},
		{[]string{"-dx", "%t"}, 0, "", false},
		{[]string{"-d"}, 0, "", false},
		{[]string{}, 0, "", false},
	} {
		d, f, err := parseArgs(tc.args)
		if (err == nil) != tc.ok || (tc.ok && (d != tc.delay || f != tc.format)) {
			t.Errorf("parseArgs(%q) = %v, %q, %v", tc.args, d, f, err)
		}
	}
}
