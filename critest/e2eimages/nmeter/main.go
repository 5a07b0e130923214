// Command nmeter stands in for busybox's nmeter applet, which Debian's busybox lacks and the
// node e2e suite's container lifecycle specs use to read the time with milliseconds
// (`nmeter -d0 '%3t' | head -n1`). It knows only the time directive: "%t" is HH:MM:SS and
// "%Nt" the same with N digits of fractional seconds; "%%" is "%"; other text is copied. It
// prints one line every -d milliseconds (default 1000) until its output is closed.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	delay := flag.Int("d", 1000, "milliseconds between lines")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: nmeter [-d MSEC] FORMAT")
		os.Exit(1)
	}
	format := flag.Arg(0)
	for {
		if _, err := fmt.Fprintln(os.Stdout, render(format, time.Now())); err != nil {
			os.Exit(0)
		}
		time.Sleep(time.Duration(*delay) * time.Millisecond)
	}
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
