package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

// version returns the module version and VCS revision the binary was built from.
func version() (ver, revision string) {
	ver, revision = "devel", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		ver = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return
}

func runVersion(ctx context.Context, args []string, io IO) error {
	v, r := version()
	fmt.Fprintf(io.Out, "candor %s (revision %s)\n", v, r)
	return nil
}
