package transparency

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"

	"github.com/candor-en/candor/api/logentry"
)

func serve(t *testing.T, l *Log) *httptest.Server {
	t.Helper()
	h, err := NewHandler(l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	e := echo.New()
	h.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// fill logs n export entries (more than a bundle when n > 256) plus a few
// other types, and waits for the checkpoint.
func fill(t *testing.T, l *Log, n int) {
	t.Helper()
	ctx := context.Background()
	// Concurrent, so that they share batches as real events would.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Record(ctx, exportBody(i)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var last uint64
	var err error
	pem := testKeyPEM(t)
	key := logentry.SigningKey{Purpose: logentry.PurposeExport, KeyID: "310", KeyVersion: "v1", Algorithm: logentry.AlgorithmECDSAP256, PublicKeyPEM: pem}
	for _, b := range []logentry.Body{
		logentry.SigningKeyAdded{SigningKey: key},
		logentry.StatsDaily{Realm: "wa", Day: "2025-03-09", CodesIssued: logentry.NewCount(42), CodesClaimed: logentry.NewCount(7), CertificatesIssued: logentry.NewCount(30)},
		logentry.RetentionDeleted{Cutoff: l.Now().AddDate(0, 0, -14), KeysDeleted: logentry.NewCount(120), FilesDeleted: 1, Files: []string{"us/1-2-00001.zip"}},
		logentry.SoftwareStarted{Module: "github.com/candor-en/candor", Version: "v0.1.0", GoVersion: "go1.26"},
	} {
		if last, err = l.Record(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.AwaitPublished(ctx, last); err != nil {
		t.Fatal(err)
	}
}

func TestServeLogFiles(t *testing.T) {
	f := newFixture(t)
	l := f.open(t)
	fill(t, l, 300)
	srv := serve(t, l)

	resp, body := get(t, srv.URL+"/log/checkpoint")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" || !strings.HasPrefix(body, l.Origin()+"\n304\n") {
		t.Fatalf("checkpoint: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	for _, p := range []string{"tile/0/000", "tile/0/001.p/48", "tile/1/000.p/1", "tile/entries/000", "tile/entries/001.p/48"} {
		resp, _ := get(t, srv.URL+"/log/"+p)
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" || resp.Header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("%s: %d %v", p, resp.StatusCode, resp.Header)
		}
	}
	resp, err := http.Head(srv.URL + "/log/tile/entries/000")
	if err != nil || resp.StatusCode != 200 || resp.ContentLength <= 0 {
		t.Errorf("HEAD: %v %v", resp, err)
	}

	// A stray temporary file like those Tessera renames into place.
	os.WriteFile(filepath.Join(f.dir, "tile", "0", "000123"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(f.dir, "checkpoint4711"), []byte("x"), 0o644)
	for _, p := range []string{
		".state/treeState", ".state/", "%2estate/treeState", "tile/../.state/treeState", "tile/0/../../.state/treeState",
		"tile/0/000123", "checkpoint4711", "tile/0/000.p/0", "tile/0/000.p/256", "tile/64/000", "tile/0", "tile/0/", "",
		"tile/entries/..%2f..%2f.state%2ftreeState", "tile/0/x/000", "tile/0/x001/000", "tile/0/000.p/48/..",
	} {
		resp, _ := get(t, srv.URL+"/log/"+p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("/log/%s: %d, want 404", p, resp.StatusCode)
		}
	}
	// x001/000 does not exist in a log of 304 entries, but the path is a
	// valid tile path: 404 comes from the file system, not the pattern.
	if !logFileRE.MatchString("tile/0/x001/x234/067.p/8") || !logFileRE.MatchString("tile/63/000") {
		t.Error("valid tile paths refused")
	}
}

// TestTlogTilesClient reads the served log with Tessera's client, as any
// C2SP tlog-tiles client would: checkpoint, entries, inclusion and
// consistency proofs.
func TestTlogTilesClient(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	l := f.open(t)
	fill(t, l, 3)
	first, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 270)
	srv := serve(t, l)
	u, _ := url.Parse(srv.URL + "/log/")
	fetch, err := client.NewHTTPFetcher(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, _, _, err := client.FetchCheckpoint(ctx, fetch.ReadCheckpoint, l.Verifier(), l.Origin())
	if err != nil {
		t.Fatal(err)
	}
	pb, err := client.NewProofBuilder(ctx, cp.Size, fetch.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(0)
	for b, err := range client.EntryBundles(ctx, 2, func(context.Context) (uint64, error) { return cp.Size, nil }, fetch.ReadEntryBundle, 0, cp.Size) {
		if err != nil {
			t.Fatal(err)
		}
		es, err := unbundle(b.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es[b.RangeInfo.First : b.RangeInfo.First+b.RangeInfo.N] {
			if _, err := logentry.Unmarshal(e); err != nil {
				t.Errorf("entry %d: %v", n, err)
			}
			p, err := pb.InclusionProof(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, n, cp.Size, rfc6962.DefaultHasher.HashLeaf(e), p, cp.Hash); err != nil {
				t.Errorf("entry %d not included: %v", n, err)
			}
			n++
		}
	}
	if n != cp.Size {
		t.Errorf("read %d entries of %d", n, cp.Size)
	}
	p, err := pb.ConsistencyProof(ctx, first.Size, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, first.Size, cp.Size, p, first.Hash, cp.Hash); err != nil {
		t.Errorf("not consistent: %v", err)
	}
	if _, _, _, err := flog.ParseCheckpoint(first.Raw, l.Origin(), l.Verifier()); err != nil {
		t.Error(err)
	}
}

func unbundle(raw []byte) ([][]byte, error) {
	var out [][]byte
	for len(raw) > 0 {
		if len(raw) < 2 {
			return nil, io.ErrUnexpectedEOF
		}
		n := int(raw[0])<<8 | int(raw[1])
		if len(raw) < 2+n {
			return nil, io.ErrUnexpectedEOF
		}
		out = append(out, raw[2:2+n])
		raw = raw[2+n:]
	}
	return out, nil
}

func TestPage(t *testing.T) {
	f := newFixture(t)
	l := f.open(t)
	fill(t, l, 60)
	srv := serve(t, l)

	resp, body := get(t, srv.URL+"/transparency")
	if resp.StatusCode != 200 {
		t.Fatalf("page: %d %s", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	for _, want := range []string{
		"test.example/candor/data-use/v1", strings.ReplaceAll(l.VerifierKey(), "+", "&#43;"), "<dt>Entries</dt><dd>64</dd>",
		"keys (0 revised), region US, uploads of", "export key 310/v1 added", "wa on 2025-03-09: 42 codes issued, &lt;10 claimed",
		"candor audit --log " + srv.URL + "/log/ --exports " + srv.URL + "/exports/",
		"fsck --storage_url=" + srv.URL + "/log/", "<svg", "Keys published", "page 1 of 2",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// No script and nothing loaded from elsewhere; inline SVG only.
	for _, bad := range []*regexp.Regexp{regexp.MustCompile(`(?i)<script`), regexp.MustCompile(`(?i)\bsrc=`), regexp.MustCompile(`(?i)style=`), regexp.MustCompile(`(?i)\son[a-z]+=`), regexp.MustCompile(`<link[^>]+href="http`)} {
		if bad.MatchString(body) {
			t.Errorf("page has %s", bad)
		}
	}

	_, body = get(t, srv.URL+"/transparency?type=stats.daily")
	if !strings.Contains(body, "1 entries match") || strings.Contains(body, "us/1741564800") {
		t.Errorf("type filter: %s", grep(body, "match"))
	}
	_, body = get(t, srv.URL+"/transparency?q=1741572000")
	if !strings.Contains(body, "2 entries match") {
		t.Errorf("text filter: %s", grep(body, "match"))
	}
	_, body = get(t, srv.URL+"/transparency?day=2025-03-10&page=2")
	if !strings.Contains(body, "64 entries match, page 2 of 2") || !strings.Contains(body, "← newer") {
		t.Errorf("day filter page 2: %s", grep(body, "match"))
	}
	_, body = get(t, srv.URL+"/transparency?day=2025-03-11")
	if !strings.Contains(body, "0 entries match") {
		t.Errorf("day filter: %s", grep(body, "match"))
	}
	for _, q := range []string{"type=nope", "day=yesterday", "page=0", "page=x"} {
		resp, _ := get(t, srv.URL+"/transparency?"+q)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d", q, resp.StatusCode)
		}
	}

	resp, body = get(t, srv.URL+"/transparency/entries/60")
	if resp.StatusCode != 200 || !strings.Contains(body, `"type":"signing_key.added"`) {
		t.Errorf("entry 60: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, srv.URL+"/transparency/entries/64"); resp.StatusCode != 404 {
		t.Errorf("entry past the checkpoint: %d", resp.StatusCode)
	}
	if resp, body := get(t, srv.URL+"/transparency/key"); resp.StatusCode != 200 || body != l.VerifierKey()+"\n" {
		t.Errorf("key: %d %q", resp.StatusCode, body)
	}
	if resp, body := get(t, srv.URL+"/transparency/style.css"); resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(body, "svg.chart") {
		t.Errorf("style: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestCharts(t *testing.T) {
	f := newFixture(t)
	l := f.open(t)
	fill(t, l, 3)
	cp, err := l.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	charts := dailyCharts(l, cp.Size, f.now)
	if len(charts) != 4 {
		t.Fatalf("%d charts", len(charts))
	}
	last := chartDays - 1
	if v := charts[0].Series[0].Values[last]; v.N != 3000 {
		t.Errorf("keys published today: %+v", v)
	}
	if v := charts[1].Series[0].Values[last]; v.N != 3 {
		t.Errorf("files published today: %+v", v)
	}
	if v := charts[2].Series[0].Values[last]; v.N != 120 {
		t.Errorf("keys deleted today: %+v", v)
	}
	issued, claimed := charts[3].Series[0].Values[last-1], charts[3].Series[1].Values[last-1]
	if issued.N != 42 || issued.Lower || claimed.N != 0 || !claimed.Lower {
		t.Errorf("codes on 2025-03-09: %+v %+v", issued, claimed)
	}
	if !strings.Contains(string(charts[3].SVG), "at least 0 (some counts &lt;10)") {
		t.Errorf("lower bound not marked: %s", charts[3].SVG)
	}
	for _, n := range []struct{ in, want int64 }{{0, 1}, {1, 1}, {7, 10}, {10, 10}, {11, 20}, {42, 50}, {3000, 5000}} {
		if got := niceCeil(n.in); got != n.want {
			t.Errorf("niceCeil(%d) = %d", n.in, got)
		}
	}
	if formatInt(1234567) != "1,234,567" || formatInt(-1000) != "-1,000" {
		t.Error(formatInt(1234567), formatInt(-1000))
	}
}

func grep(s, substr string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}
