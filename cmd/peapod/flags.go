package main

import (
	"flag"
	"fmt"

	"github.com/peapod-runtime/peapod/config"
)

// flags are the command line; a flag given overrides the config file.
type flags struct {
	configPath, root, state, listen, logLevel string
}

func (f *flags) register(fs *flag.FlagSet) {
	d := config.Default()
	fs.StringVar(&f.configPath, "config", "", "TOML config file (none: built-in defaults)")
	fs.StringVar(&f.root, "root", d.Root, "persistent state directory")
	fs.StringVar(&f.state, "state", d.State, "volatile state directory")
	fs.StringVar(&f.listen, "listen", d.Listen, "CRI unix socket path")
	fs.StringVar(&f.logLevel, "log-level", d.LogLevel, "debug, info, warn or error")
}

// config loads the file (if any) and applies the flags that were set on top.
func (f *flags) config(fs *flag.FlagSet) (config.Config, error) {
	cfg := config.Default()
	if f.configPath != "" {
		var err error
		if cfg, err = config.Load(f.configPath); err != nil {
			return cfg, err
		}
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "root":
			cfg.Root = f.root
		case "state":
			cfg.State = f.state
		case "listen":
			cfg.Listen = f.listen
		case "log-level":
			cfg.LogLevel = f.logLevel
		}
	})
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("flags: %w", err)
	}
	return cfg, nil
}
