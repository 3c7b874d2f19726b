package audit

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/api/logentry"
)

// Defaults of Config.
const (
	// DefaultRetention is the retention period files are held to: 14
	// days, the key server's default (docs/EXPORTS.md, "Retention").
	DefaultRetention = 14 * 24 * time.Hour
	// DefaultRetentionGrace is how long past the retention period a file
	// may still be listed or served: retention runs hourly and cuts at
	// window boundaries.
	DefaultRetentionGrace = 3 * time.Hour
	// DefaultServedLookback is how far past the retention cutoff logged
	// files are checked to be gone (older ones are not requested again).
	DefaultServedLookback = 60 * 24 * time.Hour
	// DefaultWorkers is how many export files are fetched at once.
	DefaultWorkers = 8
)

// ErrNoKey is returned by Run when neither Config.Key nor the state file
// gives the log's public key.
var ErrNoKey = errors.New("audit: the log's public key is needed (--key, or a state file from an earlier run)")

// Config says what to audit.
type Config struct {
	// LogURL is the base URL of the tlog-tiles log, e.g.
	// https://example.org/log/.
	LogURL string
	// Exports are the export locations to check: base URLs whose roots are
	// taken from the log (https://example.org/exports/), or index URLs
	// (https://example.org/exports/us-wa/index.txt).
	Exports []string
	// Key is the log's note verifier key ("<origin>+<hash>+<key>"); empty
	// means the one in the state file.
	Key string
	// StatePath is the file remembering the last verified checkpoint;
	// empty means no memory between runs (no consistency check).
	StatePath string
	// Retention, RetentionGrace and ServedLookback: see the defaults.
	Retention      time.Duration
	RetentionGrace time.Duration
	ServedLookback time.Duration
	// Workers bounds concurrent export file downloads.
	Workers int
	// Client makes the requests (a client with a 60 s timeout when nil).
	Client *http.Client
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.RetentionGrace == 0 {
		c.RetentionGrace = DefaultRetentionGrace
	}
	if c.ServedLookback == 0 {
		c.ServedLookback = DefaultServedLookback
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: 60 * time.Second}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Status is the result of one check.
type Status string

// Statuses of a check; only StatusFail fails the audit.
const (
	StatusOK   Status = "ok"
	StatusFail Status = "FAIL"
	StatusWarn Status = "warn"
	StatusSkip Status = "skip"
)

// Check is one property the auditor verified.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	// Problems lists what failed (or warned), one line each.
	Problems []string `json:"problems,omitempty"`
}

// Report is the outcome of an audit.
type Report struct {
	Log    string `json:"log"`
	Origin string `json:"origin"`
	// Size and RootHash are the audited checkpoint's; PreviousSize the
	// state's (0 on a first run).
	Size         uint64         `json:"size"`
	RootHash     string         `json:"rootHash"`
	PreviousSize uint64         `json:"previousSize"`
	Entries      map[string]int `json:"entries"`
	FilesChecked int            `json:"filesChecked"`
	Checks       []Check        `json:"checks"`
	// OK reports whether no check failed.
	OK   bool      `json:"ok"`
	Time time.Time `json:"time"`
	// StateSaved reports whether the state file now holds this checkpoint.
	StateSaved bool `json:"stateSaved"`
}

func (r *Report) add(c Check) {
	c.Detail = oneLine(c.Detail)
	for i, p := range c.Problems {
		c.Problems[i] = oneLine(p)
	}
	if len(c.Problems) > 0 && c.Status == StatusOK {
		c.Status = StatusFail
	}
	r.Checks = append(r.Checks, c)
	if c.Status == StatusFail {
		r.OK = false
	}
}

// oneLine joins the lines of s (error texts of libraries span lines).
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Failed returns the failed checks.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == StatusFail {
			out = append(out, c)
		}
	}
	return out
}

// auditor holds one audit's inputs and findings.
type auditor struct {
	cfg      Config
	now      time.Time
	log      fetcher
	verifier note.Verifier
	report   *Report

	entries []parsedEntry
	keys    map[string]*loggedKey // purpose/id/version
	files   map[string]*loggedFile
	deleted map[string]int    // file → index of the retention.deleted entry naming it
	roots   map[string]uint64 // export root → index of its export_root.added entry
}

type parsedEntry struct {
	index uint64
	entry logentry.Entry
	err   error
}

type loggedKey struct {
	key     logentry.SigningKey
	index   uint64
	pub     *ecdsa.PublicKey
	retired bool
	// retiredIndex and retiredAt, when retired, are the entry retiring the
	// key and the time it stops signing.
	retiredIndex uint64
	retiredAt    time.Time
}

