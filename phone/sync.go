package phone

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/client"
	"github.com/candor-en/candor/gaen"
)

// MatchTolerance is how far, in intervals, the reception of an RPI may lie
// from the interval it belongs to and still match: two hours, the
// framework's allowance for clock skew between phones.
const MatchTolerance = 12

// Match is a published key that matches what the phone heard.
type Match struct {
	TEK              Bytes16           `json:"tek"`
	RollingStart     uint32            `json:"rollingStart"`
	RollingPeriod    uint32            `json:"rollingPeriod"`
	ReportType       export.ReportType `json:"reportType"`
	TransmissionRisk int32             `json:"transmissionRisk"`
	DaysSinceOnset   *int32            `json:"daysSinceOnset,omitempty"`
	Sightings        []MatchedSighting `json:"sightings"`
	// File is the export file the key was found in; RevisedIn the file
	// that last revised it.
	File      string `json:"file"`
	RevisedIn string `json:"revisedIn,omitempty"`
}

// MatchedSighting is one heard interval that matched.
type MatchedSighting struct {
	Interval uint32 `json:"interval"`
	Scans    int    `json:"scans"`
}

func (m Match) lastInterval() uint32 {
	last := uint32(0)
	for _, s := range m.Sightings {
		last = max(last, s.Interval)
	}
	return last
}

// SyncOptions are the inputs of one sync.
type SyncOptions struct {
	// Root is the export root to download; st.App.ExportsRoot when empty.
	Root string
}

// SyncResult is what a sync did.
type SyncResult struct {
	// Listed is the number of files in the index; Files those processed now.
	Listed int
	Files  []FileResult
	// Rejected are the files refused; they are retried by the next sync.
	Rejected []Rejection
	// NewMatches and Revised count keys matched and matches revised now.
	NewMatches, Revised int
	// Exposures are all current exposures, after this sync.
	Exposures []Exposure
}

// FileResult is one processed export file.
type FileResult struct {
	Name        string
	Keys        int
	RevisedKeys int
	// SignedBy names the file's signing keys, "keyID/keyVersion".
	SignedBy []string
	// Matches and Revisions count the file's keys that matched, and the
	// revisions of earlier matches it carried.
	Matches, Revisions int
}

// Rejection is an export file the phone refused.
type Rejection struct {
	Name string
	// Reason says in a few words why: "bad signature", "signed by an
	// unknown key", "truncated or not a zip file", "wrong header", …
	Reason string
	Err    error
}

// RejectionReason returns the few words saying why an export file failed
// to download or verify.
func RejectionReason(err error) string {
	var apiErr *client.APIError
	switch {
	case errors.Is(err, export.ErrBadSignature):
		return "bad signature"
	case errors.Is(err, export.ErrUnknownKey):
		return "signed by an unknown key id"
	case errors.Is(err, export.ErrNoSignature):
		return "not signed"
	case errors.Is(err, export.ErrNotZip):
		return "truncated or not a zip file"
	case errors.Is(err, export.ErrBadHeader):
		return "wrong export.bin header"
	case errors.Is(err, export.ErrMissingEntry), errors.Is(err, export.ErrEntryOrder):
		return "wrong zip entries"
	case errors.Is(err, export.ErrTooLarge):
		return "too large"
	case errors.Is(err, export.ErrMalformed):
		return "malformed export protobuf"
	case errors.As(err, &apiErr):
		return fmt.Sprintf("download failed (HTTP %d)", apiErr.Status)
	}
	return "download failed"
}

// Sync downloads the export files listed for the root that the phone has
// not processed yet, verifies them with c (which must hold the pinned
// export keys: client.WithExportKeys(st.PinnedExportKeys())), matches
// every key in them against what the phone heard, and returns the
// exposures. Files that fail verification are listed in the result's
// Rejected and not marked processed; the others are. Sync fails when the
// index cannot be read or is not byte for byte in the documented form
// (export.ErrBadListing), leaving st unchanged, or when ctx ends, keeping
// the files processed until then.
func (st *State) Sync(ctx context.Context, c *client.Client, opts SyncOptions) (*SyncResult, error) {
	root := cmp.Or(opts.Root, st.App.ExportsRoot)
	if root == "" {
		return nil, errors.New("sync: no export root")
	}
	names, err := c.Index(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	res := &SyncResult{Listed: len(names)}
	done := map[string]bool{}
	for _, n := range st.Synced {
		done[n] = true
	}
	idx := st.heardIndex()
	for _, name := range names {
		if done[name] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		f, err := c.DownloadExport(ctx, name)
		if err != nil {
			res.Rejected = append(res.Rejected, Rejection{Name: name, Reason: RejectionReason(err), Err: err})
			continue
		}
		fr := st.process(idx, name, f)
		res.NewMatches += fr.Matches
		res.Revised += fr.Revisions
		res.Files = append(res.Files, fr)
		done[name] = true
	}
	// Keep only names still listed: the others expired and never return.
	st.Synced = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return !done[n] })
	res.Exposures = st.Exposures()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("sync: %w", err)
	}
	return res, nil
}

