package exporter

import (
	"bytes"
	"crypto/rand"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/keyserver"
)

func testConfig() Config {
	return Config{
		Root: "us-wa", Region: "US-WA", Period: time.Hour, MinWindowAge: 15 * time.Minute,
		MinKeys: 1000, MaxKeysPerFile: 500_000, InputRegions: []string{"US-WA"},
		SignatureInfos: []SignatureInfo{{KeyID: "310", KeyVersion: "v1", Keyset: KeysetName("310", "v1")}},
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   string // substring of the error; "" for valid
	}{
		{"default", func(c *Config) {}, ""},
		{"2h", func(c *Config) { c.Period = 2 * time.Hour }, ""},
		{"24h", func(c *Config) { c.Period = 24 * time.Hour }, ""},
		{"5h does not divide a day", func(c *Config) { c.Period = 5 * time.Hour }, "divide 24h"},
		{"30m is finer than the publish window", func(c *Config) { c.Period = 30 * time.Minute }, "multiple of the publish window"},
		{"48h", func(c *Config) { c.Period = 48 * time.Hour }, "divide 24h"},
		{"bad root", func(c *Config) { c.Root = "../etc" }, "root"},
		{"no region", func(c *Config) { c.Region = "" }, "region"},
		{"negative age", func(c *Config) { c.MinWindowAge = -time.Second }, "negative"},
		{"no max keys", func(c *Config) { c.MaxKeysPerFile = 0 }, "maximum keys"},
		{"no min keys", func(c *Config) { c.MinKeys = 0 }, "minimum keys"},
		{"no signer", func(c *Config) { c.SignatureInfos = nil }, "signature info"},
		{"same key twice", func(c *Config) { c.SignatureInfos = append(c.SignatureInfos, c.SignatureInfos[0]) }, "twice"},
		{"bad key id", func(c *Config) { c.SignatureInfos[0].KeyID = "a/b" }, "key id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if err := ValidateRetention(9 * 24 * time.Hour); err == nil {
		t.Error("a retention of 9 days was accepted")
	}
	if err := ValidateRetention(MinRetention); err != nil {
		t.Errorf("ValidateRetention(min): %v", err)
	}
}

func TestWindows(t *testing.T) {
	c := testConfig()
	c.Period = 4 * time.Hour
	at := time.Date(2026, 11, 20, 10, 20, 0, 0, time.UTC)
	w := c.WindowAt(at)
	if want := (Window{time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC), time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)}); w != want {
		t.Fatalf("WindowAt = %v, want %v", w, want)
	}
	// Exportable from end + min age, not a second earlier.
	if c.Exportable(w, w.End.Add(c.MinWindowAge-time.Second)) || !c.Exportable(w, w.End.Add(c.MinWindowAge)) {
		t.Error("Exportable boundary is wrong")
	}
	// Due windows: from the first window starting at or after the cutoff,
	// up to the last one whose end + min age has passed.
	cutoff := time.Date(2026, 11, 19, 6, 0, 0, 0, time.UTC) // mid-window: 04-08 is cut
	due := c.DueWindows(cutoff, time.Date(2026, 11, 20, 12, 14, 0, 0, time.UTC))
	if len(due) == 0 || !due[0].Start.Equal(time.Date(2026, 11, 19, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("first due window %v", due)
	}
	last := due[len(due)-1]
	if !last.End.Equal(time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("last due window %v: the 08-12 window is due only at 12:15", last)
	}
	for i := 1; i < len(due); i++ {
		if !due[i].Start.Equal(due[i-1].End) {
			t.Fatalf("windows not contiguous: %v", due)
		}
	}
	if got := FileName(w, 3); got != "1795161600-1795176000-00003.zip" {
		t.Errorf("FileName = %s", got)
	}
	if pw, n, ok := parseFileName(FileName(w, 3)); !ok || pw != w || n != 3 {
		t.Errorf("parseFileName = %v %d %v", pw, n, ok)
	}
	for _, bad := range []string{"index.txt", "1-2-3.zip", "2-1-00001.zip", "a-2-00001.zip", "1-2-00000.zip", ".tmp-1-2-00001.zip-ab"} {
		if _, _, ok := parseFileName(bad); ok {
			t.Errorf("parseFileName(%q) accepted", bad)
		}
	}
}

