package phone_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/client"
	"github.com/candor-en/candor/gaen"
	"github.com/candor-en/candor/phone"
)

// now is the simulated clock of these tests.
var testNow = time.Date(2026, 5, 10, 15, 0, 0, 0, time.UTC)

func newPhone(t *testing.T) *phone.State {
	t.Helper()
	st := &phone.State{}
	if n, err := st.Roll(testNow, rand.Reader); err != nil || n != phone.KeepDays {
		t.Fatalf("Roll = %d, %v", n, err)
	}
	return st
}

func TestRoll(t *testing.T) {
	st := newPhone(t)
	if len(st.Keys) != 14 {
		t.Fatalf("%d keys", len(st.Keys))
	}
	today := gaen.RollingStart(testNow)
	for i, k := range st.Keys {
		if want := today - uint32(13-i)*144; k.RollingStart != want || k.RollingPeriod != 144 {
			t.Errorf("key %d: start %d period %d, want start %d", i, k.RollingStart, k.RollingPeriod, want)
		}
	}
	if !st.Keys[13].Day().Equal(time.Date(2026, 5, 10, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("today's key is of %v", st.Keys[13].Day())
	}
	oldest := st.Keys[0]
	// Nothing changes the same day.
	if n, _ := st.Roll(testNow.Add(time.Hour), rand.Reader); n != 0 {
		t.Errorf("second Roll the same day added %d keys", n)
	}
	// A day later: one key more, the oldest (and what was heard then) forgotten.
	other := newPhone(t)
	if _, err := st.Encounter(other, time.Date(2026, 4, 27, 10, 0, 0, 0, time.UTC), 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.Roll(testNow.Add(24*time.Hour), rand.Reader); n != 1 {
		t.Errorf("Roll a day later added %d keys", n)
	}
	if len(st.Keys) != 14 || st.Keys[0] == oldest || len(st.Heard) != 0 {
		t.Errorf("after a day: %d keys, first %v (was %v), %d sightings", len(st.Keys), st.Keys[0], oldest, len(st.Heard))
	}
}

func TestSaveLoad(t *testing.T) {
	st := newPhone(t)
	st.App = phone.App{Server: "http://x", APIKey: "k", HealthAuthorityID: "app", ExportsRoot: "us"}
	path := filepath.Join(t.TempDir(), "a.json")
	if err := st.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, %v", fi.Mode(), err)
	}
	got, err := phone.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.App != st.App || !slices.Equal(got.Keys, st.Keys) {
		t.Errorf("round trip: %+v", got)
	}
	if _, err := phone.Load(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, phone.ErrNoState) {
		t.Errorf("missing state: %v", err)
	}
	os.WriteFile(path, []byte(`{"version":99}`), 0o600)
	if _, err := phone.Load(path); err == nil {
		t.Error("unknown version accepted")
	}
}

// TestEncounterModel pins down the documented resolution: one sighting per
// interval touched, one scan per minute.
func TestEncounterModel(t *testing.T) {
	day := time.Date(2026, 5, 9, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		start     string
		minutes   int
		intervals int
	}{
		{"12:00", 30, 3},
		{"12:05", 30, 4},
		{"12:00", 10, 1},
		{"12:05", 10, 2},
		{"12:02", 5, 1},
		{"12:00", 1, 1},
		{"23:55", 10, 2}, // across midnight: two keys of the broadcaster
	} {
		a, b := newPhone(t), newPhone(t)
		start, _ := time.Parse("15:04", tc.start)
		at := day.Add(time.Duration(start.Hour())*time.Hour + time.Duration(start.Minute())*time.Minute)
		res, err := b.Encounter(a, at, time.Duration(tc.minutes)*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		scans := 0
		for _, s := range b.Heard {
			scans += s.Scans
		}
		if res.Intervals != tc.intervals || len(b.Heard) != tc.intervals || res.Scans != tc.minutes || scans != tc.minutes {
			t.Errorf("%s for %d min: %+v, %d sightings with %d scans; want %d intervals", tc.start, tc.minutes, res, len(b.Heard), scans, tc.intervals)
		}
		// What was heard is exactly what the broadcaster sent.
		for _, s := range b.Heard {
			rpi, aem, err := a.Broadcast(s.Interval)
			if err != nil || rpi != s.RPI || !bytes.Equal(aem, s.AEM) {
				t.Errorf("sighting %+v is not a's broadcast", s)
			}
		}
	}

	a, b := newPhone(t), newPhone(t)
	// Meeting again in the same interval adds scans, not sightings.
	at := day.Add(12 * time.Hour)
	b.Encounter(a, at, 4*time.Minute)
	b.Encounter(a, at.Add(4*time.Minute), 4*time.Minute)
	if len(b.Heard) != 1 || b.Heard[0].Scans != 8 {
		t.Errorf("two encounters in one interval: %+v", b.Heard)
	}
	// The other phone has no key that long ago: nothing changes.
	before := len(b.Heard)
	if _, err := b.Encounter(a, testNow.AddDate(0, 0, -20), 30*time.Minute); err == nil || len(b.Heard) != before {
		t.Errorf("encounter without the other's key: %v, %d sightings", err, len(b.Heard))
	}
	if _, err := b.Encounter(b, at, time.Minute); err == nil {
		t.Error("a phone met itself")
	}
	if _, err := b.Encounter(a, at, 0); err == nil {
		t.Error("zero-length encounter accepted")
	}
	// The state holds nothing that names the other phone: no TEK of a.
	blob, _ := json.Marshal(b.Heard)
	for _, k := range a.Keys {
		if bytes.Contains(blob, []byte(k.TEK.String())) {
			t.Error("the listener's sightings contain the broadcaster's TEK")
		}
	}
}

// exportFixture signs export files as a server would and serves them.
type exportFixture struct {
	t       *testing.T
	key     *ecdsa.PrivateKey
	info    export.SignatureInfo
	mu      sync.Mutex
	files   map[string][]byte
	srv     *httptest.Server
	pinned  map[export.SignatureInfo]*ecdsa.PublicKey
	counter int
	// editIndex changes index.txt as served (a server that lies).
	editIndex func(string) string
}

func newExportFixture(t *testing.T) *exportFixture {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fx := &exportFixture{t: t, key: key, info: export.SignatureInfo{KeyID: "310", KeyVersion: "v1"}, files: map[string][]byte{},
		editIndex: func(s string) string { return s }}
	fx.pinned = map[export.SignatureInfo]*ecdsa.PublicKey{fx.info: &key.PublicKey}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /exports/us/index.txt", func(w http.ResponseWriter, r *http.Request) {
		fx.mu.Lock()
		defer fx.mu.Unlock()
		var names []string
		for n := range fx.files {
			names = append(names, n)
		}
		slices.Sort(names)
		io.WriteString(w, fx.editIndex(strings.Join(names, "\n")))
	})
	mux.HandleFunc("GET /exports/us/{file}", func(w http.ResponseWriter, r *http.Request) {
		fx.mu.Lock()
		b, ok := fx.files["us/"+r.PathValue("file")]
		fx.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	})
	fx.srv = httptest.NewServer(mux)
	t.Cleanup(fx.srv.Close)
	return fx
}

