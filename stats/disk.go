package stats

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DiskUsage walks dir (a writable layer) and returns the space its files occupy (allocated
// blocks, as du counts) and its inodes, each hard-linked inode once, and the size and free
// inodes of the filesystem holding it.
func DiskUsage(dir string) (Disk, error) {
	out := Disk{}
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && path != dir {
				return nil // removed while walking
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		out.Inodes++
		out.UsedBytes += uint64(st.Blocks) * 512
		return nil
	})
	if err != nil {
		return Disk{}, fmt.Errorf("measure %s: %w", dir, err)
	}
	if err := statFS(dir, &out); err != nil {
		return Disk{}, err
	}
	out.At = time.Now()
	return out, nil
}
