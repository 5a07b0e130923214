//go:build !linux

package client

import "os/exec"

// reap waits for the started child cmd to exit and sends its exit on the returned channel.
func reap(cmd *exec.Cmd) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- cmd.Wait() }()
	return ch
}