type loggedFile struct {
	index uint64
	time  time.Time
	body  logentry.ExportPublished
}

// Run audits the log at cfg.LogURL and the exports at cfg.Exports. The
// report holds every check; an error is returned only when the audit could
// not start (no key, a bad URL, an unreadable state file). The state file is
// updated when the checkpoint was verified, consistent with the previous
// one, and rebuilt from the entries.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	base, err := url.Parse(cfg.LogURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("audit: log URL %q: want an http(s) URL", cfg.LogURL)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	var st State
	if cfg.StatePath != "" {
		if st, err = LoadState(cfg.StatePath); err != nil {
			return nil, err
		}
	}
	key := strings.TrimSpace(cfg.Key)
	if key == "" {
		key = st.Key
	}
	if key == "" {
		return nil, ErrNoKey
	}
	v, err := note.NewVerifier(key)
	if err != nil {
		return nil, fmt.Errorf("audit: key %q: %w", key, err)
	}
	a := &auditor{
		cfg: cfg, now: cfg.Now(), log: fetcher{client: cfg.Client, base: base}, verifier: v,
		report: &Report{Log: base.String(), Origin: v.Name(), OK: true, Entries: map[string]int{}},
		keys:   map[string]*loggedKey{}, files: map[string]*loggedFile{}, deleted: map[string]int{},
		roots: map[string]uint64{},
	}
	a.report.Time = a.now.UTC()
	if st.Key != "" && st.Key != key {
		a.report.add(Check{Name: "log key", Status: StatusFail,
			Detail: "the state file was written for another key: this is a different log (use another --state file) or the log's key changed"})
		return a.report, nil
	}
	cp, cpRaw, ok := a.checkCheckpoint(ctx)
	if !ok {
		return a.report, nil
	}
	prev, ok := a.previous(st)
	if !ok {
		return a.report, nil
	}
	logOK := a.checkLog(ctx, cp, prev)
	if logOK && cfg.StatePath != "" {
		ns := State{Log: base.String(), Key: key, Checkpoint: string(cpRaw), Size: cp.Size, RootHash: cp.Hash, Checked: a.now.UTC()}
		if err := SaveState(cfg.StatePath, ns); err != nil {
			a.report.add(Check{Name: "state file", Status: StatusWarn, Detail: err.Error()})
		} else {
			a.report.StateSaved = true
		}
	}
	if !logOK {
		a.report.add(Check{Name: "export files", Status: StatusSkip, Detail: "the log did not verify, so its entries cannot be trusted"})
		return a.report, nil
	}
	a.checkEntries()
	a.checkKeys()
	a.checkExports(ctx)
	return a.report, nil
}

// checkCheckpoint fetches the checkpoint and verifies its signature.
func (a *auditor) checkCheckpoint(ctx context.Context) (*flog.Checkpoint, []byte, bool) {
	c := Check{Name: "checkpoint signature"}
	raw, err := a.log.get(ctx, "checkpoint", maxCheckpoint)
	if err != nil {
		c.Status, c.Detail = StatusFail, "cannot fetch the checkpoint: "+err.Error()
		a.report.add(c)
		return nil, nil, false
	}
	cp, _, _, err := flog.ParseCheckpoint(raw, a.verifier.Name(), a.verifier)
	if err != nil {
		c.Status, c.Detail = StatusFail, "the checkpoint does not verify with the key: "+err.Error()
		a.report.add(c)
		return nil, nil, false
	}
	a.report.Size, a.report.RootHash = cp.Size, base64.StdEncoding.EncodeToString(cp.Hash)
	c.Status = StatusOK
	c.Detail = fmt.Sprintf("checkpoint of %d entries signed by %s", cp.Size, a.verifier.Name())
	a.report.add(c)
	return cp, raw, true
}

// previous returns the state's checkpoint, verified (nil on a first run).
func (a *auditor) previous(st State) (*flog.Checkpoint, bool) {
	if st.Checkpoint == "" {
		return nil, true
	}
	prev, _, _, err := flog.ParseCheckpoint([]byte(st.Checkpoint), a.verifier.Name(), a.verifier)
	if err != nil {
		a.report.add(Check{Name: "consistency with the last checkpoint", Status: StatusFail,
			Detail: "the checkpoint in the state file does not verify: " + err.Error()})
		return nil, false
	}
	a.report.PreviousSize = prev.Size
	return prev, true
}

