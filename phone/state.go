package phone

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/candor-en/candor/gaen"
)

const (
	// StateVersion is the version of the state file format.
	StateVersion = 1

	// KeepDays is how many days of keys, sightings and matches a phone
	// keeps, today included: the framework's 14 days.
	KeepDays = 14

	// intervalsPerDay is the number of ENIntervals in a UTC day.
	intervalsPerDay = gaen.MaxRollingPeriod
)

// ErrNoState reports a state file that does not exist.
var ErrNoState = errors.New("no phone state")

// Bytes16 is 16 bytes (a TEK or an RPI), written as standard base64 in
// JSON.
type Bytes16 [16]byte

// MarshalText implements encoding.TextMarshaler.
func (b Bytes16) MarshalText() ([]byte, error) {
	return []byte(base64.StdEncoding.EncodeToString(b[:])), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *Bytes16) UnmarshalText(text []byte) error {
	raw, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil || len(raw) != len(b) {
		return fmt.Errorf("want standard base64 of %d bytes, got %q", len(b), text)
	}
	copy(b[:], raw)
	return nil
}

// String returns the base64 form.
func (b Bytes16) String() string { return base64.StdEncoding.EncodeToString(b[:]) }

// State is one simulated phone. See the package documentation for what it
// holds and why. The zero value is a phone without keys; Roll gives it some.
type State struct {
	Version int `json:"version"`
	// App is the configuration the phone's app ships with.
	App App `json:"app"`
	// Keys are the phone's daily TEKs, oldest first.
	Keys []DailyKey `json:"keys"`
	// Heard is what the phone received over Bluetooth, by interval.
	Heard []Sighting `json:"heard"`
	// Synced lists the export files already processed, as the index names
	// them.
	Synced []string `json:"synced,omitempty"`
	// Matches are the published keys that match what the phone heard.
	Matches []Match `json:"matches,omitempty"`
	// ExportKeys are the export signing keys the phone trusts, as PKIX PEM
	// by "keyID/keyVersion".
	ExportKeys map[string]string `json:"exportKeys,omitempty"`
	// RevisionToken is the token of the last upload, needed to revise it.
	RevisionToken string `json:"revisionToken,omitempty"`
	// Reports are the phone's uploads, oldest first.
	Reports []Report `json:"reports,omitempty"`
}

// App is what an exposure-notification app is configured with.
type App struct {
	// Server is the base URL of the Candor deployment.
	Server string `json:"server,omitempty"`
	// APIKey is the app's device API key for /api/verify and
	// /api/certificate (shipped in the app: not a secret).
	APIKey string `json:"apiKey,omitempty"`
	// HealthAuthorityID is the app's ID at the key server.
	HealthAuthorityID string `json:"healthAuthorityID,omitempty"`
	// ExportsRoot is the export root of the phone's region.
	ExportsRoot string `json:"exportsRoot,omitempty"`
}

// DailyKey is one TEK with the intervals it is valid for.
type DailyKey struct {
	TEK           Bytes16 `json:"tek"`
	RollingStart  uint32  `json:"rollingStart"`
	RollingPeriod uint32  `json:"rollingPeriod"`
}

// Day returns the UTC day the key starts on.
func (k DailyKey) Day() time.Time { return intervalTime(k.RollingStart).Truncate(24 * time.Hour) }

// Covers reports whether the key is valid during interval.
func (k DailyKey) Covers(interval uint32) bool {
	return interval >= k.RollingStart && interval < k.RollingStart+k.RollingPeriod
}

// Sighting is one RPI a phone received in one interval: all a Bluetooth
// scanner learns.
type Sighting struct {
	// Interval is the ENIntervalNumber of reception.
	Interval uint32  `json:"interval"`
	RPI      Bytes16 `json:"rpi"`
	AEM      []byte  `json:"aem"`
	// Scans is how many one-minute scans heard the RPI.
	Scans int `json:"scans"`
}

// Report is one upload the phone made.
type Report struct {
	// Day is the UTC day of the upload.
	Day         string `json:"day"`
	TestType    string `json:"testType"`
	SymptomDate string `json:"symptomDate,omitempty"`
	TestDate    string `json:"testDate,omitempty"`
	// Keys is the number of keys sent; Inserted what the server stored.
	Keys     int  `json:"keys"`
	Inserted int  `json:"inserted"`
	Revision bool `json:"revision,omitempty"`
}

// intervalTime returns the start of ENInterval n.
func intervalTime(n uint32) time.Time {
	return time.Unix(int64(n)*int64(gaen.IntervalDuration/time.Second), 0).UTC()
}

// dayStart returns the first interval of t's UTC day.
func dayStart(t time.Time) uint32 { return gaen.RollingStart(t) }

// Load reads the state file at path. A missing file is ErrNoState.
func Load(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("phone state %s: %w", path, ErrNoState)
	}
	if err != nil {
		return nil, fmt.Errorf("phone state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("phone state %s: %w", path, err)
	}
	if st.Version != StateVersion {
		return nil, fmt.Errorf("phone state %s: version %d, want %d", path, st.Version, StateVersion)
	}
	return &st, nil
}

// Save writes the state to path atomically (a temporary file renamed over
// it), readable only by its owner.
func (st *State) Save(path string) error {
	st.Version = StateVersion
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("phone state: %w", err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("phone state: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("phone state: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("phone state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("phone state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("phone state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("phone state: %w", err)
	}
	return nil
}

// Roll brings the phone to now: it draws a TEK from random for each of the
// last KeepDays UTC days (today included) that has none, and forgets keys,
// sightings and matches from before that. It returns the number of keys
// added.
func (st *State) Roll(now time.Time, random io.Reader) (int, error) {
	today := dayStart(now)
	first := today - (KeepDays-1)*intervalsPerDay
	st.Keys = slices.DeleteFunc(st.Keys, func(k DailyKey) bool { return k.RollingStart+k.RollingPeriod <= first })
	st.Heard = slices.DeleteFunc(st.Heard, func(s Sighting) bool { return s.Interval < first })
	st.Matches = slices.DeleteFunc(st.Matches, func(m Match) bool { return m.lastInterval() < first })
	added := 0
	for start := first; start <= today; start += intervalsPerDay {
		if slices.ContainsFunc(st.Keys, func(k DailyKey) bool { return k.RollingStart == start }) {
			continue
		}
		tek, err := gaen.NewTEK(random)
		if err != nil {
			return added, fmt.Errorf("phone keys: %w", err)
		}
		st.Keys = append(st.Keys, DailyKey{TEK: Bytes16(tek), RollingStart: start, RollingPeriod: intervalsPerDay})
		added++
	}
	slices.SortFunc(st.Keys, func(a, b DailyKey) int { return int(int64(a.RollingStart) - int64(b.RollingStart)) })
	return added, nil
}

// KeyAt returns the phone's key valid during interval.
func (st *State) KeyAt(interval uint32) (DailyKey, bool) {
	for _, k := range st.Keys {
		if k.Covers(interval) {
			return k, true
		}
	}
	return DailyKey{}, false
}
