package exporter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/keyserver/exporter"
)

func get(t *testing.T, srv *httptest.Server, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHandler(t *testing.T) {
	f := newFixture(t)
	f.addConfig(func(c *exporter.Config) { c.MinKeys = 1 })
	f.publish(exposures(5, "US-WA", win8.Start)...)
	f.pass()
	e := echo.New()
	exporter.NewHandler(f.x).Register(e)
	srv := httptest.NewServer(e)
	defer srv.Close()

	// The index: no-cache, ETag, 304 when unchanged.
	resp, body := get(t, srv, "/exports/us-wa/index.txt")
	line := "us-wa/" + exporter.FileName(win8, 1)
	if resp.StatusCode != 200 || body != line {
		t.Fatalf("index: %d %q", resp.StatusCode, body)
	}
	if ct, cc, etag := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), resp.Header.Get("ETag"); ct != "text/plain; charset=utf-8" || cc != "no-cache" || etag == "" {
		t.Errorf("index headers: %q %q %q", ct, cc, etag)
	}
	etag := resp.Header.Get("ETag")
	if resp, body := get(t, srv, "/exports/us-wa/index.txt", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("revalidation: %d %q", resp.StatusCode, body)
	}
	// A new file changes the index and its ETag.
	f.clock.Set(t0.Add(3 * time.Hour))
	f.publish(exposures(2, "US-WA", win8.End)...)
	f.pass()
	if resp, _ := get(t, srv, "/exports/us-wa/index.txt", "If-None-Match", etag); resp.StatusCode != 200 || resp.Header.Get("ETag") == etag {
		t.Errorf("changed index: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}

	// A listed zip: immutable, ETag, application/zip, the bytes on disk.
	raw, _ := os.ReadFile(f.zipPath(line))
	resp, body = get(t, srv, "/exports/"+line)
	if resp.StatusCode != 200 || body != string(raw) {
		t.Fatalf("zip: %d, %d bytes", resp.StatusCode, len(body))
	}
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "application/zip" || cc != "public, max-age=86400, immutable" {
		t.Errorf("zip headers: %q %q", ct, cc)
	}
	zipTag := resp.Header.Get("ETag")
	if want := `"` + exporter.Digest(sha(raw)).String() + `"`; zipTag != want {
		t.Errorf("zip ETag %s, want %s", zipTag, want)
	}
	if resp, _ := get(t, srv, "/exports/"+line, "If-None-Match", zipTag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("zip revalidation: %d", resp.StatusCode)
	}
	if resp, err := http.Head(srv.URL + "/exports/" + line); err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(len(raw)) {
		t.Errorf("HEAD: %v %+v", err, resp)
	}

	// A zip on disk that the index does not list is not served.
	unlisted := exporter.FileName(exporter.Window{Start: win8.Start.Add(-time.Hour), End: win8.Start}, 1)
	os.WriteFile(f.zipPath("us-wa/"+unlisted), raw, 0o644)
	for _, p := range []string{"/exports/us-wa/" + unlisted, "/exports/us-wa/.tmp-x", "/exports/nope/index.txt", "/exports/us-wa/candor.db", "/exports/..%2f/index.txt"} {
		if resp, _ := get(t, srv, p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}

	// The public keys.
	resp, body = get(t, srv, "/exports/us-wa/keys")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("keys: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var keys []map[string]any
	if err := json.Unmarshal([]byte(body), &keys); err != nil || len(keys) != 1 {
		t.Fatalf("keys %s: %v", body, err)
	}
	k := keys[0]
	if k["keyId"] != "310" || k["keyVersion"] != "v1" || k["algorithm"] != "1.2.840.10045.4.3.2" || !strings.Contains(k["publicKeyPEM"].(string), "BEGIN PUBLIC KEY") {
		t.Errorf("key %v", k)
	}
	if resp, _ := get(t, srv, "/exports/nope/keys"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("keys of an unknown root: %d", resp.StatusCode)
	}
}

// A listed zip whose bytes on disk no longer have the recorded SHA-256 (a
// disk fault, a truncated copy) is never served as good: it answers 503
// that no cache keeps, and the exporter is asked to regenerate it, after
// which the recorded bytes are served again.
func TestHandlerRefusesDamagedFile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"flipped byte", func(b []byte) []byte { b = bytes.Clone(b); b[len(b)/3] ^= 0x01; return b }},
		{"empty", func([]byte) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.addConfig(func(c *exporter.Config) { c.MinKeys = 1 })
			f.publish(exposures(5, "US-WA", win8.Start)...)
			f.pass()
			e := echo.New()
			exporter.NewHandler(f.x).Register(e)
			srv := httptest.NewServer(e)
			defer srv.Close()
			line := f.index("us-wa")[0]
			good, err := os.ReadFile(f.zipPath(line))
			if err != nil {
				t.Fatal(err)
			}
			// Served once, so that any cache of the good file is warm.
			if resp, body := get(t, srv, "/exports/"+line); resp.StatusCode != 200 || body != string(good) {
				t.Fatalf("good file: %d", resp.StatusCode)
			}
			if err := os.WriteFile(f.zipPath(line), tc.damage(good), 0o644); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				resp, _ := get(t, srv, "/exports/"+line)
				if resp.StatusCode == 200 || resp.StatusCode == http.StatusPartialContent {
					t.Fatalf("damaged file served with %d", resp.StatusCode)
				}
				if cc := resp.Header.Get("Cache-Control"); resp.StatusCode != http.StatusServiceUnavailable || cc != "no-store" || resp.Header.Get("ETag") != "" {
					t.Fatalf("damaged file: %d, Cache-Control %q, ETag %q; want 503, no-store, no ETag", resp.StatusCode, cc, resp.Header.Get("ETag"))
				}
			}
			// The handler asked for a repair; RunRepairs regenerates the file.
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { f.x.RunRepairs(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, body := get(t, srv, "/exports/"+line)
				if resp.StatusCode == 200 {
					if body != string(good) || resp.Header.Get("Cache-Control") != "public, max-age=86400, immutable" {
						t.Fatalf("after repair: %d bytes, Cache-Control %q", len(body), resp.Header.Get("Cache-Control"))
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not repaired: still %d", resp.StatusCode)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if b, _ := os.ReadFile(f.zipPath(line)); !bytes.Equal(b, good) {
				t.Error("the file on disk was not regenerated")
			}
		})
	}
}

// The handler serves only the roots in roots.txt, which lists every
// configured root once the log was handed its export_root.added event, and
// index lines only byte for byte.
func TestHandlerRootsAndExactLines(t *testing.T) {
	f := newFixture(t)
	f.addConfig(func(c *exporter.Config) { c.MinKeys = 1 })
	e := echo.New()
	exporter.NewHandler(f.x).Register(e)
	srv := httptest.NewServer(e)
	defer srv.Close()
	// Before the first pass: the keys, for app developers, but no files.
	for p, want := range map[string]int{"/exports/us-wa/keys": 200, "/exports/us-wa/index.txt": 404, "/exports/roots.txt": 404} {
		if resp, _ := get(t, srv, p); resp.StatusCode != want {
			t.Errorf("before the first pass, %s: %d, want %d", p, resp.StatusCode, want)
		}
	}
	f.publish(exposures(5, "US-WA", win8.Start)...)
	f.pass()
	if len(f.events.roots) != 1 || f.events.roots[0] != (exporter.RootAdded{Root: "us-wa", Region: "US-WA"}) {
		t.Fatalf("root events %+v", f.events.roots)
	}
	f.pass()
	if len(f.events.roots) != 1 {
		t.Errorf("root logged again: %+v", f.events.roots)
	}
	resp, body := get(t, srv, "/exports/roots.txt")
	if resp.StatusCode != 200 || body != "us-wa" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("roots.txt: %d %q %q", resp.StatusCode, body, resp.Header.Get("Cache-Control"))
	}
	line := f.index("us-wa")[0]
	good, _ := os.ReadFile(f.zipPath(line))

	// A root directory on disk that roots.txt does not list is not served.
	shadow := filepath.Join(f.dir, "shadow")
	os.MkdirAll(shadow, 0o755)
	os.WriteFile(filepath.Join(shadow, exporter.FileName(win8, 1)), good, 0o644)
	os.WriteFile(filepath.Join(shadow, exporter.IndexName), []byte("shadow/"+exporter.FileName(win8, 1)), 0o644)
	for _, p := range []string{"/exports/shadow/index.txt", "/exports/shadow/" + exporter.FileName(win8, 1), "/exports/shadow/keys", "/exports/roots.txt/index.txt"} {
		if resp, _ := get(t, srv, p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}

	// Index lines that are the file's name only after trimming list nothing.
	for _, idx := range []string{line + "\r", " " + line, line + "\n", line + " ", "\n" + line} {
		os.WriteFile(filepath.Join(f.dir, "us-wa", exporter.IndexName), []byte(idx), 0o644)
		if resp, _ := get(t, srv, "/exports/"+line); resp.StatusCode != http.StatusNotFound {
			t.Errorf("index %q: zip served with %d", idx, resp.StatusCode)
		}
	}
	f.pass() // rewrites the index
	if resp, body := get(t, srv, "/exports/"+line); resp.StatusCode != 200 || body != string(good) {
		t.Errorf("after the pass: %d", resp.StatusCode)
	}
}