func (fx *exportFixture) client() *client.Client {
	c, err := client.New(fx.srv.URL, client.WithExportKeys(fx.pinned))
	if err != nil {
		fx.t.Fatal(err)
	}
	return c
}

// add publishes a file with keys and revised keys (plus random padding),
// signed by signer (the fixture's key when nil), and returns its name.
func (fx *exportFixture) add(keys, revised []export.Key, signer export.Signer) string {
	fx.t.Helper()
	for range 50 {
		d := make([]byte, 16)
		rand.Read(d)
		keys = append(keys, export.Key{Data: d, TransmissionRisk: 2, RollingStartInterval: int32(gaen.RollingStart(testNow)) - 144, RollingPeriod: 144, ReportType: export.ConfirmedTest})
	}
	if signer == nil {
		signer = export.NewECDSASigner(fx.info, fx.key)
	}
	var buf bytes.Buffer
	f := &export.File{StartTimestamp: 1, EndTimestamp: 2, Region: "US", BatchNum: 1, BatchSize: 1, Keys: keys, RevisedKeys: revised}
	if _, err := export.Write(&buf, f, []export.Signer{signer}); err != nil {
		fx.t.Fatal(err)
	}
	return fx.addRaw(buf.Bytes())
}

func (fx *exportFixture) addRaw(b []byte) string {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	fx.counter++
	start := 1700000000 + 3600*fx.counter
	name := "us/" + strconv.Itoa(start) + "-" + strconv.Itoa(start+3600) + "-00001.zip"
	fx.files[name] = b
	return name
}

