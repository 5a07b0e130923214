package main

import (
	"regexp"
	"strings"
)

// Skip is a selected spec that cannot run on this machine, by a unique part of its name.
type Skip struct {
	Spec   string
	Reason string
}

// Skips is the one list of the [NodeConformance] specs make node-conformance skips by name,
// each with its reason. Everything else selected runs, on peapod and on containerd alike.
var Skips = []Skip{}

// SkipRegex is the ginkgo -skip expression matching every entry of Skips ($^, which matches
// no name, when there is none).
func SkipRegex() string {
	parts := make([]string, 0, len(Skips))
	for _, s := range Skips {
		parts = append(parts, regexp.QuoteMeta(s.Spec))
	}
	if len(parts) == 0 {
		return "$^"
	}
	return strings.Join(parts, "|")
}