// heardIndex maps each heard RPI to its sightings' positions in st.Heard.
func (st *State) heardIndex() map[Bytes16][]int {
	idx := make(map[Bytes16][]int, len(st.Heard))
	for i, s := range st.Heard {
		idx[s.RPI] = append(idx[s.RPI], i)
	}
	return idx
}

// process matches the keys of one verified file.
func (st *State) process(idx map[Bytes16][]int, name string, f *export.File) FileResult {
	fr := FileResult{Name: name, Keys: len(f.Keys), RevisedKeys: len(f.RevisedKeys)}
	for _, si := range f.SignatureInfos {
		fr.SignedBy = append(fr.SignedBy, si.String())
	}
	for i := range f.Keys {
		k := &f.Keys[i]
		if st.findMatch(k) >= 0 {
			continue // the same key in another file: already matched
		}
		if m, ok := st.matchKey(idx, k, name); ok {
			st.Matches = append(st.Matches, m)
			fr.Matches++
		}
	}
	for i := range f.RevisedKeys {
		k := &f.RevisedKeys[i]
		if j := st.findMatch(k); j >= 0 {
			m := &st.Matches[j]
			m.ReportType, m.TransmissionRisk, m.DaysSinceOnset = k.ReportType, k.TransmissionRisk, daysSinceOnset(k)
			m.RevisedIn = name
			fr.Revisions++
			continue
		}
		// The original went out in a file this phone never processed.
		if m, ok := st.matchKey(idx, k, name); ok {
			st.Matches = append(st.Matches, m)
			fr.Matches++
		}
	}
	return fr
}

func (st *State) findMatch(k *export.Key) int {
	if len(k.Data) != gaen.KeyLength {
		return -1
	}
	tek := Bytes16(k.Data)
	return slices.IndexFunc(st.Matches, func(m Match) bool {
		return m.TEK == tek && m.RollingStart == uint32(k.RollingStartInterval)
	})
}

func daysSinceOnset(k *export.Key) *int32 {
	if !k.HasDaysSinceOnset {
		return nil
	}
	d := k.DaysSinceOnset
	return &d
}

// matchKey derives the RPIs of published key k and looks them up among the
// heard ones.
func (st *State) matchKey(idx map[Bytes16][]int, k *export.Key, file string) (Match, bool) {
	if len(k.Data) != gaen.KeyLength || k.RollingStartInterval < 0 {
		return Match{}, false
	}
	period := uint32(k.RollingPeriod)
	if period == 0 || period > gaen.MaxRollingPeriod {
		period = gaen.MaxRollingPeriod
	}
	tek := gaen.TEK(k.Data)
	start := uint32(k.RollingStartInterval)
	var (
		aemk    [gaen.KeyLength]byte
		hasAEMK bool
		found   []MatchedSighting
	)
	for j, rpi := range gaen.RPIs(tek, start, period) {
		positions := idx[Bytes16(rpi)]
		if len(positions) == 0 {
			continue
		}
		if !hasAEMK { // derived only for the rare key that matches
			aemk, hasAEMK = gaen.AEMK(tek), true
		}
		interval := start + uint32(j)
		for _, p := range positions {
			s := st.Heard[p]
			if diff := int64(s.Interval) - int64(interval); diff < -MatchTolerance || diff > MatchTolerance {
				continue // heard too far from when it was broadcast: a replay
			}
			if meta := gaen.DecryptAEM(aemk, rpi, s.AEM); len(meta) < 1 || meta[0]>>6 != 1 {
				continue // metadata of no known version: not this key's
			}
			found = append(found, MatchedSighting{Interval: s.Interval, Scans: s.Scans})
		}
	}
	if len(found) == 0 {
		return Match{}, false
	}
	slices.SortFunc(found, func(a, b MatchedSighting) int { return cmp.Compare(a.Interval, b.Interval) })
	return Match{
		TEK: Bytes16(tek), RollingStart: start, RollingPeriod: period,
		ReportType: k.ReportType, TransmissionRisk: k.TransmissionRisk, DaysSinceOnset: daysSinceOnset(k),
		Sightings: found, File: file,
	}, true
}

