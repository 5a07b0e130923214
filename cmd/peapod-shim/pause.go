package main

// The pod PID namespace holder runs as `peapod-shim pause`. A constructor catches that before
// the Go runtime starts (as nsenter's does for init), so the holder is a few pages of C: it
// blocks every signal, reaps whatever orphan the namespace hands it, and exits on SIGTERM or
// SIGINT. As PID 1 of its namespace it gets no signal it has no handler for, except SIGKILL
// from the shim.

/*
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((constructor)) static void peapod_pause(void)
{
	char buf[4096];
	ssize_t n;
	size_t first;
	int fd;
	sigset_t all;

	// libcontainer's init and its helpers must not be slowed or confused.
	if (getenv("_LIBCONTAINER_INITPIPE") != NULL)
		return;
	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	first = strlen(buf);
	if ((ssize_t)first + 1 >= n || strcmp(buf + first + 1, "pause") != 0)
		return;

	if (chdir("/") < 0)
		_exit(1);
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		int sig = 0;
		if (sigwait(&all, &sig) != 0)
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			_exit(0);
		if (sig == SIGCHLD)
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
	}
}
*/
import "C"
