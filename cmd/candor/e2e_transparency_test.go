package main

import (
	"bytes"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/candor-en/candor/api/logentry"
)

// e2eLogEntries reads the log as any tlog-tiles client would: the
// checkpoint's size, then the entry bundles, each entry decoded strictly.
func e2eLogEntries(t *testing.T, base string) []logentry.Entry {
	t.Helper()
	cp := httpGet(t, base+"/log/checkpoint")
	lines := strings.Split(cp, "\n")
	if len(lines) < 3 {
		t.Fatalf("checkpoint %q", cp)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size %q", lines[1])
	}
	var out []logentry.Entry
	for i := uint64(0); i*layout.EntryBundleWidth < size; i++ {
		raw := httpGet(t, base+"/log/"+layout.EntriesPath(i, layout.PartialTileSize(0, i, size)))
		var b api.EntryBundle
		if err := b.UnmarshalText([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		for _, data := range b.Entries {
			if uint64(len(out)) == size {
				break
			}
			e, err := logentry.Unmarshal(data)
			if err != nil {
				t.Fatalf("entry %d %s: %v", len(out), data, err)
			}
			out = append(out, e)
		}
	}
	return out
}

// e2eAwaitEntries waits until the log holds an entry matching each of want
// and returns the entries.
func e2eAwaitEntries(t *testing.T, base string, timeout time.Duration, want ...func(logentry.Entry) bool) ([]logentry.Entry, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		entries := e2eLogEntries(t, base)
		ok := true
		for _, w := range want {
			ok = ok && slices.ContainsFunc(entries, w)
		}
		if ok || time.Now().After(deadline) {
			return entries, ok
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ofType(typ string) func(logentry.Entry) bool {
	return func(e logentry.Entry) bool { return e.Type == typ }
}

// TestE2ETransparency: a running server logs its start, the health
// authority and the export signing key (and, once the exporter's events are
// wired to the log, each export file); serves the log and the public page;
// `candor audit` passes against it, Tessera's fsck accepts it, and both
// fail once a tile on disk is tampered with.
func TestE2ETransparency(t *testing.T) {
	e2eAvoidHourBoundary(t, 3*time.Minute)
	s := startE2EServer(t, "", "--tlog-sync-interval", "200ms")
	a := addE2EAuthority(t, s)
	if _, err := s.run("admin", "export", "add", "--data", s.data, "--root", "e2e", "--region", "US-E2E", "--key-id", "310", "--key-version", "v1", "--min-keys", "50"); err != nil {
		t.Fatal(err)
	}
	if status, body := s.postJSON("/v1/publish", a.publish(t, e2eKeys(14), "confirmed", ""), nil); status != 200 {
		t.Fatalf("publish: %d %s", status, body)
	}
	at := time.Now().UTC().Truncate(time.Hour).Add(time.Hour + 16*time.Minute)
	if _, err := s.run("export", "run", "--data", s.data, "--now", at.Format(time.RFC3339), "--allow-future"); err != nil {
		t.Fatal(err)
	}
	entries, ok := e2eAwaitEntries(t, s.url, 15*time.Second,
		ofType(logentry.TypeSoftwareStarted),
		func(e logentry.Entry) bool {
			b, ok := e.Body.(logentry.AuthorityAdded)
			return ok && b.Issuer == a.iss && b.Audience == a.aud && len(b.Keys) == 1
		},
		func(e logentry.Entry) bool {
			k, ok := e.Body.(logentry.SigningKeyAdded)
			return ok && k.Purpose == logentry.PurposeExport && k.Ref() == logentry.KeyRef{KeyID: "310", KeyVersion: "v1"}
		})
	if !ok {
		t.Fatalf("the log lacks the start, the authority %s or the signing key: %+v", a.iss, entries)
	}

	// Serving: the checkpoint is revalidated, tiles are immutable, the
	// private state is not served.
	resp, err := http.Get(s.url + "/log/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("checkpoint: %d %v", resp.StatusCode, resp.Header)
	}
	resp, err = http.Get(s.url + "/log/" + layout.EntriesPath(0, layout.PartialTileSize(0, 0, uint64(len(entries)))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("entry bundle: %d %v", resp.StatusCode, resp.Header)
	}
	for _, p := range []string{"/log/.state/treeState", "/log/.state/version", "/log/../master.key"} {
		if resp, err := http.Get(s.url + p); err != nil || resp.StatusCode != 404 {
			t.Errorf("%s: %v %v", p, resp.StatusCode, err)
		}
	}
	vkey := strings.TrimSpace(httpGet(t, s.url+"/transparency/key"))
	page := httpGet(t, s.url+"/transparency")
	for _, want := range []string{strings.Split(vkey, "+")[0], "software.started", "authority.added", "signing_key.added", "export key 310/v1 added", "candor audit --log"} {
		if !strings.Contains(page, want) {
			t.Errorf("/transparency lacks %q", want)
		}
	}

	state := filepath.Join(t.TempDir(), "audit-state.json")
	audit := func(extra ...string) (string, error) {
		return s.run(append([]string{"audit", "--log", s.url + "/log/", "--key", vkey, "--state", state}, extra...)...)
	}
	out, err := audit()
	if err != nil || !strings.Contains(out, "PASSED") {
		t.Fatalf("audit of an honest server: %v\n%s", err, out)
	}

	t.Run("exports", func(t *testing.T) {
		entries, ok := e2eAwaitEntries(t, s.url, 5*time.Second, ofType(logentry.TypeExportPublished))
		if !ok {
			t.Skip("no export.published entry: the exporter's events are not wired to the log yet (exporter.Options.Events: m.DataUse.ExportEvents(m.ExportKeys))")
		}
		keyAt, fileAt := -1, -1
		for i, e := range entries {
			switch b := e.Body.(type) {
			case logentry.SigningKeyAdded:
				if b.Purpose == logentry.PurposeExport && keyAt < 0 {
					keyAt = i
				}
			case logentry.ExportPublished:
				if fileAt < 0 {
					fileAt = i
				}
				if b.Region != "US-E2E" || b.Keys < 50 || !strings.HasPrefix(b.File, "e2e/") {
					t.Errorf("export entry %+v", b)
				}
			}
		}
		if keyAt < 0 || keyAt > fileAt {
			t.Errorf("the signing key (entry %d) is not logged before the first file (entry %d)", keyAt, fileAt)
		}
		out, err := audit("--exports", s.url+"/exports/")
		if err != nil || !strings.Contains(out, "PASSED") || strings.Contains(out, "0 files listed") {
			t.Fatalf("audit with exports: %v\n%s", err, out)
		}
	})

	fsck := tesseraFsck(t)
	pub := filepath.Join(t.TempDir(), "log.pub")
	os.WriteFile(pub, []byte(vkey+"\n"), 0o600)
	size := len(e2eLogEntries(t, s.url))
	if fsck != "" {
		out := runFsck(t, fsck, s.url+"/log/", pub)
		if strings.Contains(out, "fsck failed") || !regexp.MustCompile(`Successfully fsck'd log with size [1-9]`).MatchString(out) {
			t.Errorf("fsck of the honest log (%d entries):\n%s", size, out)
		}
	}

	// Tamper with the newest level-0 hash tile on disk.
	tile := newestTile(t, filepath.Join(s.data, LogDirName, "tile", "0"))
	b, err := os.ReadFile(tile)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0x01
	if err := os.WriteFile(tile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = audit()
	if err == nil || !regexp.MustCompile(`tiles match the entries\s+FAIL`).MatchString(out) {
		t.Errorf("audit after tampering a tile: %v\n%s", err, out)
	}
	if fsck != "" {
		if out := runFsck(t, fsck, s.url+"/log/", pub); !strings.Contains(out, "fsck failed") {
			t.Errorf("fsck accepted a tampered tile:\n%s", out)
		}
	}
}

// newestTile returns the tile file under dir written last (the partial
// tile of the current size).
func newestTile(t *testing.T, dir string) string {
	t.Helper()
	var newest string
	var at time.Time
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if fi, err := d.Info(); err == nil && !fi.ModTime().Before(at) {
			newest, at = p, fi.ModTime()
		}
		return nil
	})
	if newest == "" {
		t.Fatalf("no tile in %s", dir)
	}
	return newest
}

// FsckInstall is how CI installs Tessera's fsck.
const FsckInstall = "go install github.com/transparency-dev/tessera/cmd/fsck@v1.0.4"

// tesseraFsck returns the path of Tessera's fsck: $TESSERA_FSCK, or fsck in
// $GOBIN or $(go env GOPATH)/bin (never the system's fsck). Without it the
// test fails in CI (CI=true) and skips the fsck checks elsewhere.
func tesseraFsck(t *testing.T) string {
	t.Helper()
	var candidates []string
	if p := os.Getenv("TESSERA_FSCK"); p != "" {
		candidates = append(candidates, p)
	}
	for _, v := range []string{"GOBIN", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		if dir := strings.TrimSpace(string(out)); err == nil && dir != "" {
			if v == "GOPATH" {
				dir = filepath.Join(strings.Split(dir, string(os.PathListSeparator))[0], "bin")
			}
			candidates = append(candidates, filepath.Join(dir, "fsck"))
		}
	}
	for _, c := range candidates {
		out, _ := exec.Command(c, "--help").CombinedOutput()
		if bytes.Contains(out, []byte("storage_url")) {
			return c
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("Tessera's fsck is not installed (looked at %s); install it with: %s", strings.Join(candidates, ", "), FsckInstall)
	}
	t.Logf("skipping the fsck checks: Tessera's fsck is not installed; install it with: %s", FsckInstall)
	return ""
}

// runFsck runs fsck against a log and returns its output. fsck exits 0
// even when the log fails; its output says what happened.
func runFsck(t *testing.T, fsck, logURL, pubKey string) string {
	t.Helper()
	cmd := exec.Command(fsck, "--storage_url="+logURL, "--public_key="+pubKey, "--N=4", "--ui=false")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Logf("fsck: %v", err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("fsck did not finish:\n%s", out.String())
	}
	return out.String()
}
