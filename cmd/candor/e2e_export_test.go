package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/storage/bolt"
)

// expKeys returns n keys that expired before today (so they are not
// embargoed), one per day going back from yesterday.
func expKeys(n int) []api.ExposureKey {
	today := keyserver.IntervalNumber(time.Now())
	today -= today % keyserver.IntervalsPerDay
	keys := make([]api.ExposureKey, n)
	for i := range keys {
		b := make([]byte, 16)
		rand.Read(b)
		keys[i] = api.ExposureKey{Key: base64.StdEncoding.EncodeToString(b), IntervalNumber: today - int32(1+i)*144, IntervalCount: 144, TransmissionRisk: 1 + i%8}
	}
	return keys
}

// expGet fetches url and returns the response (body read) and body.
func expGet(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// expOpenSSLVerify checks every signature of a downloaded export file with
// openssl against the PEMs GET /exports/<root>/keys serves, and returns the
// decoded file.
func expOpenSSLVerify(t *testing.T, zipBytes []byte, pems map[string]string) (*export.File, []export.Signature) {
	t.Helper()
	f, bin, sigs, err := export.Read(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		t.Fatal(err)
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl is required in CI: %v", err)
		}
		t.Logf("openssl not installed (apt-get install openssl): signatures checked with crypto/ecdsa only")
	}
	dir := t.TempDir()
	binPath := filepath.Join(dir, "export.bin")
	os.WriteFile(binPath, bin, 0o600)
	keys := map[export.SignatureInfo]*ecdsa.PublicKey{}
	for _, s := range sigs {
		pemText, ok := pems[s.Info.KeyID+"/"+s.Info.KeyVersion]
		if !ok {
			t.Fatalf("signature by %v, which /keys does not publish", s.Info)
		}
		pub, err := api.ParsePublicKeyPEM(pemText)
		if err != nil {
			t.Fatal(err)
		}
		keys[s.Info] = pub
		if openssl == "" {
			continue
		}
		pemPath, sigPath := filepath.Join(dir, "key.pem"), filepath.Join(dir, "sig.der")
		os.WriteFile(pemPath, []byte(pemText), 0o600)
		os.WriteFile(sigPath, s.Sig, 0o600)
		if out, err := exec.Command(openssl, "dgst", "-sha256", "-verify", pemPath, "-signature", sigPath, binPath).CombinedOutput(); err != nil {
			t.Fatalf("openssl rejects the signature by %v: %v\n%s", s.Info, err, out)
		}
	}
	if err := export.Verify(bin, sigs, keys); err != nil {
		t.Fatal(err)
	}
	return f, sigs
}

// expPEMs returns GET /exports/<root>/keys as "id/version" → PEM.
func expPEMs(t *testing.T, base, root string) map[string]string {
	t.Helper()
	resp, body := expGet(t, base+"/exports/"+root+"/keys")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("keys: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var keys []exporter.PublishedKey
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		if k.Algorithm != export.SignatureAlgorithm {
			t.Errorf("key %s/%s algorithm %q", k.KeyID, k.KeyVersion, k.Algorithm)
		}
		out[k.KeyID+"/"+k.KeyVersion] = k.PublicKeyPEM
	}
	return out
}

