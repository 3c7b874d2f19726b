package exporter_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/storage/bolt"
)

// t0 is the fixtures' "now" at start: 10:20 UTC, so the 08:00-09:00 window
// is exportable (ended more than 15 minutes ago) and 10:00-11:00 is open.
var t0 = time.Date(2026, 11, 20, 10, 20, 0, 0, time.UTC)

// win8 is the 08:00-09:00 window of t0's day.
var win8 = exporter.Window{Start: time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// events records what the hooks received.
type events struct {
	mu        sync.Mutex
	files     []exporter.FilePublished
	retention []exporter.RetentionResult
	roots     []exporter.RootAdded
	fail      error
}

func (e *events) hooks() exporter.Events {
	return exporter.Events{
		OnFilePublished: func(_ context.Context, f exporter.FilePublished) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.fail != nil {
				return e.fail
			}
			e.files = append(e.files, f)
			return nil
		},
		OnRetention: func(_ context.Context, r exporter.RetentionResult) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.fail != nil {
				return e.fail
			}
			e.retention = append(e.retention, r)
			return nil
		},
		OnRootAdded: func(_ context.Context, r exporter.RootAdded) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.fail != nil {
				return e.fail
			}
			e.roots = append(e.roots, r)
			return nil
		},
	}
}

// fixture is a bolt store, signing keys and an export directory, with a
// settable clock.
type fixture struct {
	t      testing.TB
	db     *bolt.DB
	dir    string
	keys   *exporter.Keysets
	clock  *clock
	events *events
	reg    *prometheus.Registry
	x      *exporter.Exporter
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureIn(t, t.TempDir())
}

