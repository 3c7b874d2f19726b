package exporter

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/keyserver"
)

// Defaults and limits of Config and Options.
const (
	// DefaultPeriod is the window length of a Config without one.
	DefaultPeriod = time.Hour
	// DefaultMinWindowAge is how long after its end a window waits before it
	// is exported: enough for publishes still in flight when the window
	// closed to commit, and for clock skew between replicas. A key is
	// exported at most Period + MinWindowAge (+ the export interval) after
	// its upload.
	DefaultMinWindowAge = 15 * time.Minute
	// DefaultMinKeys is the number of keys a file is padded up to.
	DefaultMinKeys = 1000
	// DefaultMaxKeysPerFile is the most keys (new and revised) in one file;
	// larger batches are split.
	DefaultMaxKeysPerFile = 500_000
	// MaxMaxKeysPerFile bounds MaxKeysPerFile so that export.bin stays far
	// below export.MaxBinSize.
	MaxMaxKeysPerFile = 1_000_000
	// DefaultRetention is how long keys and files are kept.
	DefaultRetention = 14 * 24 * time.Hour
	// MinRetention is the shortest retention accepted: phones look back 14
	// days, and files must outlive the keys they carry by a margin.
	MinRetention = 10 * 24 * time.Hour
	// DefaultLeaseTTL is how long a batch lease lasts; an exporter that dies
	// holding one blocks its window for at most this long.
	DefaultLeaseTTL = 10 * time.Minute
)

// keyNamePattern is what a signature info's key id and version may look like.
var keyNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Config is one export configuration: which keys go into which files, how
// often, and signed by which keys. The zero values of Period, MinWindowAge,
// MinKeys and MaxKeysPerFile mean their defaults once WithDefaults ran;
// stored configurations always carry explicit values.
type Config struct {
	// Root names the configuration and its directory: files are written to
	// <dir>/<Root>/ and served under /exports/<Root>/.
	Root string `json:"root"`
	// Region is written into every file (export.bin field 3), e.g. "310" or
	// "US-WA".
	Region string `json:"region"`
	// InputRegions are the app regions (keyserver.App.Region) whose keys
	// go into the files; empty means just Region.
	InputRegions []string `json:"inputRegions,omitempty"`
	// IncludeTravelers adds keys that apps of other regions uploaded with
	// the traveler flag set.
	IncludeTravelers bool `json:"includeTravelers,omitempty"`
	// Period is the length of a window. It divides 24 h and is a multiple
	// of the key server's truncate window.
	Period time.Duration `json:"period"`
	// MinWindowAge is how long after its end a window is exported.
	MinWindowAge time.Duration `json:"minWindowAge"`
	// MinKeys is the number of keys a window with at least one key is
	// padded up to; 1 disables padding (0 means DefaultMinKeys).
	MinKeys int `json:"minKeys"`
	// MaxKeysPerFile is the most keys in one file.
	MaxKeysPerFile int `json:"maxKeysPerFile"`
	// SignatureInfos are the keys that sign the files; every active one
	// signs every file (several during a rotation).
	SignatureInfos []SignatureInfo `json:"signatureInfos"`
	// Created is when the configuration was added.
	Created time.Time `json:"created"`
}

// SignatureInfo is one signing key of a configuration: the (key id, key
// version) that app developers register with the phone platforms together
// with its public key, and the Tink keyset holding the private key.
type SignatureInfo struct {
	// KeyID is the verification_key_id, e.g. "310" (often the MCC).
	KeyID string `json:"keyId"`
	// KeyVersion is the verification_key_version, e.g. "v1".
	KeyVersion string `json:"keyVersion"`
	// Keyset names the keyset ring of the private key (see KeysetName).
	Keyset string `json:"keyset"`
	// Added is when the key was added to the configuration.
	Added time.Time `json:"added"`
	// Retired, when not zero, is when the key stops signing.
	Retired time.Time `json:"retired,omitzero"`
}

// KeysetName is the keyset ring holding the private key of (keyID,
// keyVersion). The pair names exactly one public key on every phone, so it
// names exactly one ring, shared by every configuration that lists it.
func KeysetName(keyID, keyVersion string) string {
	return "export-signing/" + keyID + "/" + keyVersion
}

// Active reports whether the key signs files at t.
func (s SignatureInfo) Active(t time.Time) bool {
	return s.Retired.IsZero() || t.Before(s.Retired)
}

// Export returns the name the key has in export files.
func (s SignatureInfo) Export() export.SignatureInfo {
	return export.SignatureInfo{KeyID: s.KeyID, KeyVersion: s.KeyVersion}
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Period == 0 {
		c.Period = DefaultPeriod
	}
	if c.MinWindowAge == 0 {
		c.MinWindowAge = DefaultMinWindowAge
	}
	if c.MinKeys == 0 {
		c.MinKeys = DefaultMinKeys
	}
	if c.MaxKeysPerFile == 0 {
		c.MaxKeysPerFile = DefaultMaxKeysPerFile
	}
	if len(c.InputRegions) == 0 && c.Region != "" {
		c.InputRegions = []string{c.Region}
	}
	c.InputRegions = slices.Clone(c.InputRegions)
	c.SignatureInfos = slices.Clone(c.SignatureInfos)
	return c
}

