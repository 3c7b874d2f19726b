package audit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/transparency-dev/tessera/storage/posix"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/api/logentry"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/transparency"
)

// world is a Candor server as the auditor sees it: a transparency log under
// /log/ and export files under /exports/, served by a plain file server
// (as a CDN would: it serves whatever file is there, listed or not).
type world struct {
	t       *testing.T
	now     time.Time
	logDir  string
	exports string
	keys    *keyset.MemStore
	master  tink.AEAD
	log     *transparency.Log
	handler *transparency.Handler
	srv     *httptest.Server
	signKey *ecdsa.PrivateKey
	state   string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	master, err := keyset.OpenMasterFile(filepath.Join(t.TempDir(), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{
		t: t, now: time.Date(2025, 3, 20, 12, 30, 0, 0, time.UTC),
		logDir: filepath.Join(t.TempDir(), "log"), exports: t.TempDir(),
		keys: keyset.NewMemStore(), master: master, state: filepath.Join(t.TempDir(), "state.json"),
	}
	if w.signKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	w.open()
	mux := http.NewServeMux()
	mux.Handle("/exports/", http.StripPrefix("/exports/", http.FileServer(http.Dir(w.exports))))
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		e := echo.New()
		w.handler.Register(e)
		e.ServeHTTP(rw, r)
	})
	w.srv = httptest.NewServer(mux)
	t.Cleanup(w.srv.Close)
	t.Cleanup(w.close)
	return w
}

func (w *world) open() {
	w.t.Helper()
	driver, err := posix.New(context.Background(), posix.Config{Path: w.logDir})
	if err != nil {
		w.t.Fatal(err)
	}
	l, err := transparency.Open(context.Background(), transparency.Options{
		Dir: w.logDir, Driver: driver, Keys: w.keys, Master: w.master, Origin: "audit.example/candor/data-use/v1",
		BatchMaxAge: 5 * time.Millisecond, CheckpointInterval: transparency.MinCheckpointInterval,
		Now: func() time.Time { return w.now },
	})
	if err != nil {
		w.t.Fatal(err)
	}
	h, err := transparency.NewHandler(l)
	if err != nil {
		w.t.Fatal(err)
	}
	w.log, w.handler = l, h
}

func (w *world) close() {
	if w.log != nil {
		w.log.Close(context.Background())
		w.handler.Close()
		w.log = nil
	}
}

func (w *world) record(b logentry.Body) uint64 {
	w.t.Helper()
	idx, err := w.log.Record(context.Background(), b)
	if err != nil {
		w.t.Fatal(err)
	}
	return idx
}

// published waits until the checkpoint covers every entry.
func (w *world) published() {
	w.t.Helper()
	if n := w.log.Size(); n > 0 {
		if _, err := w.log.AwaitPublished(context.Background(), n-1); err != nil {
			w.t.Fatal(err)
		}
	}
}

func pemOf(t *testing.T, k *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func (w *world) logKey(k *ecdsa.PrivateKey, version string) {
	w.record(logentry.SigningKeyAdded{SigningKey: logentry.SigningKey{
		Purpose: logentry.PurposeExport, KeyID: "310", KeyVersion: version,
		Algorithm: logentry.AlgorithmECDSAP256, PublicKeyPEM: pemOf(w.t, &k.PublicKey),
	}})
}

// writeFile writes the export zip of the hour starting at start in root,
// signed by k as 310/version, and returns its index line and logged body.
func (w *world) writeFile(root string, start time.Time, k *ecdsa.PrivateKey, version string, nKeys int) (string, logentry.ExportPublished) {
	w.t.Helper()
	end := start.Add(time.Hour)
	f := &export.File{StartTimestamp: uint64(start.Unix()), EndTimestamp: uint64(end.Unix()), Region: "US", BatchNum: 1, BatchSize: 1}
	for range nKeys {
		d := make([]byte, 16)
		rand.Read(d)
		f.Keys = append(f.Keys, export.Key{Data: d, RollingStartInterval: int32(start.Unix() / 600), RollingPeriod: 144, ReportType: export.ConfirmedTest})
	}
	info := export.SignatureInfo{KeyID: "310", KeyVersion: version}
	var buf bytes.Buffer
	wr, err := export.Write(&buf, f, []export.Signer{export.NewECDSASigner(info, k)})
	if err != nil {
		w.t.Fatal(err)
	}
	name := fmt.Sprintf("%s/%d-%d-00001.zip", root, start.Unix(), end.Unix())
	if err := os.MkdirAll(filepath.Join(w.exports, root), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.exports, name), buf.Bytes(), 0o644); err != nil {
		w.t.Fatal(err)
	}
	return name, logentry.ExportPublished{
		File: name, Region: "US", WindowStart: start, WindowEnd: end, FileNum: 1, FileCount: 1,
		ZipSHA256: hex.EncodeToString(wr.ZipSHA256[:]), BinSHA256: hex.EncodeToString(wr.BinSHA256[:]),
		Size: wr.Size, Keys: wr.KeyCount, SigningKeys: []logentry.KeyRef{{KeyID: "310", KeyVersion: version}},
	}
}

