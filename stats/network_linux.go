package stats

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/peapod-runtime/peapod/netns"
)

// ReadNetwork returns the counters of every interface but lo in the network namespace pinned
// at path. It reads /proc/thread-self/net/dev on a thread inside the namespace: /sys/class/net
// shows the namespace sysfs was mounted in, and /proc/self/net the process's, not the thread's.
func ReadNetwork(path string) ([]Interface, error) {
	var raw []byte
	err := netns.Do(path, func() error {
		var err error
		raw, err = os.ReadFile("/proc/thread-self/net/dev")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read interfaces of %s: %w", path, err)
	}
	return parseNetDev(raw)
}

// ReadHostNetwork reads the interfaces of the namespace the calling thread is in: the node's,
// for the collector, whose one read a pass covers the node's end of every pod's veth.
func ReadHostNetwork() ([]Interface, error) {
	raw, err := os.ReadFile("/proc/thread-self/net/dev")
	if err != nil {
		return nil, fmt.Errorf("read the node's interfaces: %w", err)
	}
	return parseNetDev(raw)
}

// parseNetDev parses /proc/net/dev: two header lines, then "name: rx(8 fields) tx(8 fields)".
func parseNetDev(raw []byte) ([]Interface, error) {
	var out []Interface
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 0; sc.Scan(); n++ {
		if n < 2 {
			continue
		}
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			return nil, fmt.Errorf("/proc/net/dev line %q: no interface name", sc.Text())
		}
		name = strings.TrimSpace(name)
		if name == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return nil, fmt.Errorf("/proc/net/dev line %q: %d fields, want 16", sc.Text(), len(f))
		}
		v := make([]uint64, 16)
		for i := range v {
			var err error
			if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				return nil, fmt.Errorf("/proc/net/dev interface %s: %w", name, err)
			}
		}
		out = append(out, Interface{
			Name:    name,
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11],
		})
	}
	return out, sc.Err()
}
