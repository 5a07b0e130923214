//go:build !linux

package cni

import (
	"io"

	"github.com/containernetworking/cni/pkg/invoke"
)

func newExec(stderr io.Writer) invoke.Exec {
	return &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: stderr}}
}