func TestRetentionCutoffAlignment(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 20, 0, 0, time.UTC)
	hourly, six := testConfig(), testConfig()
	six.Period = 6 * time.Hour
	align := retentionAlign([]*Config{&hourly, &six}, time.Hour)
	if align != 6*time.Hour {
		t.Fatalf("align = %v", align)
	}
	c := RetentionCutoff(now, 14*24*time.Hour, align)
	if want := time.Date(2026, 11, 6, 6, 0, 0, 0, time.UTC); !c.Equal(want) {
		t.Errorf("cutoff = %v, want %v", c, want)
	}
	eight := testConfig()
	eight.Period = 8 * time.Hour
	if got := retentionAlign([]*Config{&six, &eight}, time.Hour); got != 24*time.Hour {
		t.Errorf("lcm(6h, 8h) = %v", got)
	}
}

func randomKeys(n int) []rec {
	keys := make([]rec, n)
	for i := range keys {
		var d [16]byte
		rand.Read(d[:])
		e := &keyserver.Exposure{Key: d, TransmissionRisk: int32(i % 8), IntervalNumber: int32(2_900_000 + i%14*144), IntervalCount: 144,
			ReportType: keyserver.ReportConfirmed, DaysSinceOnset: int32(i % 10), HasDaysSinceOnset: true}
		keys[i], _ = recOf(e, false)
	}
	return keys
}

func TestSortRecs(t *testing.T) {
	if unsafe.Sizeof(rec{}) != 32 {
		t.Errorf("rec is %d bytes, want 32", unsafe.Sizeof(rec{}))
	}
	for _, n := range []int{0, 1, 2, 10, 1000, radixMin + 7} {
		keys := randomKeys(n)
		if n > 3 {
			keys[3].hi, keys[3].lo = keys[1].hi, keys[1].lo // a repeated key goes
		}
		want := exportKeys(keys)
		slices.SortFunc(want, func(a, b export.Key) int { return bytes.Compare(a.Data, b.Data) })
		want = slices.CompactFunc(want, func(a, b export.Key) bool { return bytes.Equal(a.Data, b.Data) })
		got := exportKeys(sortRecs(keys))
		if len(got) != len(want) {
			t.Fatalf("n=%d: %d keys after sorting, want %d", n, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i].Data, want[i].Data) {
				t.Fatalf("n=%d: position %d differs", n, i)
			}
		}
	}
}

func TestRecRoundTrip(t *testing.T) {
	e := &keyserver.Exposure{Key: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, IntervalNumber: 2_900_000, IntervalCount: 100,
		TransmissionRisk: 8, ReportType: keyserver.ReportUserReport, DaysSinceOnset: -3, HasDaysSinceOnset: true}
	r, ok := recOf(e, false)
	if !ok {
		t.Fatal("recOf refused a valid exposure")
	}
	k := exportKeys([]rec{r})[0]
	want := export.Key{Data: e.Key[:], TransmissionRisk: 8, RollingStartInterval: 2_900_000, RollingPeriod: 100, ReportType: export.SelfReport, DaysSinceOnset: -3, HasDaysSinceOnset: true}
	if !bytes.Equal(k.Data, want.Data) || k.TransmissionRisk != want.TransmissionRisk || k.RollingStartInterval != want.RollingStartInterval ||
		k.RollingPeriod != want.RollingPeriod || k.ReportType != want.ReportType || k.DaysSinceOnset != want.DaysSinceOnset || k.HasDaysSinceOnset != want.HasDaysSinceOnset {
		t.Errorf("export key %+v, want %+v", k, want)
	}
	if back, err := recFromKey(&k); err != nil || back != r {
		t.Errorf("recFromKey = %+v, %v; want %+v", back, err, r)
	}
	for _, bad := range []func(e *keyserver.Exposure){
		func(e *keyserver.Exposure) { e.TransmissionRisk = -1 },
		func(e *keyserver.Exposure) { e.TransmissionRisk = 300 },
		func(e *keyserver.Exposure) { e.IntervalCount = 145 },
		func(e *keyserver.Exposure) { e.ReportType = 9 },
	} {
		c := *e
		bad(&c)
		if _, ok := recOf(&c, false); ok {
			t.Errorf("recOf accepted %+v", c)
		}
	}
}