// Validate checks the configuration. Stored times are truncated to
// keyserver.DefaultTruncateWindow, so a period must be a multiple of it; it
// must also divide 24 h so that windows align to UTC days.
func (c *Config) Validate() error {
	return c.validate(keyserver.DefaultTruncateWindow)
}

func (c *Config) validate(truncate time.Duration) error {
	if !export.ValidRoot(c.Root) {
		return fmt.Errorf("export config: root %q: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, and not %q", c.Root, export.RootsName)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("export config %s: "+format, append([]any{c.Root}, args...)...)
	}
	if c.Region == "" || len(c.Region) > 64 {
		return fail("region is required (at most 64 bytes)")
	}
	for _, r := range c.InputRegions {
		if r == "" {
			return fail("empty input region")
		}
	}
	const day = 24 * time.Hour
	switch {
	case c.Period <= 0:
		return fail("period %v must be positive", c.Period)
	case day%c.Period != 0:
		return fail("period %v must divide 24h", c.Period)
	case c.Period%truncate != 0:
		return fail("period %v must be a multiple of the publish window %v", c.Period, truncate)
	case c.MinWindowAge < 0:
		return fail("minimum window age %v is negative", c.MinWindowAge)
	case c.MinWindowAge > day:
		return fail("minimum window age %v is over 24h", c.MinWindowAge)
	case c.MinKeys < 1:
		return fail("minimum keys %d: want at least 1 (1 disables padding)", c.MinKeys)
	case c.MaxKeysPerFile < 1 || c.MaxKeysPerFile > MaxMaxKeysPerFile:
		return fail("maximum keys per file %d must be 1 to %d", c.MaxKeysPerFile, MaxMaxKeysPerFile)
	}
	if len(c.SignatureInfos) == 0 {
		return fail("at least one signature info is required")
	}
	seen := map[export.SignatureInfo]bool{}
	for _, s := range c.SignatureInfos {
		if !keyNamePattern.MatchString(s.KeyID) || !keyNamePattern.MatchString(s.KeyVersion) {
			return fail("signature info %s/%s: key id and version are 1-64 letters, digits, '.', '_' or '-'", s.KeyID, s.KeyVersion)
		}
		if seen[s.Export()] {
			return fail("signature info %s/%s twice", s.KeyID, s.KeyVersion)
		}
		seen[s.Export()] = true
		if s.Keyset == "" {
			return fail("signature info %s/%s has no keyset", s.KeyID, s.KeyVersion)
		}
	}
	return nil
}

// ActiveSignatureInfos returns the signature infos that sign at t, in the
// order they were added.
func (c *Config) ActiveSignatureInfos(t time.Time) []SignatureInfo {
	var out []SignatureInfo
	for _, s := range c.SignatureInfos {
		if s.Active(t) {
			out = append(out, s)
		}
	}
	return out
}

// Includes reports whether the configuration exports e: its app's region is
// an input region, or it is a traveler's key and travelers are included.
func (c *Config) Includes(e *keyserver.Exposure) bool {
	if slices.Contains(c.InputRegions, e.Region) {
		return true
	}
	return c.IncludeTravelers && e.Traveler
}

// Window is the time span [Start, End) of one batch.
type Window struct {
	Start, End time.Time
}

// String returns "start-end" in Unix seconds, as file names write it.
func (w Window) String() string { return fmt.Sprintf("%d-%d", w.Start.Unix(), w.End.Unix()) }

// WindowAt returns the window of the configuration holding t.
func (c *Config) WindowAt(t time.Time) Window {
	start := t.Truncate(c.Period).UTC()
	return Window{Start: start, End: start.Add(c.Period)}
}

// Exportable reports whether w may be exported at now: it ended at least
// MinWindowAge ago.
func (c *Config) Exportable(w Window, now time.Time) bool {
	return !now.Before(w.End.Add(c.MinWindowAge))
}

// DueWindows returns the windows that may be exported at now and end after
// cutoff, oldest first.
func (c *Config) DueWindows(cutoff, now time.Time) []Window {
	var out []Window
	w := c.WindowAt(cutoff)
	if w.Start.Before(cutoff) {
		w = Window{Start: w.End, End: w.End.Add(c.Period)}
	}
	for ; c.Exportable(w, now); w = (Window{Start: w.End, End: w.End.Add(c.Period)}) {
		out = append(out, w)
	}
	return out
}

// RetentionCutoff returns the retention cutoff at now: keys created before
// it and files of windows ending at or before it are deleted. It is now −
// retention truncated down to align, which every configuration's period
// divides, so a cutoff never cuts a window in two.
func RetentionCutoff(now time.Time, retention, align time.Duration) time.Time {
	return now.Add(-retention).Truncate(align).UTC()
}

// retentionAlign returns the alignment of the retention cutoff for configs:
// the least common multiple of their periods and the truncate window, which
// divides 24 h.
func retentionAlign(configs []*Config, truncate time.Duration) time.Duration {
	align := truncate
	for _, c := range configs {
		align = lcm(align, c.Period)
	}
	return align
}

func lcm(a, b time.Duration) time.Duration {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}

// ValidateRetention refuses retention periods under MinRetention.
func ValidateRetention(d time.Duration) error {
	if d < MinRetention {
		return fmt.Errorf("retention %v is under the minimum of %v", d, MinRetention)
	}
	return nil
}

// errNoActiveKey is returned when a configuration has no active signing key.
var errNoActiveKey = errors.New("no active signature info")