// newFixtureIn is newFixture with its data in data, laid out as `candor
// serve` lays out its data directory (candor.db, master.key, exports/).
func newFixtureIn(t testing.TB, data string) *fixture {
	t.Helper()
	db, err := bolt.Open(data, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	master, err := keyset.OpenMasterFile(filepath.Join(data, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, db: db, dir: filepath.Join(data, "exports"), clock: &clock{t: t0}, events: &events{}}
	f.keys = exporter.NewKeysets(db, master, f.clock.Now)
	f.x = f.newExporter("exporter-1")
	return f
}

// newExporter returns another exporter on the same store and directory
// (another process, as far as leases are concerned), with its own metrics.
func (f *fixture) newExporter(owner string) *exporter.Exporter {
	f.t.Helper()
	f.reg = prometheus.NewRegistry()
	x, err := exporter.New(f.db, f.keys, exporter.Options{
		Dir: f.dir, Owner: owner, Now: f.clock.Now, Events: f.events.hooks(), Registerer: f.reg,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return x
}

// addConfig adds the us-wa configuration, changed by fn.
func (f *fixture) addConfig(fn func(c *exporter.Config)) *exporter.Config {
	f.t.Helper()
	c := exporter.Config{
		Root: "us-wa", Region: "US-WA", Period: time.Hour, MinWindowAge: 15 * time.Minute,
		SignatureInfos: []exporter.SignatureInfo{{KeyID: "310", KeyVersion: "v1"}},
	}
	if fn != nil {
		fn(&c)
	}
	out, _, err := exporter.AddConfig(context.Background(), f.db, f.keys, c, f.clock.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// exposures returns n random exposures of region created at created.
func exposures(n int, region string, created time.Time) []*keyserver.Exposure {
	out := make([]*keyserver.Exposure, n)
	for i := range out {
		e := &keyserver.Exposure{
			IntervalNumber: keyserver.IntervalNumber(created.Add(-time.Duration(1+i%13) * 24 * time.Hour)), IntervalCount: 144,
			TransmissionRisk: int32(1 + i%8), ReportType: keyserver.ReportConfirmed, DaysSinceOnset: int32(i%20 - 5), HasDaysSinceOnset: true,
			Region: region, HealthAuthorityID: "app." + region, CreatedAt: created,
		}
		e.IntervalNumber -= e.IntervalNumber % 144
		rand.Read(e.Key[:])
		out[i] = e
	}
	return out
}

// publish stores es as new keys.
func (f *fixture) publish(es ...*keyserver.Exposure) {
	f.t.Helper()
	for len(es) > 0 {
		part := es[:min(len(es), 5000)]
		es = es[len(part):]
		keys := make([][keyserver.KeyLength]byte, len(part))
		for i, e := range part {
			keys[i] = e.Key
		}
		err := f.db.Publish(context.Background(), keys, func(map[[keyserver.KeyLength]byte]*keyserver.Exposure) (*keyserver.Change, error) {
			return &keyserver.Change{Insert: part}, nil
		})
		if err != nil {
			f.t.Fatal(err)
		}
	}
}

// revise stores the revision of a stored exposure.
func (f *fixture) revise(key [16]byte, to keyserver.ReportType, at time.Time) {
	f.t.Helper()
	err := f.db.Publish(context.Background(), [][16]byte{key}, func(existing map[[16]byte]*keyserver.Exposure) (*keyserver.Change, error) {
		e, ok := existing[key]
		if !ok {
			return nil, errors.New("not stored")
		}
		r := *e
		r.Revised, r.RevisedReportType, r.RevisedTransmissionRisk, r.RevisedDaysSinceOnset, r.RevisedAt = true, to, 7, e.DaysSinceOnset+1, at
		return &keyserver.Change{Revise: []*keyserver.Exposure{&r}}, nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// pass runs a pass of f.x at the clock's time and fails the test on error.
func (f *fixture) pass() *exporter.PassResult {
	f.t.Helper()
	res, err := f.x.Pass(context.Background())
	if err != nil {
		f.t.Fatalf("pass: %v", err)
	}
	return res
}

func (f *fixture) index(root string) []string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, root, exporter.IndexName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	lines := strings.Split(string(b), "\n")
	if !slices.IsSorted(lines) {
		f.t.Errorf("index.txt is not sorted: %q", lines)
	}
	return lines
}

// zipPath returns the path of an index line.
func (f *fixture) zipPath(line string) string { return filepath.Join(f.dir, filepath.FromSlash(line)) }

// read reads and checks one export file: it must decode and verify against
// the configuration's published keys.
func (f *fixture) read(line string) (*export.File, []byte, []export.Signature, []byte) {
	f.t.Helper()
	raw, err := os.ReadFile(f.zipPath(line))
	if err != nil {
		f.t.Fatal(err)
	}
	file, bin, sigs, err := export.Read(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		f.t.Fatalf("%s: %v", line, err)
	}
	root, _, _ := strings.Cut(line, "/")
	if err := export.Verify(bin, sigs, f.publicKeys(root)); err != nil {
		f.t.Fatalf("%s: %v", line, err)
	}
	return file, bin, sigs, raw
}

// publicKeys returns the keys of GET /exports/<root>/keys, parsed.
func (f *fixture) publicKeys(root string) map[export.SignatureInfo]*ecdsa.PublicKey {
	f.t.Helper()
	pks, err := f.x.PublicKeys(context.Background(), root)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[export.SignatureInfo]*ecdsa.PublicKey{}
	for _, pk := range pks {
		pub, err := api.ParsePublicKeyPEM(pk.PublicKeyPEM)
		if err != nil {
			f.t.Fatal(err)
		}
		out[export.SignatureInfo{KeyID: pk.KeyID, KeyVersion: pk.KeyVersion}] = pub
	}
	return out
}

// keysOf returns the key bytes of keys as strings, sorted.
func keysOf(keys []export.Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = string(k.Data)
	}
	slices.Sort(out)
	return out
}

func exposureKeys(es []*keyserver.Exposure) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.Key[:])
	}
	slices.Sort(out)
	return out
}

// metric returns the value of a metric with the given labels.
func (f *fixture) metric(name string, labels ...string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}
