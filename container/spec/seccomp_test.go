package spec

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var amd64 = Platform{Arch: "amd64", Kernel: [2]int{6, 1}}

// allowed reports whether the filter allows name unconditionally, conditionally (with
// argument checks), or not at all, and what a matching non-allow rule returns.
func ruleFor(sc *specs.LinuxSeccomp, name string) (allowUncond, allowCond bool, other *specs.LinuxSyscall) {
	for i, r := range sc.Syscalls {
		if !slices.Contains(r.Names, name) {
			continue
		}
		switch {
		case r.Action == specs.ActAllow && len(r.Args) == 0:
			allowUncond = true
		case r.Action == specs.ActAllow:
			allowCond = true
		default:
			other = &sc.Syscalls[i]
		}
	}
	return
}

func TestDefaultSeccomp(t *testing.T) {
	sc, err := DefaultSeccomp(DefaultCapabilities(), amd64)
	if err != nil {
		t.Fatal(err)
	}
	if sc.DefaultAction != specs.ActErrno || sc.DefaultErrnoRet == nil || *sc.DefaultErrnoRet != 1 {
		t.Fatalf("default action %s %v", sc.DefaultAction, sc.DefaultErrnoRet)
	}
	if want := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}; !slices.Equal(sc.Architectures, want) {
		t.Fatalf("architectures %v", sc.Architectures)
	}
	for _, name := range []string{"read", "write", "openat", "execve", "futex", "mmap", "socket", "chroot", "arch_prctl", "exit_group", "rt_sigreturn"} {
		if ok, _, _ := ruleFor(sc, name); !ok {
			t.Errorf("%s not allowed", name)
		}
	}
	for _, name := range []string{"unshare", "setns", "mount", "umount2", "pivot_root", "keyctl", "add_key", "request_key",
		"kexec_load", "kexec_file_load", "bpf", "ptrace", "perf_event_open", "reboot", "swapon", "swapoff",
		"init_module", "finit_module", "delete_module", "open_by_handle_at", "iopl", "settimeofday", "syslog",
		"set_tls", "io_uring_setup"} {
		if ok, cond, _ := ruleFor(sc, name); ok || cond {
			t.Errorf("%s allowed without its capability", name)
		}
	}
	// clone is allowed only without namespace flags; clone3 answers ENOSYS.
	_, cond, _ := ruleFor(sc, "clone")
	if !cond {
		t.Fatal("clone not conditionally allowed")
	}
	for _, r := range sc.Syscalls {
		if slices.Contains(r.Names, "clone") {
			a := r.Args[0]
			if a.Index != 0 || a.Op != specs.OpMaskedEqual || a.Value&0x10000000 == 0 || a.Value&0x20000 == 0 || a.ValueTwo != 0 {
				t.Fatalf("clone filter %+v", a)
			}
		}
	}
	if _, _, r := ruleFor(sc, "clone3"); r == nil || r.Action != specs.ActErrno || *r.ErrnoRet != 38 {
		t.Fatalf("clone3 rule %+v", r)
	}
	if _, cond, _ := ruleFor(sc, "personality"); !cond {
		t.Fatal("personality not conditionally allowed")
	}
}

func TestDefaultSeccompFollowsCapabilities(t *testing.T) {
	caps := append(DefaultCapabilities(), "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME")
	sc, err := DefaultSeccomp(caps, amd64)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"unshare", "setns", "mount", "clone", "clone3", "bpf", "ptrace", "process_vm_readv", "settimeofday"} {
		if ok, _, _ := ruleFor(sc, name); !ok {
			t.Errorf("%s not allowed with its capability", name)
		}
	}
	if _, cond, other := ruleFor(sc, "clone"); cond {
		t.Error("clone still filtered with CAP_SYS_ADMIN")
	} else if _, _, other = ruleFor(sc, "clone3"); other != nil {
		t.Error("clone3 still ENOSYS with CAP_SYS_ADMIN")
	}
	for _, name := range []string{"reboot", "init_module", "kexec_load"} {
		if ok, _, _ := ruleFor(sc, name); ok {
			t.Errorf("%s allowed without its capability", name)
		}
	}
}

