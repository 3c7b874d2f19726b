package client_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/client"
)

var testInfo = export.SignatureInfo{KeyID: "310", KeyVersion: "v1"}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testFile() *export.File {
	key := make([]byte, 16)
	rand.Read(key)
	return &export.File{
		StartTimestamp: 1700000000, EndTimestamp: 1700003600, Region: "US-TEST", BatchNum: 1, BatchSize: 1,
		Keys:        []export.Key{{Data: key, TransmissionRisk: 2, RollingStartInterval: 2833200, RollingPeriod: 144, ReportType: export.ConfirmedTest}},
		RevisedKeys: []export.Key{{Data: key, TransmissionRisk: 2, RollingStartInterval: 2833056, RollingPeriod: 144, ReportType: export.ConfirmedTest}},
	}
}

func writeZip(t *testing.T, f *export.File, signers ...export.Signer) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := export.Write(&buf, f, signers); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rezip rebuilds a zip with export.bin changed by edit and export.sig kept.
func rezip(t *testing.T, z []byte, edit func(bin []byte) []byte) []byte {
	t.Helper()
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
			b = edit(b)
		}
		w, _ := zw.Create(f.Name)
		w.Write(b)
	}
	zw.Close()
	return buf.Bytes()
}

func pemOf(t *testing.T, pub *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// exportServer serves index.txt, the given files and the keys list of root "us".
func exportServer(t *testing.T, files map[string][]byte, keys map[export.SignatureInfo]*ecdsa.PublicKey) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	mux.HandleFunc("GET /exports/us/index.txt", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(names, "\n"))
	})
	mux.HandleFunc("GET /exports/us/keys", func(w http.ResponseWriter, r *http.Request) {
		var list []map[string]any
		for si, k := range keys {
			list = append(list, map[string]any{"keyId": si.KeyID, "keyVersion": si.KeyVersion, "algorithm": export.SignatureAlgorithm, "publicKeyPEM": pemOf(t, k), "active": true})
		}
		json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("GET /exports/us/{file}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := files["us/"+r.PathValue("file")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestDownloadExport(t *testing.T) {
	signing := newKey(t)
	other := newKey(t)
	good := writeZip(t, testFile(), export.NewECDSASigner(testInfo, signing))
	files := map[string][]byte{
		"us/1-2-00001.zip": good,
		"us/1-2-00002.zip": writeZip(t, testFile(), export.NewECDSASigner(testInfo, other)),
		"us/1-2-00003.zip": writeZip(t, testFile(), export.NewECDSASigner(export.SignatureInfo{KeyID: "999", KeyVersion: "v9"}, signing)),
		"us/1-2-00004.zip": good[:len(good)/2],
		"us/1-2-00005.zip": rezip(t, good, func(bin []byte) []byte { return append([]byte("EK Export v2    "), bin[16:]...) }),
		"us/1-2-00006.zip": rezip(t, good, func(bin []byte) []byte { b := bytes.Clone(bin); b[len(b)-1] ^= 1; return b }),
	}
	srv := exportServer(t, files, map[export.SignatureInfo]*ecdsa.PublicKey{testInfo: &signing.PublicKey})
	ctx := context.Background()
	pinned := map[export.SignatureInfo]*ecdsa.PublicKey{testInfo: &signing.PublicKey}
	c, err := client.New(srv.URL, client.WithExportKeys(pinned))
	if err != nil {
		t.Fatal(err)
	}

	names, err := c.Index(ctx, "us")
	if err != nil || len(names) != len(files) || names[0] != "us/1-2-00001.zip" {
		t.Fatalf("index = %v, %v", names, err)
	}
	f, err := c.DownloadExport(ctx, names[0])
	if err != nil {
		t.Fatal(err)
	}
	want := testFile()
	if f.Region != want.Region || len(f.Keys) != 1 || len(f.RevisedKeys) != 1 || f.SignatureInfos[0] != testInfo {
		t.Errorf("file = %+v", f)
	}

	for name, wantErr := range map[string]error{
		"us/1-2-00002.zip": export.ErrBadSignature,
		"us/1-2-00003.zip": export.ErrUnknownKey,
		"us/1-2-00004.zip": export.ErrNotZip,
		"us/1-2-00005.zip": export.ErrBadHeader,
		"us/1-2-00006.zip": export.ErrBadSignature,
	} {
		_, err := c.DownloadExport(ctx, name)
		if !errors.Is(err, wantErr) {
			t.Errorf("%s: %v, want %v", name, err, wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	var apiErr *client.APIError
	if _, err := c.DownloadExport(ctx, "us/9-9-00001.zip"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("missing file: %v", err)
	}
	for _, bad := range []string{"us", "../x.zip", "us/../x.zip", "us/a/b.zip", "/us/x.zip"} {
		if _, err := c.DownloadExport(ctx, bad); err == nil {
			t.Errorf("DownloadExport(%q) succeeded", bad)
		}
	}

	// Without pinned keys every file is signed by an unknown key...
	unpinned, _ := client.New(srv.URL)
	if _, err := unpinned.DownloadExport(ctx, names[0]); !errors.Is(err, export.ErrUnknownKey) {
		t.Errorf("unpinned: %v", err)
	}
	// ... unless the client opts in to the server's key list.
	fetching, _ := client.New(srv.URL, client.WithFetchedExportKeys())
	if _, err := fetching.DownloadExport(ctx, names[0]); err != nil {
		t.Errorf("fetched keys: %v", err)
	}
	keys, err := fetching.ExportKeys(ctx, "us")
	if err != nil || len(keys) != 1 || !keys[testInfo].Equal(&signing.PublicKey) {
		t.Errorf("ExportKeys = %v, %v", keys, err)
	}
	// OpenExport verifies a zip obtained elsewhere.
	if _, err := client.OpenExport(good, pinned); err != nil {
		t.Errorf("OpenExport: %v", err)
	}
	if _, err := client.OpenExport(good, nil); !errors.Is(err, export.ErrUnknownKey) {
		t.Errorf("OpenExport without keys: %v", err)
	}
}

// Index lines are accepted only byte for byte: a phone fetches each line
// as it is, and a line that is a good name only once trimmed ("x.zip\r")
// names another URL than the one auditors check.
func TestIndexRejectsBadNames(t *testing.T) {
	const good = "us/1-2-00001.zip"
	for name, tc := range map[string]struct {
		index string
		ok    bool
	}{
		"exact":            {index: good + "\nus/1-2-00002.zip", ok: true},
		"empty":            {index: "", ok: true},
		"carriage return":  {index: good + "\r"},
		"crlf":             {index: good + "\r\nus/1-2-00002.zip"},
		"leading space":    {index: " " + good},
		"trailing space":   {index: good + " "},
		"tab":              {index: good + "\t"},
		"trailing newline": {index: good + "\n"},
		"blank line":       {index: good + "\n\nus/1-2-00002.zip"},
		"traversal":        {index: good + "\n../../etc/passwd"},
		"other root":       {index: "uk/1-2-00001.zip"},
		"not a zip name":   {index: "us/latest.zip"},
		"unsorted":         {index: "us/1-2-00002.zip\n" + good},
		"duplicate":        {index: good + "\n" + good},
	} {
		t.Run(name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("GET /exports/us/index.txt", func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, tc.index)
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			c, _ := client.New(srv.URL)
			names, err := c.Index(context.Background(), "us")
			if tc.ok {
				if err != nil || strings.Join(names, "\n") != tc.index {
					t.Errorf("index %q: %q, %v", tc.index, names, err)
				}
				return
			}
			if !errors.Is(err, export.ErrBadListing) {
				t.Errorf("index %q: %q, %v; want export.ErrBadListing", tc.index, names, err)
			}
		})
	}
	c, _ := client.New("http://127.0.0.1:1")
	if _, err := c.Index(context.Background(), "../us"); err == nil {
		t.Error("bad root accepted")
	}
}