func TestPaddingCopiesRealMetadata(t *testing.T) {
	real := randomKeys(7)
	pad, err := newPadding(real, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(pad) != 93 {
		t.Fatalf("%d padding keys, want 93", len(pad))
	}
	for _, p := range pad {
		match := slices.ContainsFunc(real, func(r rec) bool {
			r.hi, r.lo = p.hi, p.lo
			return r == p
		})
		if !match {
			t.Fatalf("padding key %+v copies no real key's metadata", p)
		}
		if slices.ContainsFunc(real, func(r rec) bool { return r.hi == p.hi && r.lo == p.lo }) {
			t.Fatal("padding reuses a real key")
		}
	}
	// Revised keys serve as models when there is no new key.
	if pad, _ := newPadding(nil, real[:1], 10); len(pad) != 10 || pad[0].start != real[0].start {
		t.Errorf("padding from revised keys: %+v", pad)
	}
	for _, tc := range []struct{ keys, min int }{{0, 1000}, {1000, 1000}, {5, 1}} {
		if pad, _ := newPadding(randomKeys(tc.keys), nil, tc.min); pad != nil {
			t.Errorf("%d keys, min %d: %d padding keys, want none", tc.keys, tc.min, len(pad))
		}
	}
	// Round trip through the record encoding.
	b, err := encodeKeyList(pad)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeKeyList(b)
	if err != nil || len(back) != len(pad) {
		t.Fatalf("decodeKeyList: %d keys, %v", len(back), err)
	}
	sortRecs(pad)
	sortRecs(back)
	if !slices.Equal(back, pad) {
		t.Error("padding changed through the record encoding")
	}
}

func TestLayoutSplit(t *testing.T) {
	c := testConfig()
	w := c.WindowAt(time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC))
	keys, revised := randomKeys(23), randomKeys(4)
	l := newLayout(keys, nil, revised)
	n := l.fileCount(10)
	if n != 3 {
		t.Fatalf("27 keys at 10 per file: %d files", n)
	}
	var gotKeys, gotRevised int
	var prev []byte
	for i := range n {
		f := exportFile(&c, w, l, i, n)
		if got := len(f.Keys) + len(f.RevisedKeys); got < 9 || got > 10 {
			t.Errorf("file %d holds %d keys; a split is balanced", i, got)
		}
		if f.EndTimestamp != uint64(w.End.Unix())+uint64(i) || f.StartTimestamp != uint64(w.Start.Unix()) {
			t.Errorf("file %d: start %d end %d", i, f.StartTimestamp, f.EndTimestamp)
		}
		if f.BatchNum != 1 || f.BatchSize != 1 || f.Region != "US-WA" {
			t.Errorf("file %d: batch %d/%d region %q", i, f.BatchNum, f.BatchSize, f.Region)
		}
		for _, k := range f.Keys {
			if prev != nil && bytes.Compare(prev, k.Data) >= 0 {
				t.Fatal("keys are not sorted across files")
			}
			prev = k.Data
		}
		gotKeys += len(f.Keys)
		gotRevised += len(f.RevisedKeys)
	}
	if gotKeys != 23 || gotRevised != 4 {
		t.Errorf("files hold %d keys and %d revised, want 23 and 4", gotKeys, gotRevised)
	}
	if one := newLayout(randomKeys(10), nil, nil); one.fileCount(10) != 1 {
		t.Error("10 keys at 10 per file need one file")
	}
}

func TestRecRevision(t *testing.T) {
	e := &keyserver.Exposure{IntervalNumber: 5, IntervalCount: 144, TransmissionRisk: 4, ReportType: keyserver.ReportLikely,
		DaysSinceOnset: 2, HasDaysSinceOnset: true, Revised: true, RevisedReportType: keyserver.ReportNegative,
		RevisedTransmissionRisk: 6, RevisedDaysSinceOnset: 3}
	r, _ := recOf(e, false)
	k := exportKeys([]rec{r})[0]
	if k.ReportType != export.ConfirmedClinicalDiagnosis || k.TransmissionRisk != 4 || k.DaysSinceOnset != 2 {
		t.Errorf("original: %+v", k)
	}
	r, _ = recOf(e, true)
	k = exportKeys([]rec{r})[0]
	if k.ReportType != export.Revoked || k.TransmissionRisk != 6 || k.DaysSinceOnset != 3 || !k.HasDaysSinceOnset {
		t.Errorf("revised: %+v", k)
	}
}
