package exporter_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/candor-en/candor/keyserver/exporter"
)

// checkIndex verifies that every line of root's index names a complete file
// that decodes and verifies, and returns the lines.
func (f *fixture) checkIndex(root string) []string {
	f.t.Helper()
	idx := f.index(root)
	for _, line := range idx {
		f.read(line)
	}
	return idx
}

// binDigests returns the SHA-256 of export.bin of each listed file.
func (f *fixture) binDigests(root string) []string {
	var out []string
	for _, line := range f.checkIndex(root) {
		_, bin, _, _ := f.read(line)
		s := sha256.Sum256(bin)
		out = append(out, line+" "+string(s[:]))
	}
	return out
}

// A crash (the process dying) at any step of a batch leaves no incomplete
// file listed; after a restart the next pass produces the same files as a
// run without the crash: the same names and byte-identical export.bin.
func TestCrashRecovery(t *testing.T) {
	setup := func(t *testing.T) *fixture {
		f := newFixture(t)
		f.addConfig(func(c *exporter.Config) { c.MinKeys = 1; c.MaxKeysPerFile = 10 })
		return f
	}
	early := exposures(4, "US-WA", win8.Start.Add(-time.Hour))
	batch := exposures(25, "US-WA", win8.Start)
	// The reference: the same keys exported without a crash.
	ref := setup(t)
	ref.publish(early...)
	ref.publish(batch...)
	ref.pass()
	want := ref.binDigests("us-wa")
	if len(want) != 4 {
		t.Fatalf("reference run listed %d files, want 4", len(want))
	}

	for _, step := range []string{"collected", "file-written", "files-synced", "recorded", "before-index"} {
		for _, sameOwner := range []bool{true, false} {
			name := step + "/restart-same-owner"
			if !sameOwner {
				name = step + "/another-exporter"
			}
			t.Run(name, func(t *testing.T) {
				f := setup(t)
				f.publish(early...)
				// The early window is exported before the crash, so a pass
				// that dies leaves a live index behind.
				f.clock.Set(win8.Start.Add(20 * time.Minute))
				f.pass()
				before := f.checkIndex("us-wa")
				f.publish(batch...)
				f.clock.Set(t0)
				crashes := 0
				exporter.SetCrashHook(f.x, func(s string) error {
					if s == step && crashes == 0 {
						crashes++
						return errors.New("kill -9")
					}
					return nil
				})
				if _, err := f.x.Pass(context.Background()); err == nil || crashes != 1 {
					t.Fatalf("pass did not crash at %s: %v", step, err)
				}
				// Whatever is on disk now, the index lists only complete files.
				after := f.checkIndex("us-wa")
				for _, line := range after {
					if !slices.Contains(before, line) && step != "before-index" {
						t.Errorf("index lists %s written by the crashed pass", line)
					}
				}

				// Restart: a new exporter (same owner: the restarted
				// process; another owner must wait for the lease to expire).
				owner := "exporter-1"
				if !sameOwner {
					owner = "exporter-2"
					f.clock.Set(t0.Add(exporter.DefaultLeaseTTL + time.Second))
				}
				f.x = f.newExporter(owner)
				f.pass()
				if got := f.binDigests("us-wa"); !slices.Equal(got, want) {
					t.Errorf("after restart the files differ from a run without crash:\n got %q\nwant %q", names(got), names(want))
				}
				// No stray file is left next to the listed ones.
				if stray := f.strayFiles("us-wa"); len(stray) != 0 {
					t.Errorf("files on disk that are not listed: %q", stray)
				}
				if n := len(f.events.files); n != 4 {
					t.Errorf("%d file events, want 4 (one per file)", n)
				}
			})
		}
	}
}

func names(digests []string) []string {
	out := make([]string, len(digests))
	for i, d := range digests {
		out[i], _, _ = strings.Cut(d, " ")
	}
	return out
}

