package spec

import (
	"fmt"
	"slices"

	"github.com/containerd/errdefs"
)

// Image is what an image's config contributes to its containers.
type Image struct {
	Entrypoint []string
	Cmd        []string
	Env        []string // KEY=VALUE
	WorkingDir string
	// User is the image's USER: "", "uid", "uid:gid", "name", "name:group" (or mixed).
	User string
	// Volumes are the container paths the image declares with VOLUME.
	Volumes []string
}

// ProcessArgs merges the image's Entrypoint and Cmd with the container's command and args
// the way Kubernetes defines it:
//
//	command set           → command + args (the image's Entrypoint and Cmd are ignored)
//	only args set         → image Entrypoint + args
//	neither               → image Entrypoint + image Cmd
//
// An Entrypoint of a single empty string (what `ENTRYPOINT [""]` leaves) counts as none.
// An empty result is ErrInvalidArgument.
func ProcessArgs(img Image, command, args []string) ([]string, error) {
	var out []string
	switch {
	case len(command) > 0:
		out = append(slices.Clone(command), args...)
	default:
		entry := img.Entrypoint
		if len(entry) == 1 && entry[0] == "" {
			entry = nil
		}
		if len(args) == 0 {
			args = img.Cmd
		}
		out = append(slices.Clone(entry), args...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no command specified: the container has no command or args and the image no entrypoint or cmd: %w", errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// EnvVar is one environment variable of the container config.
type EnvVar struct {
	Key   string
	Value string
}

// ProcessEnv builds the environment: PATH (DefaultPath unless the image sets one), HOSTNAME,
// TERM=xterm for a terminal, then the image's env, then the config's, each later entry
// replacing an earlier one of the same key where it stands.
func ProcessEnv(img Image, hostname string, tty bool, config []EnvVar) []string {
	env := []string{"PATH=" + DefaultPath, "HOSTNAME=" + hostname}
	if tty {
		env = append(env, "TERM=xterm")
	}
	env = MergeEnv(env, img.Env)
	kv := make([]string, 0, len(config))
	for _, e := range config {
		kv = append(kv, e.Key+"="+e.Value)
	}
	return MergeEnv(env, kv)
}

// ProcessCwd is the config's working directory, else the image's, else "/".
func ProcessCwd(img Image, configDir string) string {
	switch {
	case configDir != "":
		return configDir
	case img.WorkingDir != "":
		return img.WorkingDir
	}
	return "/"
}
