package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/api/logentry"
)

// TestE2EExportFaults runs the real server with passes an hour apart, so
// only what the fault itself triggers can repair it: a zip damaged on disk
// (truncated, a flipped byte) is not served as good — 503, no cache
// headers — and is regenerated at once, byte for byte; the root is listed
// in /exports/roots.txt and logged as export_root.added.
func TestE2EExportFaults(t *testing.T) {
	e2eAvoidHourBoundary(t, 2*time.Minute)
	s := startE2EServer(t, "", "--export-interval", "1h", "--tlog-sync-interval", "1h")
	a := addE2EAuthority(t, s)
	if out, err := s.run("admin", "export", "add", "--data", s.data, "--root", "e2e", "--region", "US-E2E",
		"--min-keys", "30", "--key-id", "310", "--key-version", "v1"); err != nil {
		t.Fatalf("export add: %v\n%s", err, out)
	}
	window := time.Now().UTC().Truncate(time.Hour)
	if status, body := s.postJSON(api.PublishPath, a.publish(t, expKeys(10), api.ReportTypeConfirmed, ""), nil); status != 200 {
		t.Fatalf("publish: %d %s", status, body)
	}
	at := window.Add(time.Hour + 16*time.Minute)
	if out, err := s.run("export", "run", "--data", s.data, "--now", at.Format(time.RFC3339), "--allow-future"); err != nil {
		t.Fatalf("export run: %v\n%s", err, out)
	}
	name := fmt.Sprintf("e2e/%d-%d-00001.zip", window.Unix(), window.Add(time.Hour).Unix())
	if resp, body := expGet(t, s.url+"/exports/e2e/index.txt"); resp.StatusCode != 200 || string(body) != name {
		t.Fatalf("index: %d %q, want %q", resp.StatusCode, body, name)
	}

	// The list of roots, and its entry in the log.
	resp, body := expGet(t, s.url+"/exports/roots.txt")
	if resp.StatusCode != 200 || !bytes.Contains(append(append([]byte("\n"), body...), '\n'), []byte("\ne2e\n")) || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("roots.txt: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if entries, ok := e2eAwaitEntries(t, s.url, 10*time.Second, func(e logentry.Entry) bool {
		return e.Body == logentry.Body(logentry.ExportRootAdded{Root: "e2e", Region: "US-E2E"})
	}); !ok {
		t.Fatalf("no export_root.added entry for e2e: %+v", entries)
	}

	resp, good := expGet(t, s.url+"/exports/"+name)
	if resp.StatusCode != 200 {
		t.Fatalf("zip: %d", resp.StatusCode)
	}
	path := filepath.Join(s.data, "exports", filepath.FromSlash(name))
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-100] }},
		{"flipped byte", func(b []byte) []byte { b = bytes.Clone(b); b[len(b)/2] ^= 0x80; return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.damage(good), 0o644); err != nil {
				t.Fatal(err)
			}
			resp, body := expGet(t, s.url+"/exports/"+name)
			if resp.StatusCode == 200 {
				t.Fatalf("the damaged file was served (%d bytes)", len(body))
			}
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("ETag") != "" {
				t.Fatalf("damaged file: %d, %v; want 503, no-store, no ETag", resp.StatusCode, resp.Header)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				resp, body := expGet(t, s.url+"/exports/"+name)
				if resp.StatusCode == 200 {
					if !bytes.Equal(body, good) || resp.Header.Get("Cache-Control") != "public, max-age=86400, immutable" {
						t.Fatalf("after repair: %d bytes, %v", len(body), resp.Header)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not repaired: %d", resp.StatusCode)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if onDisk, _ := os.ReadFile(path); !bytes.Equal(onDisk, good) {
				t.Error("the file on disk was not regenerated")
			}
		})
	}
}

// damagingCDN is a caching layer in front of a server that passes
// everything through, except that while damage is set it changes the body
// of every zip: what a phone behind a faulty CDN or disk would get, now
// that the server itself never serves a damaged file.
type damagingCDN struct {
	url string
	mu  sync.Mutex
	fn  func([]byte) []byte
}

func newDamagingCDN(t *testing.T, origin string) *damagingCDN {
	t.Helper()
	u, err := url.Parse(origin)
	if err != nil {
		t.Fatal(err)
	}
	d := &damagingCDN{}
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(resp *http.Response) error {
		d.mu.Lock()
		fn := d.fn
		d.mu.Unlock()
		if fn == nil || resp.StatusCode != 200 || !strings.HasSuffix(resp.Request.URL.Path, ".zip") {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		b = fn(b)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	d.url = srv.URL
	return d
}

// damage makes the CDN change zips with fn (nil: pass them through).
func (d *damagingCDN) damage(fn func([]byte) []byte) {
	d.mu.Lock()
	d.fn = fn
	d.mu.Unlock()
}
