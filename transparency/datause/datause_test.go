package datause_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/storage/posix"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/api/logentry"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/storage/bolt"
	"github.com/candor-en/candor/transparency"
	"github.com/candor-en/candor/transparency/datause"
	"github.com/candor-en/candor/verification"
)

// fixture is a log, a store and the services the Recorder reads, in a
// temporary directory with a clock the test moves.
type fixture struct {
	db           *bolt.DB
	log          *transparency.Log
	rec          *datause.Recorder
	exportKeys   *exporter.Keysets
	verification *verification.Service
}

func newFixture(t *testing.T, now *time.Time) *fixture {
	t.Helper()
	ctx := context.Background()
	clock := func() time.Time { return *now }
	dir := t.TempDir()
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	master, err := keyset.OpenMasterFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	driver, err := posix.New(ctx, posix.Config{Path: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	l, err := transparency.Open(ctx, transparency.Options{
		Dir: filepath.Join(dir, "log"), Driver: driver, Host: "localhost", Keys: db, Master: master,
		BatchMaxAge: 5 * time.Millisecond, CheckpointInterval: transparency.MinCheckpointInterval,
		Now: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	svc, err := verification.New(ctx, bolt.NewVerificationStore(db), db, master, verification.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{
		db: db, log: l, rec: datause.New(l, exporter.DefaultRetention, clock),
		exportKeys: exporter.NewKeysets(db, master, clock), verification: svc,
	}
}

// sources are what a server running every role syncs.
func (f *fixture) sources() datause.Sources {
	return datause.Sources{Configs: f.db, ExportKeys: f.exportKeys, Realms: f.verification, Authorities: f.db}
}

// logged returns the types of l's entries, oldest first.
func logged(l *transparency.Log) []string {
	var types []string
	l.Each(l.Size(), func(r transparency.Record) bool {
		types = append([]string{r.Entry.Type}, types...)
		return true
	})
	return types
}

func wantTypes(t *testing.T, l *transparency.Log, want ...string) {
	t.Helper()
	got := logged(l)
	if len(got) != len(want) {
		t.Fatalf("log holds %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("log holds %q, want %q", got, want)
		}
	}
}

func TestExportEvents(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 5, 1, 10, 20, 0, 0, time.UTC)
	fx := newFixture(t, &now)
	if _, _, err := exporter.AddConfig(ctx, fx.db, fx.exportKeys, exporter.Config{
		Root: "us", Region: "US", SignatureInfos: []exporter.SignatureInfo{{KeyID: "310", KeyVersion: "v1"}},
	}, now); err != nil {
		t.Fatal(err)
	}
	ev := fx.rec.ExportEvents(fx.exportKeys)
	start := now.Truncate(time.Hour).Add(-2 * time.Hour)
	f := exporter.FilePublished{
		Root: "us", Name: "us/1746086400-1746090000-00001.zip", Region: "US", Start: start, End: start.Add(time.Hour),
		FileNum: 1, FileCount: 1, Size: 999, Keys: 1000, RevisedKeys: 2,
		SigningKeys: []export.SignatureInfo{{KeyID: "310", KeyVersion: "v1"}},
	}
	f.ZipSHA256[0], f.BinSHA256[0] = 1, 2
	for range 2 { // delivered at least once
		if err := ev.OnFilePublished(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := ev.OnRetention(ctx, exporter.RetentionResult{Cutoff: start.AddDate(0, 0, -14), KeysRemoved: 7, FilesRemoved: 3}); err != nil {
		t.Fatal(err)
	}
	wantTypes(t, fx.log, logentry.TypeSigningKeyAdded, logentry.TypeExportPublished, logentry.TypeRetentionDeleted)
	r, _ := fx.log.Entry(1)
	b := r.Entry.Body.(logentry.ExportPublished)
	if b.File != f.Name || b.ZipSHA256 != f.ZipSHA256.String() || b.Keys != 1000 || b.SigningKeys[0].String() != "310/v1" {
		t.Errorf("export entry %+v", b)
	}
	r, _ = fx.log.Entry(2)
	if d := r.Entry.Body.(logentry.RetentionDeleted); !d.KeysDeleted.Below() || d.FilesDeleted != 3 {
		t.Errorf("retention entry %+v", d)
	}
	// A file signed by a key the exporter does not have is refused, so
	// the exporter retries instead of logging an unverifiable file.
	f.Name = "us/1746090000-1746093600-00001.zip"
	f.SigningKeys = []export.SignatureInfo{{KeyID: "999", KeyVersion: "v1"}}
	if err := ev.OnFilePublished(ctx, f); err == nil {
		t.Error("a file signed by an unknown key was logged")
	}
}

func TestSyncDataUse(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 5, 1, 10, 20, 0, 0, time.UTC)
	fx := newFixture(t, &now)
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pemText, _ := api.MarshalPublicKeyPEM(&pk.PublicKey)
	if _, _, err := keyserver.AddAuthority(ctx, fx.db, keyserver.HealthAuthority{Issuer: "gov.example", Audience: "ks"},
		&keyserver.AuthorityKey{Version: "v1", PEM: pemText}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.verification.CreateRealm(ctx, verification.Realm{Name: "wa", Region: "US-WA"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := exporter.AddConfig(ctx, fx.db, fx.exportKeys, exporter.Config{
		Root: "us", Region: "US", SignatureInfos: []exporter.SignatureInfo{{KeyID: "310", KeyVersion: "v1"}},
	}, now); err != nil {
		t.Fatal(err)
	}
	if err := fx.rec.Sync(ctx, fx.sources()); err != nil {
		t.Fatal(err)
	}
	wantTypes(t, fx.log, logentry.TypeSigningKeyAdded, logentry.TypeExportRootAdded, logentry.TypeSigningKeyAdded, logentry.TypeRealmAdded, logentry.TypeAuthorityAdded)
	if r, _ := fx.log.Entry(1); r.Entry.Body != logentry.Body(logentry.ExportRootAdded{Root: "us", Region: "US"}) {
		t.Errorf("root entry %+v", r.Entry.Body)
	}
	// Nothing changed: nothing logged.
	if err := fx.rec.Sync(ctx, fx.sources()); err != nil {
		t.Fatal(err)
	}
	if n := fx.log.Size(); n != 5 {
		t.Fatalf("a second sync logged %d entries", n-5)
	}

	// A policy change, a key rotation and a retirement.
	now = now.Add(time.Hour)
	if _, err := fx.verification.UpdateRealm(ctx, "wa", func(r *verification.Realm) error { r.DailyQuota = 500; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := exporter.AddSignatureInfo(ctx, fx.db, fx.exportKeys, "us", "310", "v2", now); err != nil {
		t.Fatal(err)
	}
	if _, err := exporter.RetireSignatureInfo(ctx, fx.db, "us", "310", "v1", now, now); err != nil {
		t.Fatal(err)
	}
	if err := fx.rec.Sync(ctx, fx.sources()); err != nil {
		t.Fatal(err)
	}
	wantTypes(t, fx.log, logentry.TypeSigningKeyAdded, logentry.TypeExportRootAdded, logentry.TypeSigningKeyAdded, logentry.TypeRealmAdded, logentry.TypeAuthorityAdded,
		logentry.TypeSigningKeyRetired, logentry.TypeSigningKeyRotated, logentry.TypeRealmChanged)
	r, _ := fx.log.Entry(6)
	if rot := r.Entry.Body.(logentry.SigningKeyRotated); rot.KeyVersion != "v2" || len(rot.Replaces) != 1 || rot.Replaces[0].KeyVersion != "v1" {
		t.Errorf("rotation %+v", rot)
	}
	r, _ = fx.log.Entry(7)
	if ch := r.Entry.Body.(logentry.RealmChanged); ch.DailyQuota != 500 || len(ch.CertificateKeys) != 1 {
		t.Errorf("realm change %+v", ch)
	}
	if err := fx.rec.Sync(ctx, fx.sources()); err != nil || fx.log.Size() != 8 {
		t.Errorf("a third sync: size %d, %v", fx.log.Size(), err)
	}
}

type fakeRealmStats struct {
	realms []*verification.Realm
	days   map[string][]verification.DayStats
}

func (f fakeRealmStats) Realms(ctx context.Context) ([]*verification.Realm, error) {
	return f.realms, nil
}
func (f fakeRealmStats) Stats(ctx context.Context, realm string, from, to time.Time) ([]verification.DayStats, error) {
	return f.days[realm], nil
}

func TestVerificationStats(t *testing.T) {
	day := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	src := datause.VerificationStats{Service: fakeRealmStats{
		realms: []*verification.Realm{{Name: "wa"}, {Name: "or"}},
		days: map[string][]verification.DayStats{
			"wa": {{Realm: "wa", Day: "2025-05-01", Stats: verification.Stats{CodesIssued: 120, CodesClaimed: 80, CertificatesIssued: 3}}},
			"or": {{Realm: "or", Day: "2025-04-30", Stats: verification.Stats{CodesIssued: 20}}},
		},
	}}
	got, err := src.DailyStats(context.Background(), day)
	if err != nil || len(got) != 1 {
		t.Fatalf("%+v %v", got, err)
	}
	s := got[0]
	if s.Realm != "wa" || s.CodesIssued.String() != "120" || s.CodesClaimed.String() != "80" || !s.CertificatesIssued.Below() || s.UploadsAccepted != nil {
		t.Errorf("%+v", s)
	}
}
