package main

// The pod PID namespace holder runs as `peapod-shim-runc pause [UID:GID]` (its argv[0] says
// peapod-shim). A constructor catches that before the Go runtime starts (as nsenter's does for
// init), so the holder is a few pages of C: it drops every capability (bounding set included) and sets no_new_privs, becomes
// UID:GID with no supplementary groups when given (the pod's run_as_user and run_as_group, as
// a pause container would run), blocks every signal, reaps whatever orphan the namespace hands
// it, and exits on SIGTERM or SIGINT. As PID 1 of its namespace it gets no signal it has no
// handler for, except SIGKILL from the shim. A step that fails exits 1: a holder never runs
// with more privilege than asked.
//
// For a pod with a user namespace of its own, PEAPOD_PAUSE_USERNS names it: the PID namespace
// must belong to it (or the pod's containers could not mount their /proc), and only a
// single-threaded process can join a user namespace, so the holder does it itself, here,
// before the Go runtime starts. It joins, unshares a PID namespace and forks that namespace's
// PID 1; both become the namespace's root (0:0 unless UID:GID says otherwise, never the
// node's root) with no capabilities. The parent stays as the watcher the shim knows: it
// exits with PID 1's status, and PID 1 dies with it (PR_SET_PDEATHSIG), so killing the
// watcher ends the namespace as killing a plain holder does.

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// peapod_pause_drop becomes uid:gid when user is not NULL and leaves the process without
// capabilities and with no_new_privs; it returns -1 on any failure.
static int peapod_pause_drop(const char *user)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	unsigned long uid = 0, gid = 0;
	char *end;
	int cap;

	if (user != NULL) {
		errno = 0;
		uid = strtoul(user, &end, 10);
		if (errno != 0 || end == user || *end != ':' || uid > 4294967294UL)
			return -1;
		user = end + 1;
		gid = strtoul(user, &end, 10);
		if (errno != 0 || end == user || *end != '\0' || gid > 4294967294UL)
			return -1;
	}
	// The bounding set needs CAP_SETPCAP to shrink: before the ids change.
	for (cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -1;
	if (user != NULL) {
		if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
			return -1;
	}
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -1;
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

// peapod_pause_fork joins the user namespace at path, unshares a PID namespace and forks its
// PID 1. In the child it returns 0, with *alive the read end of a pipe whose other end only
// the watcher holds. The parent never returns: it drops to user, then watches the child and
// exits with its status, or kills it on SIGTERM or SIGINT. Every signal is blocked on return.
static int peapod_pause_fork(const char *path, const char *user, int *alive)
{
	int fd, pipefd[2];
	pid_t child;
	sigset_t all;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (setns(fd, CLONE_NEWUSER) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	if (unshare(CLONE_NEWPID) < 0 || pipe2(pipefd, O_CLOEXEC) < 0)
		return -1;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	child = fork();
	if (child < 0)
		return -1;
	if (child == 0) {
		close(pipefd[1]);
		*alive = pipefd[0];
		return 0;
	}
	close(pipefd[0]);
	if (chdir("/") < 0 || peapod_pause_drop(user) < 0) {
		kill(child, SIGKILL);
		_exit(1);
	}
	for (;;) {
		int sig = 0, status = 0;
		if (sigwait(&all, &sig) != 0)
			continue;
		if (sig == SIGTERM || sig == SIGINT) {
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
			_exit(0);
		}
		if (sig == SIGCHLD && waitpid(child, &status, WNOHANG) == child)
			_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	}
}

__attribute__((constructor)) static void peapod_pause(void)
{
	char buf[4096];
	ssize_t n;
	size_t first;
	const char *user, *userns;
	int fd, alive = -1;
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
	// The optional UID:GID argument follows "pause".
	user = buf + first + 1 + strlen("pause") + 1;
	if (user >= buf + n || *user == '\0')
		user = NULL;

	userns = getenv("PEAPOD_PAUSE_USERNS");
	if (userns != NULL && *userns != '\0') {
		// Ids are the namespace's from here: its root unless told otherwise.
		if (user == NULL)
			user = "0:0";
		if (peapod_pause_fork(userns, user, &alive) < 0)
			_exit(1);
	}
	if (chdir("/") < 0 || peapod_pause_drop(user) < 0)
		_exit(1);
	if (alive >= 0) {
		// A credential change clears the parent-death signal: set it after the drop, then
		// make sure the watcher did not die before it was set.
		struct pollfd p = {alive, POLLIN, 0};
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || poll(&p, 1, 0) != 0)
			_exit(1);
		close(alive);
	}
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
