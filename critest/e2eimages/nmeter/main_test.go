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
