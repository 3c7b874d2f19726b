package client_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"

	"github.com/candor-en/candor/client"
)

// fakeLog serves a tlog-tiles log of entries: its signed checkpoint and
// entry bundles.
func fakeLog(t *testing.T, origin string, entries [][]byte, tamper bool) (url, vkey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	h := rfc6962.DefaultHasher
	r := (&compact.RangeFactory{Hash: h.HashChildren}).NewEmptyRange(0)
	for _, e := range entries {
		r.Append(h.HashLeaf(e), nil)
	}
	root, _ := r.GetRootHash(nil)
	cp := log.Checkpoint{Origin: origin, Size: uint64(len(entries)), Hash: root}
	signed, err := note.Sign(&note.Note{Text: string(cp.Marshal())}, signer)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /log/checkpoint", func(w http.ResponseWriter, _ *http.Request) { w.Write(signed) })
	size := uint64(len(entries))
	for i := uint64(0); i*layout.EntryBundleWidth < size; i++ {
		var bundle []byte
		for j := i * layout.EntryBundleWidth; j < min(size, (i+1)*layout.EntryBundleWidth); j++ {
			e := entries[j]
			if tamper && j == size-1 {
				e = []byte("rewritten history")
			}
			bundle = binary.BigEndian.AppendUint16(bundle, uint16(len(e)))
			bundle = append(bundle, e...)
		}
		path := "/log/" + layout.EntriesPath(i, layout.PartialTileSize(0, i, size))
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) { w.Write(bundle) })
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, vkey
}

func TestLog(t *testing.T) {
	const origin = "candor.example.org/candor/data-use/v1"
	var entries [][]byte
	for i := range 300 { // one full bundle and one partial
		entries = append(entries, fmt.Appendf(nil, `{"schema":1,"n":%d}`, i))
	}
	url, vkey := fakeLog(t, origin, entries, false)
	ctx := context.Background()

	c, err := client.New(url, client.WithLogKey(vkey))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := c.LogCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Origin != origin || cp.Size != 300 || !cp.Verified || len(cp.Hash) != 32 {
		t.Fatalf("checkpoint = %+v", cp)
	}
	got, err := c.LogEntries(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 300 || string(got[299]) != string(entries[299]) {
		t.Errorf("entries: %d, last %q", len(got), got[len(got)-1])
	}

	// Unverified parsing without a key.
	plain, _ := client.New(url)
	if cp2, err := plain.LogCheckpoint(ctx); err != nil || cp2.Verified || cp2.Size != 300 {
		t.Errorf("unverified checkpoint = %+v, %v", cp2, err)
	}
	// Another log's key refuses the checkpoint.
	_, otherKey, _ := note.GenerateKey(rand.Reader, origin)
	wrong, _ := client.New(url, client.WithLogKey(otherKey))
	if _, err := wrong.LogCheckpoint(ctx); err == nil {
		t.Error("checkpoint verified with another key")
	}

	// A log that serves other entries than it committed to is caught.
	url2, vkey2 := fakeLog(t, origin, entries, true)
	c2, _ := client.New(url2, client.WithLogKey(vkey2))
	cp, err = c2.LogCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.LogEntries(ctx, cp); !errors.Is(err, client.ErrLogMismatch) {
		t.Errorf("tampered log: %v", err)
	}
	if _, err := c2.LogEntries(ctx, &client.Checkpoint{Size: 0, Hash: rfc6962.DefaultHasher.EmptyRoot()}); err != nil {
		t.Errorf("empty log: %v", err)
	}
	if !strings.HasPrefix(vkey, origin+"+") {
		t.Fatalf("vkey %q", vkey)
	}
}