func TestDefaultSeccompArm64(t *testing.T) {
	sc, err := DefaultSeccomp(DefaultCapabilities(), Platform{Arch: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []specs.Arch{specs.ArchAARCH64, specs.ArchARM}; !slices.Equal(sc.Architectures, want) {
		t.Fatalf("architectures %v", sc.Architectures)
	}
	if ok, _, _ := ruleFor(sc, "set_tls"); !ok {
		t.Error("set_tls not allowed on arm64")
	}
	if ok, _, _ := ruleFor(sc, "arch_prctl"); ok {
		t.Error("arch_prctl allowed on arm64")
	}
}

func TestSeccompForms(t *testing.T) {
	dir := t.TempDir()
	oci := filepath.Join(dir, "oci.json")
	writeFile(t, oci, `{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
		"syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`)
	docker := filepath.Join(dir, "docker.json")
	writeFile(t, docker, `{"defaultAction":"SCMP_ACT_ERRNO",
		"archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]},
		           {"architecture":"SCMP_ARCH_AARCH64","subArchitectures":[]}],
		"syscalls":[
			{"name":"read","action":"SCMP_ACT_ALLOW"},
			{"names":["write"],"action":"SCMP_ACT_ALLOW","comment":"always"},
			{"names":["arm_only"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["arm64"]}},
			{"names":["admin_only"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
			{"names":["not_admin"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_SYS_ADMIN"]}},
			{"names":["new_kernel"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"6.5"}},
			{"names":["old_kernel"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8"}},
			{"names":["not_amd64"],"action":"SCMP_ACT_ALLOW","excludes":{"arches":["amd64"]}}
		]}`)
	invalid := filepath.Join(dir, "invalid.json")
	writeFile(t, invalid, `{"defaultAction": `)
	badAction := filepath.Join(dir, "bad-action.json")
	writeFile(t, badAction, `{"defaultAction":"SCMP_ACT_EXPLODE"}`)

	names := func(sc *specs.LinuxSeccomp) (out []string) {
		for _, r := range sc.Syscalls {
			out = append(out, r.Names...)
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		sp         *SecurityProfile
		privileged bool
		wantNil    bool
		wantErr    string // substring of an InvalidArgument error
		check      func(t *testing.T, sc *specs.LinuxSeccomp)
	}{
		{name: "not set is unconfined", sp: nil, wantNil: true},
		{name: "unconfined", sp: &SecurityProfile{Type: ProfileUnconfined}, wantNil: true},
		{name: "privileged ignores the profile", sp: &SecurityProfile{Type: ProfileRuntimeDefault}, privileged: true, wantNil: true},
		{name: "runtime default", sp: &SecurityProfile{Type: ProfileRuntimeDefault}, check: func(t *testing.T, sc *specs.LinuxSeccomp) {
			if sc.DefaultAction != specs.ActErrno || len(sc.Syscalls) < 10 {
				t.Fatalf("%+v", sc)
			}
		}},
		{name: "localhost OCI", sp: &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: oci}, check: func(t *testing.T, sc *specs.LinuxSeccomp) {
			if sc.DefaultAction != specs.ActAllow || sc.Syscalls[0].Names[0] != "mkdir" || *sc.Syscalls[0].ErrnoRet != 13 ||
				!slices.Equal(sc.Architectures, []specs.Arch{specs.ArchX86_64}) {
				t.Fatalf("%+v", sc)
			}
		}},
		{name: "localhost docker format", sp: &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: docker}, check: func(t *testing.T, sc *specs.LinuxSeccomp) {
			if got, want := names(sc), []string{"read", "write", "not_admin", "old_kernel"}; !slices.Equal(got, want) {
				t.Fatalf("syscalls %v, want %v", got, want)
			}
			if !slices.Equal(sc.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86}) {
				t.Fatalf("architectures %v", sc.Architectures)
			}
		}},
		{name: "localhost missing file", sp: &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: filepath.Join(dir, "nope.json")}, wantErr: "nope.json"},
		{name: "localhost relative path", sp: &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: "profiles/x.json"}, wantErr: "not absolute"},
		{name: "localhost invalid JSON", sp: &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: invalid}, wantErr: "invalid.json"},
		{name: "localhost bad action", sp: &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: badAction}, wantErr: "SCMP_ACT_EXPLODE"},
		{name: "unknown type", sp: &SecurityProfile{Type: 9}, wantErr: "type 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := Seccomp(tc.sp, tc.privileged, DefaultCapabilities(), amd64)
			switch {
			case tc.wantErr != "":
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want InvalidArgument mentioning %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case tc.wantNil:
				if sc != nil {
					t.Fatalf("got %+v, want nil", sc)
				}
			default:
				tc.check(t, sc)
				if _, err := json.Marshal(sc); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestParseLegacyProfile(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *SecurityProfile
		err  bool
	}{
		{in: "", want: nil},
		{in: "runtime/default", want: &SecurityProfile{Type: ProfileRuntimeDefault}},
		{in: "docker/default", want: &SecurityProfile{Type: ProfileRuntimeDefault}},
		{in: "unconfined", want: &SecurityProfile{Type: ProfileUnconfined}},
		{in: "localhost//var/lib/kubelet/seccomp/p.json", want: &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: "/var/lib/kubelet/seccomp/p.json"}},
		{in: "bogus", err: true},
	} {
		got, err := ParseLegacyProfile(tc.in)
		if tc.err {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%q: err = %v", tc.in, err)
			}
			continue
		}
		if err != nil || (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("%q: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestDefaultProfileIsWellFormed(t *testing.T) {
	var raw struct {
		Syscalls []struct {
			Names []string `json:"names"`
		} `json:"syscalls"`
	}
	if err := json.Unmarshal(defaultSeccompJSON, &raw); err != nil {
		t.Fatal(err)
	}
	for _, r := range raw.Syscalls {
		for _, n := range r.Names {
			if n == "" || strings.ContainsAny(n, " \t") {
				t.Errorf("bad syscall name %q", n)
			}
		}
	}
}