// checkLog checks the consistency with prev, rebuilds the tree from every
// entry and compares it with the checkpoint and the tiles; it reports
// whether all of that held.
func (a *auditor) checkLog(ctx context.Context, cp, prev *flog.Checkpoint) bool {
	var prevSize uint64
	if prev != nil {
		prevSize = prev.Size
	}
	cons := Check{Name: "consistency with the last checkpoint"}
	switch {
	case prev == nil:
		cons.Status, cons.Detail = StatusSkip, "no earlier checkpoint (first run, or no --state)"
	case cp.Size < prevSize:
		cons.Status = StatusFail
		cons.Detail = fmt.Sprintf("the log shrank from %d to %d entries: it was rolled back or forked", prevSize, cp.Size)
	case cp.Size == prevSize && string(cp.Hash) != string(prev.Hash):
		cons.Status = StatusFail
		cons.Detail = fmt.Sprintf("same size %d but another root hash: the log was forked", cp.Size)
	}
	// The standard consistency proof, from the tiles; the rebuild below
	// also re-derives the old root from the entries.
	var proofErr error
	if prev != nil && cp.Size > prevSize && prevSize > 0 {
		pb, err := client.NewProofBuilder(ctx, cp.Size, a.log.readTile)
		var p [][]byte
		if err == nil {
			p, err = pb.ConsistencyProof(ctx, prevSize, cp.Size)
		}
		if err == nil {
			err = proof.VerifyConsistency(rfc6962.DefaultHasher, prevSize, cp.Size, p, prev.Hash, cp.Hash)
		}
		proofErr = err
	}
	if prev != nil && cp.Size < prevSize {
		a.report.add(cons)
		return false
	}

	rebuild := Check{Name: "entries rebuild the checkpoint"}
	t, err := deriveTree(ctx, a.log, cp.Size, prevSize)
	if err != nil {
		rebuild.Status, rebuild.Detail = StatusFail, "cannot read the entries: "+err.Error()
		finishConsistency(a.report, cons, prevSize)
		a.report.add(rebuild)
		return false
	}
	if string(t.root) != string(cp.Hash) {
		rebuild.Status = StatusFail
		rebuild.Detail = fmt.Sprintf("the root hash of the %d entries is %s, the checkpoint says %s",
			cp.Size, base64.StdEncoding.EncodeToString(t.root), base64.StdEncoding.EncodeToString(cp.Hash))
	} else {
		rebuild.Status = StatusOK
		rebuild.Detail = fmt.Sprintf("the Merkle tree of all %d entries has the checkpoint's root hash: every entry is included", cp.Size)
	}
	if prev != nil && prevSize > 0 && cons.Status == "" {
		switch {
		case string(t.rootAt) != string(prev.Hash):
			cons.Status = StatusFail
			cons.Detail = fmt.Sprintf("the first %d entries no longer have the root hash of the last checkpoint: the log was rewritten or forked", prevSize)
		case proofErr != nil:
			cons.Status = StatusFail
			cons.Detail = fmt.Sprintf("the tiles give no valid consistency proof from %d to %d entries: %v", prevSize, cp.Size, proofErr)
		}
	}
	finishConsistency(a.report, cons, prevSize)
	a.report.add(rebuild)

	tiles := Check{Name: "tiles match the entries"}
	n, problems := checkTiles(ctx, a.log, t)
	tiles.Problems = limit(problems)
	if len(problems) > 0 {
		tiles.Status = StatusFail
		tiles.Detail = fmt.Sprintf("%d of %d hash tiles differ from the hashes of the entries", len(problems), n)
	} else {
		tiles.Status = StatusOK
		tiles.Detail = fmt.Sprintf("all %d hash tiles hold the hashes re-derived from the entries", n)
	}
	a.report.add(tiles)

	for i, e := range t.entries {
		pe := parsedEntry{index: uint64(i)}
		pe.entry, pe.err = logentry.Unmarshal(e)
		a.entries = append(a.entries, pe)
	}
	return a.report.OK
}

func finishConsistency(r *Report, c Check, prevSize uint64) {
	if c.Status == "" {
		c.Status = StatusOK
		c.Detail = fmt.Sprintf("the log extends the last checkpoint seen (%d entries) without rewriting it", prevSize)
	}
	r.add(c)
}

