package transparency

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"

	"github.com/candor-en/candor/api/logentry"
	"github.com/candor-en/candor/keyset"
)

// fixture is a log's directory, key store and master key, so tests can
// reopen the same log.
type fixture struct {
	dir    string
	keys   *keyset.MemStore
	master tink.AEAD
	now    time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	master, err := keyset.OpenMasterFile(filepath.Join(t.TempDir(), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: filepath.Join(t.TempDir(), "log"), keys: keyset.NewMemStore(), master: master,
		now: time.Date(2025, 3, 10, 12, 30, 0, 0, time.UTC)}
}

func (f *fixture) options() Options {
	return Options{
		Dir: f.dir, Driver: posixDriver(f.dir), Keys: f.keys, Master: f.master, Origin: "test.example/candor/data-use/v1",
		BatchMaxAge: 5 * time.Millisecond, CheckpointInterval: MinCheckpointInterval,
		Now: func() time.Time { return f.now },
	}
}

// posixDriver returns Tessera's POSIX driver writing dir.
func posixDriver(dir string) tessera.Driver {
	d, err := posix.New(context.Background(), posix.Config{Path: dir})
	if err != nil {
		panic(err) // the POSIX driver only records its configuration
	}
	return d
}

func (f *fixture) open(t *testing.T) *Log {
	t.Helper()
	l, err := Open(context.Background(), f.options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func testKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func exportBody(n int) logentry.ExportPublished {
	start := time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Hour)
	return logentry.ExportPublished{
		File:   fmt.Sprintf("us/%d-%d-00001.zip", start.Unix(), start.Add(time.Hour).Unix()),
		Region: "US", WindowStart: start, WindowEnd: start.Add(time.Hour), FileNum: 1, FileCount: 1,
		ZipSHA256: strings.Repeat("ab", 32), BinSHA256: strings.Repeat("cd", 32), Size: 100, Keys: 1000,
		SigningKeys: []logentry.KeyRef{{KeyID: "310", KeyVersion: "v1"}},
	}
}

func TestAppendReopen(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	l := f.open(t)
	var last uint64
	for i := range 5 {
		idx, err := l.Record(ctx, exportBody(i))
		if err != nil {
			t.Fatal(err)
		}
		if idx != uint64(i) {
			t.Errorf("entry %d got index %d", i, idx)
		}
		last = idx
	}
	cp, err := l.AwaitPublished(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 5 || !strings.HasPrefix(string(cp.Raw), "test.example/candor/data-use/v1\n5\n") {
		t.Fatalf("checkpoint %q", cp.Raw)
	}
	// The same event again is not logged twice.
	if idx, err := l.Record(ctx, exportBody(2)); err != nil || idx != 2 {
		t.Errorf("repeat: %d, %v", idx, err)
	}
	vkey := l.VerifierKey()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(ctx, exportBody(9)); !errors.Is(err, ErrClosed) {
		t.Errorf("record after close: %v", err)
	}

	// Reopened (origin from the store), the log has its entries, the same
	// key, and still logs each event once.
	opts := f.options()
	opts.Origin = ""
	l2, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close(ctx)
	if l2.VerifierKey() != vkey || l2.Size() != 5 {
		t.Fatalf("reopened: key %s, size %d", l2.VerifierKey(), l2.Size())
	}
	r, ok := l2.Entry(3)
	if !ok || r.Entry.Body.(logentry.ExportPublished).File != exportBody(3).File {
		t.Errorf("entry 3: %+v", r)
	}
	if idx, err := l2.Record(ctx, exportBody(4)); err != nil || idx != 4 {
		t.Errorf("repeat after reopen: %d, %v", idx, err)
	}
	if idx, err := l2.Record(ctx, exportBody(5)); err != nil || idx != 5 {
		t.Errorf("new entry after reopen: %d, %v", idx, err)
	}
}

func TestAppendConcurrentRepeats(t *testing.T) {
	ctx := context.Background()
	l := newFixture(t).open(t)
	var wg sync.WaitGroup
	idx := make([]uint64, 40)
	errs := make([]error, 40)
	for i := range idx {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx[i], errs[i] = l.Record(ctx, exportBody(i%4))
		}()
	}
	wg.Wait()
	for i := range idx {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if idx[i] != idx[i%4] {
			t.Errorf("the same event got indexes %d and %d", idx[i], idx[i%4])
		}
	}
	if l.Size() != 4 {
		t.Errorf("size %d, want 4", l.Size())
	}
}

func TestAppendRefusesInvalid(t *testing.T) {
	l := newFixture(t).open(t)
	if _, err := l.Record(context.Background(), logentry.SoftwareStarted{}); err == nil {
		t.Error("an invalid entry was logged")
	}
	if l.Size() != 0 {
		t.Errorf("size %d", l.Size())
	}
}

func TestOriginAndKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	l := f.open(t)
	vkey := l.VerifierKey()
	if !strings.HasPrefix(vkey, "test.example/candor/data-use/v1+") {
		t.Errorf("verifier key %s", vkey)
	}
	l.Close(ctx)

	opts := f.options()
	opts.Origin = "other.example/log"
	if _, err := Open(ctx, opts); err == nil || !strings.Contains(err.Error(), "different log") {
		t.Errorf("another origin: %v", err)
	}
	// The stored key is sealed: the blob does not hold the seed, and
	// another master key cannot open it.
	blob, err := f.keys.LoadKeyset(ctx, DefaultKeyName)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, []byte("PRIVATE")) {
		t.Errorf("blob looks like a cleartext key: %s", blob)
	}
	other, err := keyset.OpenMasterFile(filepath.Join(t.TempDir(), "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	opts = f.options()
	opts.Master = other
	if _, err := Open(ctx, opts); err == nil {
		t.Error("opened with another master key")
	}
	// A directory holding another log's checkpoint is refused.
	opts = f.options()
	opts.Keys = keyset.NewMemStore()
	if _, err := Open(ctx, opts); err == nil || !strings.Contains(err.Error(), "not this log's") {
		t.Errorf("another log's directory: %v", err)
	}
	if DefaultOrigin("Example.ORG") != "example.org/candor/data-use/v1" {
		t.Error(DefaultOrigin("Example.ORG"))
	}
	opts = f.options()
	opts.Origin = "bad origin"
	if _, err := Open(ctx, opts); err == nil {
		t.Error("an origin with a space was accepted")
	}
}

func TestDefaultOriginFromHost(t *testing.T) {
	f := newFixture(t)
	opts := f.options()
	opts.Origin, opts.Host = "", "keys.example.gov"
	l, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	if l.Origin() != "keys.example.gov/candor/data-use/v1" {
		t.Errorf("origin %s", l.Origin())
	}
}

type fakeStats map[string][]logentry.StatsDaily

func (s fakeStats) DailyStats(ctx context.Context, day time.Time) ([]logentry.StatsDaily, error) {
	return s[day.Format(logentry.DayLayout)], nil
}

func TestRecordDailyStats(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	l := f.open(t)
	src := fakeStats{
		"2025-03-08": {{Realm: "wa", CodesIssued: logentry.NewCount(50)}},
		"2025-03-09": {{Realm: "wa", CodesIssued: logentry.NewCount(3)}, {Realm: "or", CodesIssued: logentry.NewCount(12)}},
		"2025-03-10": {{Realm: "wa", CodesIssued: logentry.NewCount(99)}}, // today: not finished
	}
	n, err := l.RecordDailyStats(ctx, src, f.now, 3)
	if err != nil || n != 3 {
		t.Fatalf("logged %d, %v", n, err)
	}
	if n, err := l.RecordDailyStats(ctx, src, f.now.Add(time.Hour), 3); err != nil || n != 0 {
		t.Errorf("again: logged %d, %v", n, err)
	}
	// Just after midnight the day is not settled yet.
	if n, _ := l.RecordDailyStats(ctx, src, time.Date(2025, 3, 11, 0, 30, 0, 0, time.UTC), 1); n != 0 {
		t.Errorf("logged %d for an unsettled day", n)
	}
	if n, _ := l.RecordDailyStats(ctx, src, time.Date(2025, 3, 11, 1, 30, 0, 0, time.UTC), 1); n != 1 {
		t.Errorf("logged %d for a settled day", n)
	}
	r, _ := l.Entry(1)
	if s := r.Entry.Body.(logentry.StatsDaily); s.Day != "2025-03-09" || !s.CodesIssued.Below() {
		t.Errorf("entry %+v", s)
	}
}

func TestCloseWaitsForCheckpoint(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	l := f.open(t)
	if _, err := l.Record(ctx, exportBody(0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(f.dir, "checkpoint"))
	if err != nil || !strings.HasPrefix(string(raw), "test.example/candor/data-use/v1\n1\n") {
		t.Errorf("checkpoint after close: %q, %v", raw, err)
	}
}
