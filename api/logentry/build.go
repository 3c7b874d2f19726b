package logentry

import (
	"runtime/debug"
	"strings"
)

// SoftwareFromBuildInfo returns the software.started body describing the
// build bi (from runtime/debug.ReadBuildInfo). A binary built outside a
// module reports version "(devel)" as Go does.
func SoftwareFromBuildInfo(bi *debug.BuildInfo) SoftwareStarted {
	s := SoftwareStarted{
		Module:    bi.Main.Path,
		Version:   bi.Main.Version,
		GoVersion: bi.GoVersion,
	}
	if s.Module == "" {
		s.Module = bi.Path
	}
	if s.Version == "" {
		s.Version = "(devel)"
	}
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			s.Revision = kv.Value
		case "vcs.time":
			s.RevisionTime = kv.Value
		case "vcs.modified":
			s.Modified = kv.Value == "true"
		default:
			if s.Settings == nil {
				s.Settings = map[string]string{}
			}
			s.Settings[kv.Key] = kv.Value
		}
	}
	for _, d := range bi.Deps {
		dep := d.Path + "@" + d.Version
		if r := d.Replace; r != nil {
			// A replacement by a local directory names a path on the build
			// machine, which is nobody's business: only say it is local.
			if r.Version == "" {
				dep += " => (local directory)"
			} else {
				dep += " => " + r.Path + "@" + r.Version
			}
		}
		s.Dependencies = append(s.Dependencies, strings.TrimSuffix(dep, "@"))
	}
	return s
}