// checkEntries checks that every entry is a canonical entry of the known
// schema, and indexes the ones the export checks need.
func (a *auditor) checkEntries() {
	c := Check{Name: "entries follow the schema"}
	unknown := 0
	for _, pe := range a.entries {
		if pe.err != nil {
			c.Problems = append(c.Problems, fmt.Sprintf("entry %d: %v", pe.index, pe.err))
			a.report.Entries["(invalid)"]++
			continue
		}
		e := pe.entry
		a.report.Entries[e.Type]++
		if _, ok := e.Body.(logentry.Unknown); ok {
			unknown++
		}
		if e.Time.After(a.now.Add(time.Hour)) {
			c.Problems = append(c.Problems, fmt.Sprintf("entry %d: time %s is in the future", pe.index, e.Time.Format(time.RFC3339)))
		}
		switch b := e.Body.(type) {
		case logentry.ExportPublished:
			if prev, dup := a.files[b.File]; dup {
				c.Problems = append(c.Problems, fmt.Sprintf("entry %d: %s was already logged by entry %d", pe.index, b.File, prev.index))
				continue
			}
			a.files[b.File] = &loggedFile{index: pe.index, time: e.Time, body: b}
		case logentry.RetentionDeleted:
			for _, f := range b.Files {
				a.deleted[f] = int(pe.index)
			}
		case logentry.ExportRootAdded:
			if prev, dup := a.roots[b.Root]; dup {
				c.Problems = append(c.Problems, fmt.Sprintf("entry %d: root %s was already added by entry %d", pe.index, b.Root, prev))
				continue
			}
			a.roots[b.Root] = pe.index
		}
	}
	n := len(a.entries)
	switch {
	case len(c.Problems) > 0:
		c.Status = StatusFail
		c.Detail = fmt.Sprintf("%d of %d entries are not canonical entries of schema %d, or contradict others", len(c.Problems), n, logentry.SchemaVersion)
		c.Problems = limit(c.Problems)
	case unknown > 0:
		c.Status = StatusWarn
		c.Detail = fmt.Sprintf("%d of %d entries have types this auditor does not know (a newer version wrote them)", unknown, n)
	default:
		c.Status = StatusOK
		c.Detail = fmt.Sprintf("all %d entries are canonical JSON of schema %d with only the documented fields", n, logentry.SchemaVersion)
	}
	a.report.add(c)
}

func keyIndex(purpose, id, version string) string { return purpose + "\x00" + id + "\x00" + version }

// checkKeys indexes the logged signing keys and checks that a key id and
// version names one public key only.
func (a *auditor) checkKeys() {
	c := Check{Name: "signing keys"}
	for _, pe := range a.entries {
		if pe.err != nil {
			continue
		}
		var k logentry.SigningKey
		retire := false
		var retiredAt time.Time
		switch b := pe.entry.Body.(type) {
		case logentry.SigningKeyAdded:
			k = b.SigningKey
		case logentry.SigningKeyRotated:
			k = b.SigningKey
		case logentry.SigningKeyRetired:
			k, retire, retiredAt = b.SigningKey, true, b.RetiredAt
		default:
			continue
		}
		id := keyIndex(k.Purpose, k.KeyID, k.KeyVersion)
		lk, seen := a.keys[id]
		if seen && lk.key.PublicKeyPEM != k.PublicKeyPEM {
			c.Problems = append(c.Problems, fmt.Sprintf("entry %d: %s key %s has another public key than entry %d logged", pe.index, k.Purpose, k.Ref(), lk.index))
			continue
		}
		if !seen {
			if retire {
				c.Problems = append(c.Problems, fmt.Sprintf("entry %d: %s key %s is retired without being added", pe.index, k.Purpose, k.Ref()))
				continue
			}
			pub, err := api.ParsePublicKeyPEM(k.PublicKeyPEM)
			if err != nil {
				c.Problems = append(c.Problems, fmt.Sprintf("entry %d: %s key %s: %v", pe.index, k.Purpose, k.Ref(), err))
				continue
			}
			lk = &loggedKey{key: k, index: pe.index, pub: pub}
			a.keys[id] = lk
		}
		if retire && !lk.retired {
			lk.retired, lk.retiredIndex, lk.retiredAt = true, pe.index, retiredAt
		}
	}
	if len(c.Problems) > 0 {
		c.Status, c.Detail, c.Problems = StatusFail, "logged signing keys contradict each other", limit(c.Problems)
	} else {
		c.Status = StatusOK
		c.Detail = fmt.Sprintf("%d signing keys logged, each key id and version with one public key", len(a.keys))
	}
	a.report.add(c)
}

// maxProblems bounds the problems listed per check.
const maxProblems = 20

func limit(p []string) []string {
	if len(p) <= maxProblems {
		return p
	}
	return append(p[:maxProblems:maxProblems], fmt.Sprintf("… and %d more", len(p)-maxProblems))
}
