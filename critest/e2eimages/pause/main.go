// Command pause is the node e2e images' pause: it sleeps until SIGINT or SIGTERM (then exits
// 0) and reaps every child that exits meanwhile, so that as PID 1 of a pod's shared PID
// namespace it leaves no zombies. Built statically into registry.k8s.io/pause by
// critest/e2eimages.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
