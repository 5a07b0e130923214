package main

// `peapod-shim serve` must run with one P from its first instruction, not only from
// tuneMemory on: a runtime that starts with one P per CPU and gives them up in main keeps,
// for the shim's whole life, the spans its second P's allocation cache half filled during
// start-up and the structures of that P, about 350 KiB of private memory per pod on a
// 2-CPU node. The runtime reads GOMAXPROCS from the environment the process was executed
// with (not from libc's environ), so when it is unset this constructor adds it and executes
// the binary again, before the Go runtime starts: it costs one execve (well under a
// millisecond) once per pod. Any other command, and a GOMAXPROCS set by the caller, are left
// alone.

/*
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void peapod_serve_procs(int argc, char **argv, char **envp)
{
	(void)envp;
	if (argc < 2 || argv == NULL || argv[1] == NULL || strcmp(argv[1], "serve") != 0)
		return;
	// libcontainer's init and its helpers are never "serve", but be sure.
	if (getenv("_LIBCONTAINER_INITPIPE") != NULL || getenv("GOMAXPROCS") != NULL)
		return;
	if (setenv("GOMAXPROCS", "1", 0) != 0)
		return;
	execv("/proc/self/exe", argv);
	// Not re-executed: run on, tuneMemory still sets one P in main.
}
*/
import "C"