// strayFiles lists the zips in root's directory that the index does not
// list, and leftover temporary files.
func (f *fixture) strayFiles(root string) []string {
	f.t.Helper()
	entries, err := os.ReadDir(filepath.Join(f.dir, root))
	if err != nil {
		f.t.Fatal(err)
	}
	idx := f.index(root)
	var out []string
	for _, e := range entries {
		if e.Name() == exporter.IndexName {
			continue
		}
		if !slices.Contains(idx, root+"/"+e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// A zip on disk without a record (written by a pass that died before
// recording) is never listed, and the redo replaces it.
func TestUnrecordedFileNotListed(t *testing.T) {
	f := newFixture(t)
	f.addConfig(func(c *exporter.Config) { c.MinKeys = 1; c.MaxKeysPerFile = 10 })
	dir := filepath.Join(f.dir, "us-wa")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Three files of a crashed attempt that had more keys than the redo.
	for n := 1; n <= 3; n++ {
		if err := os.WriteFile(filepath.Join(dir, exporter.FileName(win8, n)), []byte("half a zip"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.publish(exposures(5, "US-WA", win8.Start)...)
	f.pass()
	idx := f.checkIndex("us-wa")
	if len(idx) != 1 || idx[0] != "us-wa/"+exporter.FileName(win8, 1) {
		t.Fatalf("index %q", idx)
	}
	if stray := f.strayFiles("us-wa"); len(stray) != 0 {
		t.Errorf("stray files of the crashed attempt remain: %q", stray)
	}
}

// A recorded file that is lost and cannot be rebuilt as recorded (its keys
// are gone from the store) is reported and not listed; the others stay.
func TestUnrecoverableFileReported(t *testing.T) {
	f := newFixture(t)
	f.addConfig(func(c *exporter.Config) { c.MinKeys = 1 })
	f.publish(exposures(3, "US-WA", win8.Start.Add(-time.Hour))...)
	f.publish(exposures(3, "US-WA", win8.Start)...)
	f.pass()
	idx := f.checkIndex("us-wa")
	if len(idx) != 2 {
		t.Fatalf("index %q", idx)
	}
	// The keys of the earlier window vanish from the store, and its file
	// from the disk.
	if _, err := f.db.DeleteExposuresCreatedBefore(context.Background(), win8.Start); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.zipPath(idx[0])); err != nil {
		t.Fatal(err)
	}
	res, err := f.x.Pass(context.Background())
	if err == nil || !strings.Contains(err.Error(), "differs from the recorded") && !strings.Contains(err.Error(), "keys in the store") {
		t.Errorf("pass: %v, want a report of the lost file", err)
	}
	if r := res.Roots[0]; r.Unavailable != 1 || r.Listed != 1 {
		t.Errorf("pass: %+v", r)
	}
	if got := f.checkIndex("us-wa"); !slices.Equal(got, idx[1:]) {
		t.Errorf("index %q, want %q", got, idx[1:])
	}
	if got := f.metric("candor_export_files_unavailable", "root", "us-wa"); got != 1 {
		t.Errorf("unavailable metric = %v", got)
	}
	// A damaged file is not listed either.
	raw, _ := os.ReadFile(f.zipPath(idx[1]))
	os.WriteFile(f.zipPath(idx[1]), bytes.ToUpper(raw), 0o644)
	f.x.Pass(context.Background()) // still reports the lost file
	if got := f.checkIndex("us-wa"); !slices.Equal(got, idx[1:]) {
		t.Errorf("after damage: index %q", got)
	}
	if got, _ := os.ReadFile(f.zipPath(idx[1])); !bytes.Equal(got, raw) {
		t.Error("damaged file not regenerated")
	}
}

// The temporary files of a pass killed while writing a window's zips go
// when the window is redone, not an hour later with retention.
func TestKilledPassTempFilesRemoved(t *testing.T) {
	f := newFixture(t)
	f.addConfig(func(c *exporter.Config) { c.MinKeys = 1 })
	dir := filepath.Join(f.dir, "us-wa")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// What writeFileAtomic leaves when the process dies before its rename.
	for _, n := range []int{1, 2} {
		tmp := filepath.Join(dir, ".tmp-"+exporter.FileName(win8, n)+"-0123456789ab")
		if err := os.WriteFile(tmp, []byte("part of a zip"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.publish(exposures(5, "US-WA", win8.Start)...)
	f.pass()
	if idx := f.checkIndex("us-wa"); len(idx) != 1 {
		t.Fatalf("index %q", idx)
	}
	if stray := f.strayFiles("us-wa"); len(stray) != 0 {
		t.Errorf("files of the killed pass remain: %q", stray)
	}
}
