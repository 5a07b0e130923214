package container

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log"
)

// The names in a checkpoint archive, as the kubelet's checkpoint API users (checkpointctl,
// CRI-O's restore) know them.
const (
	checkpointImagesDir = "checkpoint"      // CRIU's images of the process tree
	checkpointDumpLog   = "dump.log"        // CRIU's log of the dump
	checkpointSpec      = "spec.dump"       // the container's OCI spec
	checkpointConfig    = "config.dump"     // what peapod knows of the container (CheckpointConfig)
	checkpointRootfs    = "rootfs-diff.tar" // the files the container changed or added
	checkpointDeleted   = "deleted.files"   // JSON list of the image's files it deleted
)

// CheckpointConfig is config.dump: the container a checkpoint was taken of.
type CheckpointConfig struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	PodID            string            `json:"podId"`
	RootfsImageName  string            `json:"rootfsImageName"`
	RootfsImageRef   string            `json:"rootfsImageRef"`
	Runtime          string            `json:"runtime"`
	CreatedTime      time.Time         `json:"createdTime"`
	CheckpointedTime time.Time         `json:"checkpointedTime"`
	Labels           map[string]string `json:"labels,omitempty"`
	Annotations      map[string]string `json:"annotations,omitempty"`
}

// Checkpoint writes a checkpoint of a running container to the tar archive at location (an
// absolute path; its directory is created if missing): CRIU's images of its process tree
// (checkpoint/), CRIU's log (dump.log), its OCI spec (spec.dump), config.dump, the files its
// writable layer changed or added (rootfs-diff.tar) and the image files it deleted
// (deleted.files). The container keeps running, as the kubelet's checkpoint API expects.
// The archive appears whole or not at all. A container that is not running is
// FailedPrecondition; what CRIU cannot do on this node is FailedPrecondition with CRIU's
// reason.
func (m *Manager) Checkpoint(ctx context.Context, id, location string) error {
	if !filepath.IsAbs(location) {
		return fmt.Errorf("checkpoint location %q is not an absolute path: %w", location, errdefs.ErrInvalidArgument)
	}
	e, unlock, err := m.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	c := e.Record()
	ctx = log.With(ctx, log.ContainerID(c.ID), log.PodSandboxID(c.PodID))
	if c.State != StateRunning {
		return fmt.Errorf("checkpoint container %s: it is %s, not running: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	client, err := m.shims.client(ctx, c.PodID)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(c.Dir, "checkpoint-")
	if err != nil {
		return fmt.Errorf("checkpoint container %s: %w", c.ID, err)
	}
	defer func() {
		if err := os.RemoveAll(work); err != nil {
			log.From(ctx).Warn("remove checkpoint work dir", zap.Error(err))
		}
	}()
	images, criuWork := filepath.Join(work, checkpointImagesDir), filepath.Join(work, "criu")
	if err := client.Checkpoint(ctx, c.ID, images, criuWork, true); err != nil {
		return fmt.Errorf("checkpoint container %s: %w", c.ID, err)
	}
	cfg := CheckpointConfig{
		ID: c.ID, Name: c.Config.Metadata.Name, PodID: c.PodID,
		RootfsImageName: c.Config.Image, RootfsImageRef: c.ImageID, Runtime: "peapod",
		CreatedTime: c.CreatedAt, CheckpointedTime: time.Now(),
		Labels: c.Config.Labels, Annotations: c.Config.Annotations,
	}
	if err := writeCheckpointArchive(location, checkpointParts{
		images: images, dumpLog: filepath.Join(criuWork, checkpointDumpLog),
		spec: filepath.Join(c.Dir, specFile), upper: filepath.Join(c.Dir, "upper"), tmp: work, config: cfg,
	}); err != nil {
		return fmt.Errorf("checkpoint container %s: %w", c.ID, err)
	}
	log.From(ctx).Info("container checkpointed", zap.String("location", location))
	return nil
}

// checkpointParts are the inputs of a checkpoint archive.
type checkpointParts struct {
	images  string // CRIU's images directory
	dumpLog string // CRIU's log ("" or missing: left out)
	spec    string // the OCI spec file
	upper   string // the container's overlay upper dir
	tmp     string // where the rootfs diff is staged
	config  CheckpointConfig
}

// writeCheckpointArchive writes the archive to a temporary file beside location and renames
// it into place, so that location holds a whole archive or nothing.
func writeCheckpointArchive(location string, p checkpointParts) (retErr error) {
	dir := filepath.Dir(location)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create checkpoint directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(location)+".tmp-")
	if err != nil {
		return fmt.Errorf("create checkpoint archive: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("checkpoint archive: %w", err)
	}
	tw := tar.NewWriter(f)
	if err := addTree(tw, p.images, checkpointImagesDir, nil); err != nil {
		return err
	}
	if p.dumpLog != "" {
		if err := addFile(tw, p.dumpLog, checkpointDumpLog); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := addFile(tw, p.spec, checkpointSpec); err != nil {
		return err
	}
	cfg, err := json.Marshal(p.config)
	if err != nil {
		return fmt.Errorf("encode %s: %w", checkpointConfig, err)
	}
	if err := addBytes(tw, checkpointConfig, cfg); err != nil {
		return err
	}
	diff, deleted, err := rootfsDiff(p.upper, p.tmp)
	if err != nil {
		return err
	}
	defer os.Remove(diff) //nolint:errcheck
	if err := addFile(tw, diff, checkpointRootfs); err != nil {
		return err
	}
	if len(deleted) > 0 {
		b, err := json.Marshal(deleted)
		if err != nil {
			return fmt.Errorf("encode %s: %w", checkpointDeleted, err)
		}
		if err := addBytes(tw, checkpointDeleted, b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write checkpoint archive: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write checkpoint archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write checkpoint archive: %w", err)
	}
	if err := os.Rename(f.Name(), location); err != nil {
		return fmt.Errorf("move checkpoint archive into place: %w", err)
	}
	return nil
}

// rootfsDiff tars the upper dir of a container's overlay into a temporary file in tmp:
// every file the container added or changed. Overlay whiteouts (0/0 character devices) are not files
// of the container: they are returned as deleted paths ("/etc/motd") instead.
func rootfsDiff(upper, tmp string) (path string, deleted []string, retErr error) {
	f, err := os.CreateTemp(tmp, "rootfs-diff-")
	if err != nil {
		return "", nil, fmt.Errorf("rootfs diff: %w", err)
	}
	defer func() {
		_ = f.Close()
		if retErr != nil {
			_ = os.Remove(f.Name())
		}
	}()
	tw := tar.NewWriter(f)
	err = addTree(tw, upper, "", func(rel string, info fs.FileInfo) bool {
		st, ok := info.Sys().(*syscall.Stat_t)
		if info.Mode()&fs.ModeCharDevice != 0 && ok && st.Rdev == 0 {
			deleted = append(deleted, "/"+rel)
			return false
		}
		return true
	})
	if err != nil {
		return "", nil, fmt.Errorf("rootfs diff: %w", err)
	}
	if err := tw.Close(); err != nil {
		return "", nil, fmt.Errorf("rootfs diff: %w", err)
	}
	return f.Name(), deleted, nil
}

// addTree adds root's tree under prefix ("" for the archive's top), never following a
// symlink; keep, if set, decides which entries go in (a refused directory still has its
// contents walked).
func addTree(tw *tar.Writer, root, prefix string, keep func(rel string, info fs.FileInfo) bool) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", root, err)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." && prefix == "" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if keep != nil && !keep(rel, info) {
			return nil
		}
		name := filepath.ToSlash(filepath.Join(prefix, rel))
		var link string
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return fmt.Errorf("read link %s: %w", p, err)
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("tar header of %s: %w", p, err)
		}
		hdr.Name = name
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		if info.Mode().IsRegular() {
			return copyFile(tw, p, info.Size())
		}
		return nil
	})
}

// addFile adds the regular file at path as name.
func addFile(tw *tar.Writer, path, name string) error {
	info, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("checkpoint part %s: %w", name, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("checkpoint part %s: %s is not a regular file", name, path)
	}
	hdr := &tar.Header{Name: name, Mode: 0o600, Size: info.Size(), ModTime: info.ModTime(), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return copyFile(tw, path, info.Size())
}

func addBytes(tw *tar.Writer, name string, b []byte) error {
	hdr := &tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), ModTime: time.Now(), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := tw.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// copyFile copies exactly size bytes of path (its size when its header was written: a file
// that grew meanwhile is cut, one that shrank is an error) without following a symlink.
func copyFile(w io.Writer, path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	if _, err := io.CopyN(w, f, size); err != nil {
		return fmt.Errorf("copy %s: %w", path, err)
	}
	return nil
}