// list writes root's index.txt with names, as the exporter does.
func (w *world) list(root string, names ...string) {
	w.t.Helper()
	slices.Sort(names)
	w.writeExport(filepath.Join(root, "index.txt"), string(export.FormatListing(names)))
}

// serveRoots writes roots.txt with roots.
func (w *world) serveRoots(roots ...string) {
	w.t.Helper()
	slices.Sort(roots)
	w.writeExport(export.RootsName, string(export.FormatListing(roots)))
}

func (w *world) writeExport(name, body string) {
	w.t.Helper()
	if err := os.WriteFile(filepath.Join(w.exports, name), []byte(body), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// honest builds a log with the signing key and hours files of root "us"
// ending before now, all logged and listed.
func (w *world) honest(hours int) []string {
	w.t.Helper()
	w.logKey(w.signKey, "v1")
	w.record(logentry.ExportRootAdded{Root: "us", Region: "US"})
	w.serveRoots("us")
	var names []string
	for i := range hours {
		start := w.now.Truncate(time.Hour).Add(-time.Duration(hours-i+1) * time.Hour)
		name, body := w.writeFile("us", start, w.signKey, "v1", 5+i)
		w.record(body)
		names = append(names, name)
	}
	w.list("us", names...)
	w.record(logentry.SoftwareStarted{Module: "github.com/candor-en/candor", Version: "v1.0.0", GoVersion: "go1.26"})
	w.published()
	return names
}

func (w *world) config() Config {
	return Config{
		LogURL: w.srv.URL + "/log/", Exports: []string{w.srv.URL + "/exports/"},
		Key: w.log.VerifierKey(), StatePath: w.state, Now: func() time.Time { return w.now },
	}
}

func (w *world) audit(cfg Config) *Report {
	w.t.Helper()
	r, err := Run(context.Background(), cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	var buf bytes.Buffer
	r.WriteText(&buf)
	w.t.Logf("audit:\n%s", buf.String())
	return r
}

// expectFail checks that the audit failed on the named check, with a
// detail or problem containing text.
func expectFail(t *testing.T, r *Report, check, text string) {
	t.Helper()
	if r.OK {
		t.Fatalf("audit passed, want %q to fail", check)
	}
	for _, c := range r.Failed() {
		if c.Name != check {
			continue
		}
		if strings.Contains(c.Detail, text) || slices.ContainsFunc(c.Problems, func(p string) bool { return strings.Contains(p, text) }) {
			return
		}
		t.Fatalf("%s failed with %q %q, want %q", check, c.Detail, c.Problems, text)
	}
	t.Fatalf("%q did not fail; failed: %+v", check, r.Failed())
}

func TestAuditCleanRunPasses(t *testing.T) {
	w := newWorld(t)
	w.honest(3)
	r := w.audit(w.config())
	if !r.OK || !r.StateSaved || r.Size != 6 || r.FilesChecked != 3 {
		t.Fatalf("clean audit: ok %v, state saved %v, size %d, files %d", r.OK, r.StateSaved, r.Size, r.FilesChecked)
	}
	// The log grows; the second run proves consistency with the first,
	// with the key taken from the state file.
	_, body := w.writeFile("us", w.now.Truncate(time.Hour).Add(-time.Hour), w.signKey, "v1", 20)
	w.record(body)
	w.list("us", slices.Collect(maps.Keys(w.logFiles()))...)
	w.published()
	cfg := w.config()
	cfg.Key = ""
	r = w.audit(cfg)
	if !r.OK || r.PreviousSize != 6 || r.Size != 7 || r.FilesChecked != 4 {
		t.Fatalf("second audit: ok %v, previous %d, size %d, files %d", r.OK, r.PreviousSize, r.Size, r.FilesChecked)
	}
	for _, c := range r.Checks {
		if c.Name == "consistency with the last checkpoint" && c.Status != StatusOK {
			t.Errorf("consistency: %+v", c)
		}
	}
	// JSON report.
	b, err := json.Marshal(r)
	if err != nil || !strings.Contains(string(b), `"ok":true`) {
		t.Errorf("json: %s %v", b, err)
	}
}

func (w *world) logFiles() map[string]bool {
	out := map[string]bool{}
	w.log.Each(w.log.Size(), func(r transparency.Record) bool {
		if b, ok := r.Entry.Body.(logentry.ExportPublished); ok {
			out[b.File] = true
		}
		return true
	})
	return out
}

func TestAuditTamperedTile(t *testing.T) {
	w := newWorld(t)
	w.honest(3)
	// Flip a byte of the level-0 hash tile.
	var tile string
	filepath.WalkDir(filepath.Join(w.logDir, "tile", "0"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			tile = p
		}
		return nil
	})
	b, err := os.ReadFile(tile)
	if err != nil {
		t.Fatal(err)
	}
	b[40] ^= 1
	if err := os.WriteFile(tile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := w.audit(w.config())
	expectFail(t, r, "tiles match the entries", "tampered tile")
	if r.StateSaved {
		t.Error("the state was saved for a log that failed")
	}
}

func TestAuditTamperedEntry(t *testing.T) {
	w := newWorld(t)
	w.honest(2)
	bundle := filepath.Join(w.logDir, "tile", "entries", "000.p", "5")
	b, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	// Change a digit inside the first entry: still valid JSON.
	i := bytes.Index(b, []byte(`"keys":5`))
	b[i+7] = '6'
	if err := os.WriteFile(bundle, b, 0o644); err != nil {
		t.Fatal(err)
	}
	expectFail(t, w.audit(w.config()), "entries rebuild the checkpoint", "the checkpoint says")
}

func TestAuditWrongKey(t *testing.T) {
	w := newWorld(t)
	w.honest(1)
	other := newWorld(t)
	cfg := w.config()
	cfg.Key = other.log.VerifierKey() // same origin, another key
	expectFail(t, w.audit(cfg), "checkpoint signature", "does not verify")
}

func TestAuditExportNotLogged(t *testing.T) {
	w := newWorld(t)
	names := w.honest(2)
	extra, _ := w.writeFile("us", w.now.Truncate(time.Hour).Add(-time.Hour), w.signKey, "v1", 7)
	w.list("us", append(names, extra)...)
	r := w.audit(w.config())
	expectFail(t, r, "every listed file is logged", "served but not logged")
}

func TestAuditExportChanged(t *testing.T) {
	w := newWorld(t)
	names := w.honest(2)
	// Same name, new keys, validly signed by the logged key: only the
	// log can tell.
	start := w.now.Truncate(time.Hour).Add(-3 * time.Hour)
	name, _ := w.writeFile("us", start, w.signKey, "v1", 5)
	if name != names[0] {
		t.Fatalf("rewrote %s, want %s", name, names[0])
	}
	expectFail(t, w.audit(w.config()), "listed files match the log and verify", "changed after it was logged")
}

func TestAuditExportSignedByUnloggedKey(t *testing.T) {
	w := newWorld(t)
	w.honest(1)
	rogue, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, body := w.writeFile("us", w.now.Truncate(time.Hour).Add(-time.Hour), rogue, "v9", 3)
	w.record(body)
	w.list("us", slices.Collect(maps.Keys(w.logFiles()))...)
	w.published()
	expectFail(t, w.audit(w.config()), "listed files match the log and verify", "a key the log does not have")
}

func TestAuditForkedLog(t *testing.T) {
	w := newWorld(t)
	w.honest(2)
	snapshot := filepath.Join(t.TempDir(), "snapshot")
	copyDir(t, w.logDir, snapshot)
	// The log grows and an auditor sees it.
	for i := range 3 {
		w.record(logentry.StatsDaily{Realm: "wa", Day: fmt.Sprintf("2025-03-1%d", i), CodesIssued: logentry.NewCount(20)})
	}
	w.published()
	if r := w.audit(w.config()); !r.OK {
		t.Fatal("honest audit failed")
	}
	// The operator restores the log directory from the older copy and
	// carries on: first the log is smaller than what the auditor saw …
	w.close()
	if err := os.RemoveAll(w.logDir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, snapshot, w.logDir)
	w.open()
	w.record(logentry.SoftwareStarted{Module: "github.com/candor-en/candor", Version: "v1.0.1", GoVersion: "go1.26"})
	w.published()
	expectFail(t, w.audit(w.config()), "consistency with the last checkpoint", "rolled back or forked")
	// … then it has grown past it with other entries.
	for i := range 3 {
		w.record(logentry.StatsDaily{Realm: "or", Day: fmt.Sprintf("2025-03-1%d", i), CodesIssued: logentry.NewCount(30)})
	}
	w.published()
	r := w.audit(w.config())
	expectFail(t, r, "consistency with the last checkpoint", "forked")
	if r.StateSaved {
		t.Error("the forked checkpoint replaced the state")
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAuditRetention(t *testing.T) {
	w := newWorld(t)
	names := w.honest(2)
	// A file of a window 15 days ago, logged then, unlisted now but still
	// downloadable.
	old, body := w.writeFile("us", w.now.Truncate(time.Hour).AddDate(0, 0, -15), w.signKey, "v1", 4)
	w.record(body)
	w.published()
	r := w.audit(w.config())
	expectFail(t, r, "nothing past retention is served", "still served")
	for _, c := range r.Checks {
		if c.Name == "nothing past retention is listed" && c.Status != StatusOK {
			t.Errorf("listed check: %+v", c)
		}
	}
	// Still listed, too.
	w.list("us", append(names, old)...)
	expectFail(t, w.audit(w.config()), "nothing past retention is listed", "still listed")
	// Deleted and unlisted: passes.
	w.list("us", names...)
	os.Remove(filepath.Join(w.exports, old))
	w.record(logentry.RetentionDeleted{Cutoff: w.now.AddDate(0, 0, -14), KeysDeleted: logentry.NewCount(4), FilesDeleted: 1, Files: []string{old}})
	w.published()
	if r := w.audit(w.config()); !r.OK {
		t.Fatal("audit after retention failed")
	}
	// A file whose deletion is logged must not come back.
	w.writeFile("us", w.now.Truncate(time.Hour).AddDate(0, 0, -15), w.signKey, "v1", 4)
	expectFail(t, w.audit(w.config()), "nothing past retention is served", "still served")
}

func TestAuditIndexURLAndMissingKey(t *testing.T) {
	w := newWorld(t)
	w.honest(2)
	cfg := w.config()
	cfg.Exports = []string{w.srv.URL + "/exports/us/index.txt"}
	if r := w.audit(cfg); !r.OK || r.FilesChecked != 2 {
		t.Fatalf("index URL: ok %v, files %d", r.OK, r.FilesChecked)
	}
	cfg.Exports = []string{w.srv.URL + "/exports/nope/index.txt"}
	expectFail(t, w.audit(cfg), "every listed file is logged", "does not exist")
	cfg = w.config()
	cfg.Key, cfg.StatePath = "", ""
	if _, err := Run(context.Background(), cfg); err != ErrNoKey {
		t.Errorf("no key: %v", err)
	}
}

// An export root served beside the logged one, listed in roots.txt but
// never logged, fails the audit; so does a root whose files are logged but
// that roots.txt hides, and a site without roots.txt.
func TestAuditUnloggedRoot(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		serve      func(w *world)
	}{
		{"unlogged root listed", "served but not logged", func(w *world) {
			name, _ := w.writeFile("shadow", w.now.Truncate(time.Hour).Add(-2*time.Hour), w.signKey, "v1", 5)
			w.list("shadow", name)
			w.serveRoots("us", "shadow")
		}},
		{"logged root hidden from roots.txt", "does not list root us", func(w *world) {
			w.serveRoots()
		}},
		{"no roots.txt", "roots.txt", func(w *world) {
			os.Remove(filepath.Join(w.exports, export.RootsName))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.honest(2)
			if r := w.audit(w.config()); !r.OK {
				t.Fatal("honest audit failed")
			}
			tc.serve(w)
			expectFail(t, w.audit(w.config()), "every served root is logged", tc.text)
		})
	}
	// An index URL of a root never logged fails too.
	w := newWorld(t)
	w.honest(1)
	name, body := w.writeFile("other", w.now.Truncate(time.Hour).Add(-2*time.Hour), w.signKey, "v1", 5)
	w.record(body)
	w.list("other", name)
	w.published()
	cfg := w.config()
	cfg.Exports = []string{w.srv.URL + "/exports/other/index.txt"}
	expectFail(t, w.audit(cfg), "every served root is logged", "not logged")
}

// Index lines are checked byte for byte: a phone fetches the line as it
// is, so "<logged name>\r" names a file no entry describes.
func TestAuditIndexNotByteExact(t *testing.T) {
	for name, edit := range map[string]func(string) string{
		"carriage return":  func(l string) string { return l + "\r" },
		"leading space":    func(l string) string { return " " + l },
		"trailing newline": func(l string) string { return l + "\n" },
		"blank line":       func(l string) string { return "\n" + l },
		"tab":              func(l string) string { return l + "\t" },
		"other root":       func(l string) string { return "x" + l },
		"path":             func(l string) string { return "us/../" + l },
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t)
			names := w.honest(2)
			w.writeExport(filepath.Join("us", "index.txt"), names[0]+"\n"+edit(names[1]))
			expectFail(t, w.audit(w.config()), "every listed file is logged", "exact form")
		})
	}
}