// Exposure is the contact on one UTC day with people who reported a
// diagnosis, as the matches of that day add up.
type Exposure struct {
	// Day is the UTC midnight of the contact's day.
	Day time.Time
	// Intervals is the number of matched 10-minute intervals, summed over
	// the matched keys (two people met in one interval count twice).
	Intervals int
	// Duration is Intervals × 10 minutes: the resolution of GAEN.
	Duration time.Duration
	// ScanMinutes is the number of one-minute scans that heard them.
	ScanMinutes int
	// Keys is the number of matched keys (roughly, of people).
	Keys int
	// ReportType is the most certain diagnosis among the keys.
	ReportType export.ReportType
	// TransmissionRisk is the highest among the keys.
	TransmissionRisk int32
}

// severity orders report types by certainty; higher is more certain.
func severity(rt export.ReportType) int {
	switch rt {
	case export.ConfirmedTest:
		return 4
	case export.ConfirmedClinicalDiagnosis:
		return 3
	case export.SelfReport:
		return 2
	case export.Recursive:
		return 1
	}
	return 0
}

// Exposures aggregates the phone's matches per UTC day of contact, oldest
// first. Revoked keys (a negative test revising an earlier report) count
// for nothing.
func (st *State) Exposures() []Exposure {
	byDay := map[time.Time]*Exposure{}
	for _, m := range st.Matches {
		if m.ReportType == export.Revoked {
			continue
		}
		counted := map[time.Time]bool{}
		for _, s := range m.Sightings {
			day := intervalTime(s.Interval).Truncate(24 * time.Hour)
			e, ok := byDay[day]
			if !ok {
				e = &Exposure{Day: day}
				byDay[day] = e
			}
			e.Intervals++
			e.Duration += gaen.IntervalDuration
			e.ScanMinutes += s.Scans
			if !counted[day] {
				counted[day] = true
				e.Keys++
				if e.Keys == 1 || severity(m.ReportType) > severity(e.ReportType) {
					e.ReportType = m.ReportType
				}
				e.TransmissionRisk = max(e.TransmissionRisk, m.TransmissionRisk)
			}
		}
	}
	out := make([]Exposure, 0, len(byDay))
	for _, day := range slices.SortedFunc(maps.Keys(byDay), func(a, b time.Time) int { return a.Compare(b) }) {
		out = append(out, *byDay[day])
	}
	return out
}

// ReportTypeName names a report type for people.
func ReportTypeName(rt export.ReportType) string {
	switch rt {
	case export.ConfirmedTest:
		return "confirmed test"
	case export.ConfirmedClinicalDiagnosis:
		return "clinical diagnosis (likely)"
	case export.SelfReport:
		return "self-report"
	case export.Recursive:
		return "recursive"
	case export.Revoked:
		return "revoked (negative test)"
	}
	return "unknown report type"
}

// PinnedExportKeys returns the export signing keys the phone trusts.
func (st *State) PinnedExportKeys() (map[export.SignatureInfo]*ecdsa.PublicKey, error) {
	keys := make(map[export.SignatureInfo]*ecdsa.PublicKey, len(st.ExportKeys))
	for name, pemText := range st.ExportKeys {
		id, version, ok := strings.Cut(name, "/")
		if !ok {
			return nil, fmt.Errorf("pinned export key %q: want keyID/keyVersion", name)
		}
		pub, err := api.ParsePublicKeyPEM(pemText)
		if err != nil {
			return nil, fmt.Errorf("pinned export key %s: %w", name, err)
		}
		keys[export.SignatureInfo{KeyID: id, KeyVersion: version}] = pub
	}
	return keys, nil
}

// PinExportKey makes the phone trust pub for export files signed as si.
func (st *State) PinExportKey(si export.SignatureInfo, pub *ecdsa.PublicKey) error {
	if si.KeyID == "" || strings.Contains(si.KeyID, "/") {
		return fmt.Errorf("pin export key %s: bad key id", si)
	}
	pemText, err := api.MarshalPublicKeyPEM(pub)
	if err != nil {
		return fmt.Errorf("pin export key %s: %w", si, err)
	}
	if st.ExportKeys == nil {
		st.ExportKeys = map[string]string{}
	}
	st.ExportKeys[si.String()] = pemText
	return nil
}
