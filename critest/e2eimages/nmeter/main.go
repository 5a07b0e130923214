// Command nmeter stands in for busybox's nmeter applet, which Debian's busybox lacks and the
// node e2e suite's container lifecycle specs use to read the time with milliseconds
// (`nmeter -d0 '%3t' | head -n1`). It knows only the time directive: "%t" is HH:MM:SS and
// "%Nt" the same with N digits of fractional seconds; "%%" is "%"; other text is copied. It
// prints one line every -d milliseconds (default 1000) until its output is closed.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	delay, format, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "nmeter:", err)
		fmt.Fprintln(os.Stderr, "usage: nmeter [-d MSEC] FORMAT")
		os.Exit(1)
	}
	for {
		if _, err := fmt.Fprintln(os.Stdout, render(format, time.Now())); err != nil {
			os.Exit(0)
		}
		time.Sleep(delay)
	}
}

// parseArgs reads busybox's syntax: -dN or -d N (milliseconds), then the format.
func parseArgs(args []string) (time.Duration, string, error) {
	ms := 1000
	var format []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-d") {
			format = append(format, a)
			continue
		}
		v := strings.TrimPrefix(a, "-d")
		if v == "" {
			if i+1 == len(args) {
				return 0, "", fmt.Errorf("-d needs a value")
			}
			i++
			v = args[i]
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, "", fmt.Errorf("bad -d %q", v)
		}
		ms = n
	}
	if len(format) != 1 {
		return 0, "", fmt.Errorf("want one format, got %d", len(format))
	}
	return time.Duration(ms) * time.Millisecond, format[0], nil
}

func render(format string, now time.Time) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		digits := 0
		for j < len(format) && format[j] >= '0' && format[j] <= '9' {
			digits = digits*10 + int(format[j]-'0')
			j++
		}
		switch {
		case j < len(format) && format[j] == 't':
			layout := "15:04:05"
			if digits > 0 {
				layout += "." + strings.Repeat("0", min(digits, 9))
			}
			b.WriteString(now.Format(layout))
			i = j
		case j < len(format) && format[j] == '%':
			b.WriteByte('%')
			i = j
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
