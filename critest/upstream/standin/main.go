// Command standin is the one static program inside upstream critest's test images that busybox
// cannot play. It chooses what to be from the name of the file it runs from, as busybox does:
//
//   - nginx: a web server that behaves as upstream's nginx images do for the specs: its
//     process name is nginx, its command line reads "nginx: master process nginx -g daemon off;",
//     it writes its PID to /var/run/nginx.pid, listens on the port of the "listen N;" line of
//     /etc/nginx/conf.d/default.conf (80 without one), serves /usr/share/nginx/html and logs
//     each request to stdout.
//   - httpd: a web server on port 80 serving /usr/local/apache2/htdocs that logs its start
//     and each request, as upstream's httpd image does.
//   - nnp: prints "Effective uid: N" for the effective uid it runs with (installed setuid root
//     in the nonewprivs image, so N shows whether no_new_privs held).
//   - ipcs: lists the System V shared memory segments of its IPC namespace, from
//     /proc/sysvipc/shm, in util-linux's "ipcs -m" layout (Debian's busybox has no ipcs).
//   - pause: waits for SIGTERM or SIGINT and exits 0.
//
// The upstream runner (critest/upstream) builds it with CGO_ENABLED=0 and installs it under
// those names.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// nginxTitle is the command line upstream's nginx master process shows.
const nginxTitle = "nginx: master process nginx -g daemon off;"

func main() {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	name := filepath.Base(exe)
	if err := run(name, exe, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func run(name, exe string, args []string) error {
	switch name {
	case "nginx":
		return nginx(exe)
	case "httpd":
		return httpd()
	case "nnp":
		fmt.Printf("Effective uid: %d\n", os.Geteuid())
		return nil
	case "ipcs":
		return ipcs(os.Stdout, "/proc/sysvipc/shm")
	case "pause":
		return pause()
	}
	return fmt.Errorf("unknown applet %q (run as nginx, httpd, nnp, ipcs or pause)", name)
}

func nginx(exe string) error {
	if os.Args[0] != nginxTitle {
		// Re-execute under the master-process title; the kernel names the process after
		// the file (nginx), as pidof sees it.
		if err := syscall.Exec(exe, []string{nginxTitle}, os.Environ()); err != nil {
			return fmt.Errorf("re-exec as %q: %w", nginxTitle, err)
		}
	}
	port, err := nginxPort("/etc/nginx/conf.d/default.conf")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if err := os.MkdirAll("/var/run", 0o755); err != nil {
		return fmt.Errorf("pid file dir: %w", err)
	}
	if err := os.WriteFile("/var/run/nginx.pid", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return serve(ln, "/usr/share/nginx/html", os.Stdout)
}

var listenLine = regexp.MustCompile(`^\s*listen\s+(\d+)\s*;`)

// nginxPort reads the port of the first "listen N;" line of conf, 80 when the file is absent
// or has none.
func nginxPort(conf string) (int, error) {
	f, err := os.Open(conf)
	if errors.Is(err, os.ErrNotExist) {
		return 80, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", conf, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
			p, err := strconv.Atoi(m[1])
			if err != nil || p <= 0 || p > 65535 {
				return 0, fmt.Errorf("%s: bad listen port %q", conf, m[1])
			}
			return p, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", conf, err)
	}
	return 80, nil
}

func httpd() error {
	ln, err := net.Listen("tcp", ":80")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(os.Stderr, "httpd: serving /usr/local/apache2/htdocs on %s\n", ln.Addr())
	return serve(ln, "/usr/local/apache2/htdocs", os.Stderr)
}

// serve answers HTTP on ln from the files under root until SIGTERM, SIGINT or SIGQUIT, logging
// one line per request to logw.
func serve(ln net.Listener, root string, logw *os.File) error {
	files := http.FileServer(http.Dir(root))
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(logw, "%s - - [%s] \"%s %s %s\"\n", r.RemoteAddr, time.Now().UTC().Format("02/Jan/2006:15:04:05 -0700"), r.Method, r.URL.Path, r.Proto)
			files.ServeHTTP(w, r)
		}),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		return srv.Close()
	}
}

// ipcs writes the segments listed in shm (the format of /proc/sysvipc/shm) as util-linux's
// "ipcs -m" does: key, shmid, owner, perms, bytes, nattch.
func ipcs(w io.Writer, shm string) error {
	f, err := os.Open(shm)
	if err != nil {
		return fmt.Errorf("open %s: %w", shm, err)
	}
	defer f.Close()
	out := bufio.NewWriter(w)
	fmt.Fprintf(out, "\n------ Shared Memory Segments --------\n")
	fmt.Fprintf(out, "%-10s %-10s %-10s %-10s %-10s %-10s %-10s\n", "key", "shmid", "owner", "perms", "bytes", "nattch", "status")
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		if first { // the header line
			first = false
			continue
		}
		// key shmid perms size cpid lpid nattch uid gid cuid cgid ...
		fld := strings.Fields(sc.Text())
		if len(fld) < 9 {
			continue
		}
		key, err := strconv.ParseInt(fld[0], 10, 64)
		if err != nil {
			return fmt.Errorf("%s: bad key %q", shm, fld[0])
		}
		// perms is octal already.
		fmt.Fprintf(out, "0x%08x %-10s %-10s %-10s %-10s %-10s\n", uint32(key), fld[1], fld[7], fld[2], fld[3], fld[6])
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", shm, err)
	}
	fmt.Fprintln(out)
	return out.Flush()
}

func pause() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	return nil
}