// published returns st's upload keys as an export file carries them.
func published(t *testing.T, st *phone.State, rt export.ReportType) []export.Key {
	var out []export.Key
	for _, k := range st.UploadKeys(testNow) {
		d, _ := base64.StdEncoding.DecodeString(k.Key)
		out = append(out, export.Key{Data: d, TransmissionRisk: 4, RollingStartInterval: k.IntervalNumber, RollingPeriod: k.IntervalCount, ReportType: rt})
	}
	return out
}

// TestSyncJourney: A and B meet, A's keys are published; B finds the
// exposure on the right day with the right duration, C finds none; a
// revision updates B's exposure; a revocation cancels it.
func TestSyncJourney(t *testing.T) {
	a, b, c := newPhone(t), newPhone(t), newPhone(t)
	for _, p := range []*phone.State{a, b, c} {
		p.App.ExportsRoot = "us"
	}
	met := time.Date(2026, 5, 8, 12, 0, 0, 0, time.UTC)
	if _, err := b.Encounter(a, met, 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Encounter(b, met, 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	// C met B, who never reports.
	if _, err := c.Encounter(b, met.Add(2*time.Hour), 20*time.Minute); err != nil {
		t.Fatal(err)
	}

	fx := newExportFixture(t)
	ctx := context.Background()
	first := fx.add(published(t, a, export.ConfirmedClinicalDiagnosis), nil, nil)

	res, err := b.Sync(ctx, fx.client(), phone.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 1 || res.NewMatches != 1 || len(res.Rejected) != 0 || res.Files[0].SignedBy[0] != "310/v1" {
		t.Fatalf("sync = %+v", res)
	}
	want := phone.Exposure{
		Day: time.Date(2026, 5, 8, 0, 0, 0, 0, time.UTC), Intervals: 3, Duration: 30 * time.Minute, ScanMinutes: 30,
		Keys: 1, ReportType: export.ConfirmedClinicalDiagnosis, TransmissionRisk: 4,
	}
	if len(res.Exposures) != 1 || res.Exposures[0] != want {
		t.Fatalf("exposures = %+v, want %+v", res.Exposures, want)
	}
	if !slices.Equal(b.Synced, []string{first}) {
		t.Errorf("synced = %v", b.Synced)
	}

	res, err = c.Sync(ctx, fx.client(), phone.SyncOptions{})
	if err != nil || len(res.Files) != 1 || len(res.Exposures) != 0 {
		t.Fatalf("C: %+v, %v", res, err)
	}

	// The next sync downloads only the new file: the revision.
	var revised []export.Key
	for _, k := range published(t, a, export.ConfirmedTest) {
		k.TransmissionRisk = 2
		revised = append(revised, k)
	}
	fx.add(nil, revised, nil)
	res, err = b.Sync(ctx, fx.client(), phone.SyncOptions{})
	if err != nil || len(res.Files) != 1 || res.Revised != 1 || res.NewMatches != 0 {
		t.Fatalf("revision sync = %+v, %v", res, err)
	}
	if e := res.Exposures[0]; e.ReportType != export.ConfirmedTest || e.TransmissionRisk != 2 || e.Duration != 30*time.Minute {
		t.Errorf("after revision: %+v", e)
	}
	res, err = b.Sync(ctx, fx.client(), phone.SyncOptions{})
	if err != nil || len(res.Files) != 0 || len(res.Exposures) != 1 {
		t.Errorf("idle sync = %+v, %v", res, err)
	}

	// A negative test revokes the keys: no exposure left.
	var revoked []export.Key
	revoked = append(revoked, published(t, a, export.Revoked)...)
	fx.add(nil, revoked, nil)
	res, err = b.Sync(ctx, fx.client(), phone.SyncOptions{})
	if err != nil || len(res.Exposures) != 0 {
		t.Errorf("after revocation: %+v, %v", res, err)
	}

	// A phone that syncs only now sees the revised keys without the
	// original file having been processed.
	d := newPhone(t)
	d.App.ExportsRoot = "us"
	d.Encounter(a, met, 30*time.Minute)
	fx.mu.Lock()
	delete(fx.files, first)
	fx.mu.Unlock()
	res, err = d.Sync(ctx, fx.client(), phone.SyncOptions{})
	if err != nil || res.NewMatches != 1 || len(res.Exposures) != 0 {
		t.Errorf("late phone: %+v, %v", res, err) // the last revision revoked it
	}
	if len(d.Synced) != 2 {
		t.Errorf("late phone synced %v", d.Synced)
	}
}

// TestMatchRules: a replayed RPI (heard hours after its interval) and an RPI
// whose AEM does not decrypt to valid metadata do not match.
func TestMatchRules(t *testing.T) {
	a, b := newPhone(t), newPhone(t)
	b.App.ExportsRoot = "us"
	met := time.Date(2026, 5, 8, 12, 0, 0, 0, time.UTC)
	b.Encounter(a, met, 10*time.Minute)
	b.Encounter(a, met.Add(3*time.Hour), 10*time.Minute)
	// Replay: the 12:00 RPI heard again at 17:00, and at 13:50 (within 2 h).
	replayed := b.Heard[0]
	replayed.Interval += 30
	withinTolerance := b.Heard[0]
	withinTolerance.Interval += 11
	// A sighting of the 15:00 RPI with a corrupted AEM.
	corrupted := b.Heard[1]
	corrupted.AEM = bytes.Clone(corrupted.AEM)
	corrupted.AEM[0] ^= 0xC0
	b.Heard = []phone.Sighting{replayed, withinTolerance, corrupted}

	fx := newExportFixture(t)
	fx.add(published(t, a, export.ConfirmedTest), nil, nil)
	res, err := b.Sync(context.Background(), fx.client(), phone.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Matches) != 1 || len(b.Matches[0].Sightings) != 1 || b.Matches[0].Sightings[0].Interval != withinTolerance.Interval {
		t.Errorf("matches = %+v", b.Matches)
	}
	if len(res.Exposures) != 1 || res.Exposures[0].Intervals != 1 {
		t.Errorf("exposures = %+v", res.Exposures)
	}
}

// TestSyncRejects: files with a bad signature, an unknown key id, a
// truncated zip or a wrong header are refused with the reason, not marked
// processed, and do not stop the good files.
func TestSyncRejects(t *testing.T) {
	a, b := newPhone(t), newPhone(t)
	b.App.ExportsRoot = "us"
	b.Encounter(a, time.Date(2026, 5, 9, 8, 0, 0, 0, time.UTC), 20*time.Minute)
	fx := newExportFixture(t)

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad := map[string]string{
		fx.add(nil, nil, export.NewECDSASigner(fx.info, other)):                                               "bad signature",
		fx.add(nil, nil, export.NewECDSASigner(export.SignatureInfo{KeyID: "999", KeyVersion: "v1"}, fx.key)): "signed by an unknown key id",
	}
	good := fx.add(published(t, a, export.ConfirmedTest), nil, nil)
	z := fx.files[good]
	bad[fx.addRaw(z[:len(z)-40])] = "truncated or not a zip file"
	bad[fx.addRaw(rezipHeader(t, z))] = "wrong export.bin header"

	res, err := b.Sync(context.Background(), fx.client(), phone.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 1 || res.Files[0].Name != good || len(res.Exposures) != 1 {
		t.Errorf("good files: %+v, exposures %+v", res.Files, res.Exposures)
	}
	if len(res.Rejected) != len(bad) {
		t.Fatalf("rejected %+v", res.Rejected)
	}
	for _, r := range res.Rejected {
		if r.Reason != bad[r.Name] {
			t.Errorf("%s: reason %q, want %q (%v)", r.Name, r.Reason, bad[r.Name], r.Err)
		}
		if slices.Contains(b.Synced, r.Name) {
			t.Errorf("%s: rejected but marked processed", r.Name)
		}
	}
	if !slices.Equal(b.Synced, []string{good}) {
		t.Errorf("synced = %v", b.Synced)
	}
	// A missing index is an error and changes nothing.
	b.App.ExportsRoot = "nowhere"
	if _, err := b.Sync(context.Background(), fx.client(), phone.SyncOptions{}); err == nil || !slices.Equal(b.Synced, []string{good}) {
		t.Errorf("missing index: %v, synced %v", err, b.Synced)
	}
}

// A phone takes index lines byte for byte: an index whose lines are file
// names only once trimmed is refused whole, nothing is downloaded and the
// state is unchanged.
func TestSyncRefusesInexactIndex(t *testing.T) {
	for name, edit := range map[string]func(string) string{
		"carriage return":  func(s string) string { return s + "\r" },
		"crlf":             func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") },
		"leading space":    func(s string) string { return " " + s },
		"trailing newline": func(s string) string { return s + "\n" },
	} {
		t.Run(name, func(t *testing.T) {
			a, b := newPhone(t), newPhone(t)
			b.App.ExportsRoot = "us"
			b.Encounter(a, time.Date(2026, 5, 9, 8, 0, 0, 0, time.UTC), 20*time.Minute)
			fx := newExportFixture(t)
			fx.add(published(t, a, export.ConfirmedTest), nil, nil)
			fx.add(nil, nil, nil)
			fx.editIndex = edit
			res, err := b.Sync(context.Background(), fx.client(), phone.SyncOptions{})
			if !errors.Is(err, export.ErrBadListing) {
				t.Fatalf("sync: %+v, %v; want export.ErrBadListing", res, err)
			}
			if len(b.Synced) != 0 || len(b.Matches) != 0 {
				t.Errorf("state changed: synced %v, matches %v", b.Synced, b.Matches)
			}
			// The same server with an exact index is synced.
			fx.editIndex = func(s string) string { return s }
			if res, err := b.Sync(context.Background(), fx.client(), phone.SyncOptions{}); err != nil || len(res.Files) != 2 || len(res.Exposures) != 1 {
				t.Errorf("exact index: %+v, %v", res, err)
			}
		})
	}
}

// rezipHeader rewrites export.bin's header, keeping the signature.
func rezipHeader(t *testing.T, z []byte) []byte {
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		if f.Name == export.BinEntry {
			b = append([]byte("EK Export v0    "), b[16:]...)
		}
		w, _ := zw.Create(f.Name)
		w.Write(b)
	}
	zw.Close()
	return buf.Bytes()
}

// fakeVerification answers verify, certificate and publish like the real
// servers (checking the HMAC) and records the uploads.
type fakeVerification struct {
	t        *testing.T
	srv      *httptest.Server
	uploads  []api.Publish
	testType string
	fail     map[string][2]any // path → status, code
}

func newFakeVerification(t *testing.T) *fakeVerification {
	f := &fakeVerification{t: t, testType: "likely", fail: map[string][2]any{}}
	reply := func(w http.ResponseWriter, path string, ok any) {
		w.Header().Set("Content-Type", "application/json")
		if e, bad := f.fail[path]; bad {
			w.WriteHeader(e[0].(int))
			json.NewEncoder(w).Encode(map[string]string{"error": "refused", "errorCode": e[1].(string), "code": e[1].(string)})
			return
		}
		json.NewEncoder(w).Encode(ok)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.VerifyPath, func(w http.ResponseWriter, r *http.Request) {
		var req api.VerifyCodeRequest
		json.NewDecoder(r.Body).Decode(&req)
		if r.Header.Get(api.APIKeyHeader) != "device" || req.VerificationCode == "" {
			t.Errorf("verify: key %q code %q", r.Header.Get(api.APIKeyHeader), req.VerificationCode)
		}
		reply(w, api.VerifyPath, api.VerifyCodeResponse{TestType: f.testType, SymptomDate: "2026-05-07", VerificationToken: "token-" + req.VerificationCode})
	})
	var lastHMAC string
	mux.HandleFunc("POST "+api.CertificatePath, func(w http.ResponseWriter, r *http.Request) {
		var req api.VerificationCertificateRequest
		json.NewDecoder(r.Body).Decode(&req)
		lastHMAC = req.ExposureKeyHMAC
		reply(w, api.CertificatePath, api.VerificationCertificateResponse{Certificate: "cert-for-" + req.VerificationToken})
	})
	mux.HandleFunc("POST "+api.PublishPath, func(w http.ResponseWriter, r *http.Request) {
		var req api.Publish
		json.NewDecoder(r.Body).Decode(&req)
		secret, _ := base64.StdEncoding.DecodeString(req.HMACKey)
		mac, _ := base64.StdEncoding.DecodeString(lastHMAC)
		if !api.VerifyTEKMAC(secret, mac, req.Keys) {
			t.Error("publish: the HMAC does not match the keys")
		}
		f.uploads = append(f.uploads, req)
		inserted := len(req.Keys)
		if req.RevisionToken != "" {
			inserted = 0
		}
		reply(w, api.PublishPath, api.PublishResponse{RevisionToken: "rev-" + req.VerificationPayload, InsertedExposures: inserted})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func TestReport(t *testing.T) {
	f := newFakeVerification(t)
	st := newPhone(t)
	st.App = phone.App{APIKey: "device", HealthAuthorityID: "gov.example.app"}
	c, _ := client.New(f.srv.URL)
	ctx := context.Background()

	res, err := st.Report(ctx, c, phone.ReportOptions{Code: "111", Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if res.TestType != "likely" || res.Keys != 14 || res.Inserted != 14 || res.Revision || st.RevisionToken != "rev-cert-for-token-111" {
		t.Fatalf("report = %+v, token %q", res, st.RevisionToken)
	}
	up := f.uploads[0]
	if up.HealthAuthorityID != "gov.example.app" || up.VerificationPayload != "cert-for-token-111" || up.RevisionToken != "" || len(up.Keys) != 14 {
		t.Errorf("upload = %+v", up)
	}

	// A second code revises: the same keys with the revision token.
	f.testType = "confirmed"
	res, err = st.Report(ctx, c, phone.ReportOptions{Code: "222", Now: testNow})
	if err != nil || !res.Revision || res.TestType != "confirmed" {
		t.Fatalf("revision = %+v, %v", res, err)
	}
	if f.uploads[1].RevisionToken != "rev-cert-for-token-111" || !slices.Equal(f.uploads[1].Keys, up.Keys) {
		t.Errorf("revision upload = %+v", f.uploads[1])
	}
	if len(st.Reports) != 2 || st.RevisionToken != "rev-cert-for-token-222" {
		t.Errorf("reports = %+v, token %q", st.Reports, st.RevisionToken)
	}

	// Every refusal leaves the state as it was and says which step and why.
	for path, e := range map[string][2]any{
		api.VerifyPath:      {400, api.ErrVerifyCodeExpired},
		api.CertificatePath: {400, api.ErrTokenExpired},
		api.PublishPath:     {400, api.CodeInvalidReportTypeTransition},
	} {
		f.fail = map[string][2]any{path: e}
		before, _ := json.Marshal(st)
		_, err := st.Report(ctx, c, phone.ReportOptions{Code: "333", Now: testNow})
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Code != e[1] || !strings.Contains(err.Error(), client.Explain(e[1].(string))) {
			t.Errorf("%s refused: %v", path, err)
		}
		if after, _ := json.Marshal(st); !bytes.Equal(before, after) {
			t.Errorf("%s refused: the state changed", path)
		}
	}
	if _, err := (&phone.State{App: st.App}).Report(ctx, c, phone.ReportOptions{Code: "1", Now: testNow}); err == nil {
		t.Error("a phone without keys reported")
	}
}