// TestE2EExport: keys published through /v1/publish appear, once their
// window closed, in signed files listed in index.txt, served with the right
// headers; they verify with openssl against the published keys and decode
// to the published keys; an embargoed key waits; during a key rotation
// both keys sign; retention empties the index and the directory.
//
// Uploads cannot be backdated and the server's clock is real, so the
// windows are closed with `candor export run --now <later> --allow-future`
// through the running server (the documented test and demo path).
func TestE2EExport(t *testing.T) {
	s := startE2EServer(t, "", "--export-interval", "1h")
	a := addE2EAuthority(t, s)
	out, err := s.run("admin", "export", "add", "--data", s.data, "--root", "e2e", "--region", "US-E2E", "--period", "1h",
		"--min-window-age", "1m", "--min-keys", "30", "--key-id", "310", "--key-version", "v1")
	if err != nil || !strings.Contains(out, "BEGIN PUBLIC KEY") || !strings.Contains(out, "export e2e added") {
		t.Fatalf("export add: %v\n%s", err, out)
	}

	// The keys land in the current hour's window; do not straddle an hour.
	if wait := time.Until(time.Now().Truncate(time.Hour).Add(time.Hour)); wait < 5*time.Second {
		time.Sleep(wait + time.Second)
	}
	window := time.Now().UTC().Truncate(time.Hour)
	published := expKeys(10)
	// A key still valid today is held back until it expires (embargo).
	today := e2eKeys(1)
	if status, body := s.postJSON(api.PublishPath, a.publish(t, append(slices.Clone(published), today...), api.ReportTypeConfirmed, ""), nil); status != 200 {
		t.Fatalf("publish: %d %s", status, body)
	}
	exportAt := func(t0 time.Time, extra ...string) string {
		t.Helper()
		args := append([]string{"export", "run", "--data", s.data, "--now", t0.Format(time.RFC3339), "--allow-future"}, extra...)
		out, err := s.run(args...)
		if err != nil {
			t.Fatalf("export run: %v\n%s", err, out)
		}
		return out
	}
	// Not before the window closed plus the minimum age.
	exportAt(window.Add(time.Hour + 30*time.Second))
	if resp, body := expGet(t, s.url+"/exports/e2e/index.txt"); resp.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("index before the window is due: %d %q", resp.StatusCode, body)
	}
	out = exportAt(window.Add(time.Hour + 2*time.Minute))
	if !strings.Contains(out, "e2e: 1 batches, 1 files (10 keys, 0 revised, 20 padding); index lists 1 files") {
		t.Fatalf("export run output:\n%s", out)
	}

	resp, body := expGet(t, s.url+"/exports/e2e/index.txt")
	wantName := fmt.Sprintf("e2e/%d-%d-00001.zip", window.Unix(), window.Add(time.Hour).Unix())
	if resp.StatusCode != 200 || string(body) != wantName {
		t.Fatalf("index: %d %q, want %q", resp.StatusCode, body, wantName)
	}
	if resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("ETag") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("index headers %v", resp.Header)
	}
	if resp, _ := expGet(t, s.url+"/exports/e2e/index.txt", "If-None-Match", resp.Header.Get("ETag")); resp.StatusCode != http.StatusNotModified {
		t.Errorf("index revalidation: %d", resp.StatusCode)
	}
	resp, zipBytes := expGet(t, s.url+"/exports/"+wantName)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" || resp.Header.Get("Cache-Control") != "public, max-age=86400, immutable" || resp.Header.Get("ETag") == "" {
		t.Fatalf("zip: %d %v", resp.StatusCode, resp.Header)
	}
	// The file is the plain file in the data directory, for any web server.
	if onDisk, _ := os.ReadFile(filepath.Join(s.data, "exports", filepath.FromSlash(wantName))); !bytes.Equal(onDisk, zipBytes) {
		t.Error("served zip differs from the file on disk")
	}
	pems := expPEMs(t, s.url, "e2e")
	f, sigs := expOpenSSLVerify(t, zipBytes, pems)
	if len(sigs) != 1 || f.Region != "US-E2E" || f.StartTimestamp != uint64(window.Unix()) || len(f.Keys) != 30 {
		t.Fatalf("file: region %q start %d, %d keys, %d signatures", f.Region, f.StartTimestamp, len(f.Keys), len(sigs))
	}
	inFile := map[string]export.Key{}
	for _, k := range f.Keys {
		inFile[base64.StdEncoding.EncodeToString(k.Data)] = k
	}
	for _, k := range published {
		got, ok := inFile[k.Key]
		if !ok || got.RollingStartInterval != k.IntervalNumber || got.TransmissionRisk != int32(k.TransmissionRisk) || got.ReportType != export.ConfirmedTest {
			t.Errorf("published key %s: in file %v as %+v", k.Key, ok, got)
		}
	}
	if _, ok := inFile[today[0].Key]; ok {
		t.Error("a key still valid at upload was exported before it expired")
	}

	// Rotation: a second key signs next to the first.
	out, err = s.run("admin", "export", "rotate-key", "--data", s.data, "--root", "e2e", "--key-id", "310", "--key-version", "v2")
	if err != nil || strings.Count(out, "BEGIN PUBLIC KEY") != 2 {
		t.Fatalf("rotate-key: %v\n%s", err, out)
	}
	lines := func() []string {
		_, b := expGet(t, s.url+"/exports/e2e/index.txt")
		return strings.Split(string(b), "\n")
	}
	if n := len(lines()); n != 1 {
		t.Fatalf("index has %d lines", n)
	}

	// The embargoed key goes out in the window of its expiry.
	embargoEnd := keyserver.TimeForInterval(today[0].IntervalNumber + today[0].IntervalCount)
	exportAt(embargoEnd.Add(time.Hour + 2*time.Minute))
	idx := lines()
	if len(idx) != 2 {
		t.Fatalf("index after the embargo: %q", idx)
	}
	_, zipBytes = expGet(t, s.url+"/exports/"+idx[1])
	pems = expPEMs(t, s.url, "e2e")
	f, sigs = expOpenSSLVerify(t, zipBytes, pems)
	if len(sigs) != 2 || sigs[0].Info.KeyVersion != "v1" || sigs[1].Info.KeyVersion != "v2" {
		t.Errorf("signatures during the rotation: %+v", sigs)
	}
	found := false
	for _, k := range f.Keys {
		found = found || base64.StdEncoding.EncodeToString(k.Data) == today[0].Key
	}
	if !found {
		t.Error("the embargoed key is not in the file of its expiry window")
	}
	if _, err := s.run("admin", "export", "retire-key", "--data", s.data, "--root", "e2e", "--key-id", "310", "--key-version", "v1"); err != nil {
		t.Fatal(err)
	}

	metrics := httpGet(t, s.metrics+"/metrics")
	if !strings.Contains(metrics, `candor_export_files_written_total{root="e2e"} 2`) || !strings.Contains(metrics, `candor_export_index_files{root="e2e"} 2`) {
		t.Errorf("export metrics:\n%s", grepLines(metrics, "candor_export"))
	}

	// Retention, 16 days on: the index empties and the files go.
	out = exportAt(embargoEnd.Add(16*24*time.Hour), "--retain")
	if !strings.Contains(out, "retention: cutoff") || !strings.Contains(out, "2 files deleted") {
		t.Errorf("retention output:\n%s", out)
	}
	if resp, body := expGet(t, s.url+"/exports/e2e/index.txt"); resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("index after retention: %q", body)
	}
	if resp, _ := expGet(t, s.url+"/exports/"+idx[0]); resp.StatusCode != http.StatusNotFound {
		t.Errorf("expired zip still served: %d", resp.StatusCode)
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	logs := s.stderr.String()
	if !strings.Contains(logs, "export file published") || !strings.Contains(logs, "retention deleted") {
		t.Errorf("the events for the transparency log are not logged:\n%s", grepLines(logs, "export"))
	}
}

