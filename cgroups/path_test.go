package cgroups

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
)

func TestPodCgroupParent(t *testing.T) {
	const uid = "6f1c2a3b-0d4e-4f5a-9b8c-7d6e5f4a3b2c"
	const uidSystemd = "6f1c2a3b_0d4e_4f5a_9b8c_7d6e5f4a3b2c"
	tests := []struct {
		name   string
		parent string
		class  QoSClass
		driver string
		want   string // "" = InvalidArgument
	}{
		{"cgroupfs guaranteed", "", Guaranteed, DriverCgroupfs, "/peapod/pod" + uid},
		{"cgroupfs burstable", "", Burstable, DriverCgroupfs, "/peapod/burstable/pod" + uid},
		{"cgroupfs besteffort", "", BestEffort, "", "/peapod/besteffort/pod" + uid},
		{"cgroupfs kubelet parent", "/kubepods/burstable/pod" + uid, BestEffort, DriverCgroupfs, "/kubepods/burstable/pod" + uid},
		{"cgroupfs kubelet guaranteed parent", "/kubepods/pod" + uid, Burstable, DriverCgroupfs, "/kubepods/pod" + uid},
		{"cgroupfs relative parent", "kubepods/pod" + uid, Burstable, DriverCgroupfs, ""},
		{"cgroupfs escaping parent", "/kubepods/../../etc", Burstable, DriverCgroupfs, ""},
		{"cgroupfs root parent", "/", Burstable, DriverCgroupfs, ""},
		{"cgroupfs slice parent is just a name", "kubepods.slice", Burstable, DriverCgroupfs, ""},
		{"systemd guaranteed", "", Guaranteed, DriverSystemd, "/peapod.slice/peapod-pod" + uidSystemd + ".slice"},
		{"systemd burstable", "", Burstable, DriverSystemd, "/peapod.slice/peapod-burstable.slice/peapod-burstable-pod" + uidSystemd + ".slice"},
		{"systemd besteffort", "", BestEffort, DriverSystemd, "/peapod.slice/peapod-besteffort.slice/peapod-besteffort-pod" + uidSystemd + ".slice"},
		{"systemd kubelet parent", "kubepods-burstable-pod" + uidSystemd + ".slice", Guaranteed, DriverSystemd,
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice"},
		{"systemd kubelet guaranteed parent", "kubepods-pod" + uidSystemd + ".slice", Guaranteed, DriverSystemd,
			"/kubepods.slice/kubepods-pod" + uidSystemd + ".slice"},
		{"systemd path parent", "/kubepods/burstable", Burstable, DriverSystemd, ""},
		{"systemd not a slice", "kubepods-burstable", Burstable, DriverSystemd, ""},
		{"systemd bad slice", "kubepods--x.slice", Burstable, DriverSystemd, ""},
		{"systemd root slice", "-.slice", Burstable, DriverSystemd, ""},
		{"unknown driver", "", Burstable, "cgroupfs2", ""},
		{"no class", "", 0, DriverCgroupfs, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PodCgroupParent(tc.parent, uid, tc.class, tc.driver)
			if tc.want == "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("PodCgroupParent = %q, %v; want InvalidArgument", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("PodCgroupParent = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestPodCgroupParentBadUID(t *testing.T) {
	for _, uid := range []string{"", "a/b", "..", "."} {
		if _, err := PodCgroupParent("", uid, Burstable, DriverCgroupfs); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("uid %q: %v, want InvalidArgument", uid, err)
		}
	}
	// A kubelet's parent needs no uid.
	if got, err := PodCgroupParent("/kubepods/podx", "", Burstable, DriverCgroupfs); err != nil || got != "/kubepods/podx" {
		t.Errorf("caller parent without uid = %q, %v", got, err)
	}
}

func TestContainerCgroups(t *testing.T) {
	const id = "0123456789abcdef"
	tests := []struct {
		name, driver, pod string
		id                string
		cgroupsPath, path string // "" = InvalidArgument
	}{
		{"cgroupfs", DriverCgroupfs, "/peapod/besteffort/podu", id, "/peapod/besteffort/podu/" + id, "/peapod/besteffort/podu/" + id},
		{"cgroupfs kubelet", "", "/kubepods/burstable/podu", id, "/kubepods/burstable/podu/" + id, "/kubepods/burstable/podu/" + id},
		{"systemd", DriverSystemd, "/peapod.slice/peapod-burstable.slice/peapod-burstable-podu.slice", id,
			"peapod-burstable-podu.slice:peapod:" + id, "/peapod.slice/peapod-burstable.slice/peapod-burstable-podu.slice/peapod-" + id + ".scope"},
		{"systemd pod not a slice", DriverSystemd, "/peapod/podu", id, "", ""},
		{"relative pod", DriverCgroupfs, "peapod/podu", id, "", ""},
		{"id with slash", DriverCgroupfs, "/peapod/podu", "a/b", "", ""},
		{"id with colon", DriverSystemd, "/peapod.slice/peapod-podu.slice", "a:b", "", ""},
		{"empty id", DriverCgroupfs, "/peapod/podu", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp, err1 := ContainerCgroupsPath(tc.driver, tc.pod, tc.id)
			p, err2 := ContainerCgroupPath(tc.driver, tc.pod, tc.id)
			if tc.cgroupsPath == "" {
				if !errors.Is(err1, errdefs.ErrInvalidArgument) || !errors.Is(err2, errdefs.ErrInvalidArgument) {
					t.Fatalf("got %q, %v and %q, %v; want InvalidArgument", cp, err1, p, err2)
				}
				return
			}
			if err1 != nil || err2 != nil || cp != tc.cgroupsPath || p != tc.path {
				t.Fatalf("got %q, %v and %q, %v; want %q and %q", cp, err1, p, err2, tc.cgroupsPath, tc.path)
			}
		})
	}
}

func TestSystemdUnit(t *testing.T) {
	tests := []struct {
		path, parent, name, prefix string
	}{
		{"/peapod.slice", "-.slice", "peapod.slice", ""},
		{"/peapod.slice/peapod-besteffort.slice", "peapod.slice", "peapod-besteffort.slice", ""},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice", "kubepods-burstable.slice", "kubepods-burstable-podx.slice", ""},
		{"/peapod.slice/peapod-podx.slice/peapod-abc.scope", "peapod-podx.slice", "abc", "peapod"},
		{"/peapod/podx", "", "", ""},                                   // not a unit
		{"/peapod.slice/other-podx.slice", "", "", ""},                 // not nested the systemd way
		{"/peapod.slice/peapod-podx.slice/crio-abc.scope", "", "", ""}, // not our scope
	}
	for _, tc := range tests {
		parent, name, prefix, err := systemdUnit(tc.path)
		if tc.name == "" {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("systemdUnit(%s) = %q %q %q %v, want InvalidArgument", tc.path, parent, name, prefix, err)
			}
			continue
		}
		if err != nil || parent != tc.parent || name != tc.name || prefix != tc.prefix {
			t.Errorf("systemdUnit(%s) = %q %q %q %v, want %q %q %q", tc.path, parent, name, prefix, err, tc.parent, tc.name, tc.prefix)
		}
	}
}