// TestE2EExportKill9: `candor export run` killed with SIGKILL at random
// moments, again and again, then run to the end, leaves exactly the index
// and files of an uninterrupted run (same names, byte-identical export.bin;
// the signatures differ, ECDSA being randomized), and no file it lists is
// incomplete at any moment in between.
func TestE2EExportKill9(t *testing.T) {
	bin := e2eBinary(t)
	data := t.TempDir()
	run := func(dir string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		var outb, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &outb, &errb
		err := cmd.Run()
		if err != nil {
			return outb.String(), fmt.Errorf("%v\n%s", err, errb.String())
		}
		return outb.String(), nil
	}
	if out, err := run(data, "admin", "export", "add", "--data", data, "--root", "k9", "--region", "US-K9", "--max-keys-per-file", "25000", "--key-id", "310", "--key-version", "v1"); err != nil {
		t.Fatalf("export add: %v\n%s", err, out)
	}
	// Three closed windows of 60,000 keys each, written straight into the
	// store (no server runs): each batch is split into three files.
	db, err := bolt.Open(data, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC().Truncate(time.Hour).Add(-5 * time.Hour)
	for w := range 3 {
		expFill(t, db, 60_000, base.Add(time.Duration(w)*time.Hour))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ref := t.TempDir()
	if out, err := exec.Command("cp", "-a", data+"/.", ref).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	start := time.Now()
	if out, err := run(ref, "export", "run", "--data", ref); err != nil {
		t.Fatalf("reference run: %v\n%s", err, out)
	}
	took := time.Since(start)
	want := expState(t, ref, "k9")
	if len(want) != 9 {
		t.Fatalf("reference run listed %d files, want 9", len(want))
	}

	kills := 0
	for i := range 12 {
		cmd := exec.Command(bin, "export", "run", "--data", data)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(mrand.Int64N(int64(took))) + time.Duration(i)*time.Millisecond
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err != nil {
			kills++
		}
		expState(t, data, "k9") // every listed file complete and valid
	}
	t.Logf("reference run took %v; %d of 12 runs were killed before finishing", took, kills)
	if out, err := run(data, "export", "run", "--data", data); err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	if got := expState(t, data, "k9"); !slices.Equal(got, want) {
		t.Errorf("after kill -9 and restart:\n got %q\nwant %q", got, want)
	}
	entries, _ := os.ReadDir(filepath.Join(data, "exports", "k9"))
	if len(entries) != len(want)+1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q; want the %d listed files and index.txt", names, len(want))
	}
}

// expFill stores n random keys created at created.
func expFill(t *testing.T, db *bolt.DB, n int, created time.Time) {
	t.Helper()
	day := keyserver.IntervalNumber(created) - keyserver.IntervalNumber(created)%144 - 144
	for done := 0; done < n; done += 5000 {
		es := make([]*keyserver.Exposure, min(5000, n-done))
		keys := make([][16]byte, len(es))
		for i := range es {
			e := &keyserver.Exposure{IntervalNumber: day - int32(i%10)*144, IntervalCount: 144, TransmissionRisk: int32(i % 8),
				ReportType: keyserver.ReportConfirmed, Region: "US-K9", HealthAuthorityID: "k9", CreatedAt: created}
			rand.Read(e.Key[:])
			es[i], keys[i] = e, e.Key
		}
		err := db.Publish(context.Background(), keys, func(map[[16]byte]*keyserver.Exposure) (*keyserver.Change, error) {
			return &keyserver.Change{Insert: es}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// expState reads root's index in data and checks every listed file: it
// exists, decodes and verifies against the configuration's public keys. It
// returns "name sha256(export.bin)" per listed file.
func expState(t *testing.T, data, root string) []string {
	t.Helper()
	dir := filepath.Join(data, "exports", root)
	idx, err := os.ReadFile(filepath.Join(dir, exporter.IndexName))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(idx), "\n") {
		if line == "" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(data, "exports", filepath.FromSlash(line)))
		if err != nil {
			t.Fatalf("index lists %s: %v", line, err)
		}
		f, bin, sigs, err := export.Read(bytes.NewReader(raw), int64(len(raw)))
		if err != nil || len(sigs) != 1 || len(f.Keys) == 0 {
			t.Fatalf("index lists %s, which is not a complete export file: %v", line, err)
		}
		sum := sha256.Sum256(bin)
		out = append(out, fmt.Sprintf("%s %x", line, sum[:8]))
	}
	return out
}
