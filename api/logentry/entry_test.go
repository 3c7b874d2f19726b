package logentry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func testPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

const digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// samples returns one valid body of every type.
func samples(t *testing.T) []Body {
	pemKey := testPEM(t)
	start := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	key := SigningKey{Purpose: PurposeExport, KeyID: "310", KeyVersion: "v1", Algorithm: AlgorithmECDSAP256, PublicKeyPEM: pemKey}
	uploads := NewCount(25)
	realm := Realm{
		Name: "wa", Region: "US-WA", TestTypes: []string{"likely", "confirmed"},
		ShortCodeLength: 8, ShortCodeLifetime: Duration(15 * time.Minute), LongCodeLength: 16, LongCodeLifetime: Duration(24 * time.Hour),
		DailyQuota: 1000, CertificateIssuer: "candor/wa", CertificateAudience: "candor-keyserver", CertificateLifetime: Duration(15 * time.Minute),
		CertificateKeys: []CertificateKey{{KeyVersion: "v2", PublicKeyPEM: pemKey}, {KeyVersion: "v1", PublicKeyPEM: pemKey}},
		Retention:       Duration(14 * 24 * time.Hour),
	}
	auth := Authority{Issuer: "gov.example", Audience: "keyserver", Name: "Example Health", Keys: []CertificateKey{{KeyVersion: "v1", PublicKeyPEM: pemKey}}}
	return []Body{
		ExportPublished{
			File: "us-wa/1740819600-1740823200-00001.zip", Region: "US-WA", WindowStart: start, WindowEnd: start.Add(time.Hour),
			FileNum: 1, FileCount: 1, ZipSHA256: digest, BinSHA256: strings.ToUpper(digest), Size: 1234, Keys: 1000, RevisedKeys: 3,
			SigningKeys: []KeyRef{{KeyID: "310", KeyVersion: "v1"}},
		},
		RetentionDeleted{Cutoff: start, KeysDeleted: NewCount(3), FilesDeleted: 2,
			Files: []string{"us-wa/1740823200-1740826800-00001.zip", "us-wa/1740819600-1740823200-00001.zip"}},
		RetentionDeleted{Cutoff: start.Add(time.Hour), KeysDeleted: NewCount(500), FilesDeleted: 1},
		SigningKeyAdded{SigningKey: key},
		SigningKeyRotated{SigningKey: SigningKey{Purpose: PurposeExport, KeyID: "310", KeyVersion: "v2", Algorithm: AlgorithmECDSAP256, PublicKeyPEM: pemKey},
			Replaces: []KeyRef{{KeyID: "310", KeyVersion: "v1"}}},
		SigningKeyRetired{SigningKey: key, RetiredAt: start.In(time.FixedZone("x", 3600))},
		RealmAdded{Realm: realm},
		RealmChanged{Realm: realm},
		AuthorityAdded{Authority: auth},
		AuthorityChanged{Authority: auth},
		StatsDaily{Realm: "wa", Day: "2025-03-01", CodesIssued: NewCount(120), CodesClaimed: NewCount(4), CertificatesIssued: NewCount(99), UploadsAccepted: &uploads},
		SoftwareStarted{Module: "github.com/candor-en/candor", Version: "v1.2.3", Revision: "abc", GoVersion: "go1.26", Settings: map[string]string{"GOOS": "linux"}},
		ExportRootAdded{Root: "us-wa", Region: "US-WA"},
	}
}

func TestRoundTrip(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 42, 17, 5, time.FixedZone("CET", 3600))
	types := map[string]bool{}
	for _, body := range samples(t) {
		e := New(now, body)
		types[e.Type] = true
		b, err := e.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if c, err := Canonicalize(b); err != nil || string(c) != string(b) {
			t.Errorf("%s: marshal is not canonical:\n%s\n%s", e.Type, b, c)
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%s: unmarshal %s: %v", e.Type, b, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("%s: round trip:\n got %#v\nwant %#v", e.Type, got, e)
		}
		if !got.Time.Equal(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: time %v, want the UTC hour", e.Type, got.Time)
		}
		if !strings.Contains(string(b), `"schema":1`) || !strings.Contains(string(b), `"time":"2025-03-01T09:00:00Z"`) {
			t.Errorf("%s: envelope %s", e.Type, b)
		}
	}
	for _, typ := range Types() {
		if !types[typ] {
			t.Errorf("no sample of %s", typ)
		}
	}
}

func TestMarshalShapes(t *testing.T) {
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	b, err := New(now, StatsDaily{Realm: "wa", Day: "2025-03-01", CodesIssued: NewCount(9), CodesClaimed: NewCount(10), CertificatesIssued: NewCount(0)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"data":{"certificatesIssued":"<10","codesClaimed":10,"codesIssued":"<10","day":"2025-03-01","realm":"wa"},"schema":1,"time":"2025-03-01T09:00:00Z","type":"stats.daily"}`
	if string(b) != want {
		t.Errorf("stats entry\n got %s\nwant %s", b, want)
	}
	// Normalization: lists sorted, hex lower case, times in UTC.
	e := New(now, RetentionDeleted{Cutoff: now.In(time.FixedZone("x", -7200)), FilesDeleted: 2, Files: []string{"b/1-2-00001.zip", "a/1-2-00001.zip"}})
	b, err = e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"cutoff":"2025-03-01T09:00:00Z"`) || !strings.Contains(string(b), `"files":["a/1-2-00001.zip","b/1-2-00001.zip"]`) {
		t.Errorf("not normalized: %s", b)
	}
}

func TestValidate(t *testing.T) {
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	bad := []Body{
		ExportPublished{File: "../etc/passwd", Region: "X"},
		ExportPublished{File: "r/1-2-00001.zip", Region: "X", WindowStart: now, WindowEnd: now.Add(time.Hour), FileNum: 1, FileCount: 1, ZipSHA256: "zz", BinSHA256: digest, Size: 1, SigningKeys: []KeyRef{{"a", "b"}}},
		RetentionDeleted{Cutoff: now, FilesDeleted: 2, Files: []string{"r/1-2-00001.zip"}},
		SigningKeyAdded{SigningKey: SigningKey{Purpose: "other", KeyID: "a", KeyVersion: "b", Algorithm: AlgorithmECDSAP256, PublicKeyPEM: testPEM(t)}},
		SigningKeyAdded{SigningKey: SigningKey{Purpose: PurposeExport, KeyID: "a", KeyVersion: "b", Algorithm: AlgorithmECDSAP256, PublicKeyPEM: "not a key"}},
		SigningKeyRotated{SigningKey: SigningKey{Purpose: PurposeExport, KeyID: "a", KeyVersion: "b", Algorithm: AlgorithmECDSAP256, PublicKeyPEM: testPEM(t)}},
		StatsDaily{Realm: "wa", Day: "2025-3-1"},
		SoftwareStarted{Module: "m"},
		RealmAdded{Realm: Realm{Name: "wa"}},
		AuthorityAdded{},
		ExportRootAdded{Root: "us-wa\r", Region: "US-WA"},
		ExportRootAdded{Root: "roots.txt", Region: "US-WA"},
		ExportRootAdded{Root: "us-wa"},
	}
	for _, b := range bad {
		if _, err := New(now, b).Marshal(); err == nil {
			t.Errorf("%T %+v: marshalled", b, b)
		}
	}
	e := New(now, SoftwareStarted{Module: "m", Version: "v", GoVersion: "go"})
	e.Time = now.Add(time.Minute)
	if _, err := e.Marshal(); err == nil {
		t.Error("a time within the hour was accepted")
	}
	e = New(now, SoftwareStarted{Module: "m", Version: "v", GoVersion: "go"})
	e.Type = TypeStatsDaily
	if _, err := e.Marshal(); err == nil {
		t.Error("a type that does not match the body was accepted")
	}
}

func TestUnmarshalRefuses(t *testing.T) {
	good := `{"data":{"goVersion":"go1.26","module":"m","version":"v1"},"schema":1,"time":"2025-03-01T09:00:00Z","type":"software.started"}`
	if _, err := Unmarshal([]byte(good)); err != nil {
		t.Fatalf("good entry: %v", err)
	}
	for name, tc := range map[string]struct {
		in   string
		want error
	}{
		"whitespace":    {in: strings.Replace(good, `"schema":1`, `"schema": 1`, 1), want: ErrNotCanonical},
		"key order":     {in: `{"schema":1,"data":{"goVersion":"go1.26","module":"m","version":"v1"},"time":"2025-03-01T09:00:00Z","type":"software.started"}`, want: ErrNotCanonical},
		"escape":        {in: strings.Replace(good, `"m"`, `"\u006d"`, 1), want: ErrNotCanonical},
		"time offset":   {in: strings.Replace(good, `09:00:00Z`, `10:00:00+01:00`, 1), want: ErrNotCanonical},
		"schema 2":      {in: strings.Replace(good, `"schema":1`, `"schema":2`, 1), want: ErrUnsupportedSchema},
		"unknown field": {in: strings.Replace(good, `"goVersion"`, `"email":"a@b.c","goVersion"`, 1)},
		"minutes":       {in: strings.Replace(good, `09:00:00Z`, `09:17:00Z`, 1)},
		"no data":       {in: `{"schema":1,"time":"2025-03-01T09:00:00Z","type":"software.started"}`},
		"empty body":    {in: strings.Replace(good, `{"goVersion":"go1.26","module":"m","version":"v1"}`, `{}`, 1)},
		"trailing":      {in: good + " {}"},
		"extra member":  {in: strings.Replace(good, `"schema":1`, `"schema":1,"sig":"x"`, 1)},
		"count exact":   {in: `{"data":{"certificatesIssued":"<10","codesClaimed":5,"codesIssued":"<10","day":"2025-03-01","realm":"wa"},"schema":1,"time":"2025-03-01T09:00:00Z","type":"stats.daily"}`},
		"bad type":      {in: strings.Replace(good, `software.started`, `Software Started`, 1)},
	} {
		_, err := Unmarshal([]byte(tc.in))
		if err == nil {
			t.Errorf("%s: accepted %s", name, tc.in)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", name, err, tc.want)
		}
	}
}

func TestUnknownType(t *testing.T) {
	in := `{"data":{"b":[1,2],"a":"x"},"schema":1,"time":"2025-03-01T09:00:00Z","type":"future.thing"}`
	if _, err := Unmarshal([]byte(in)); !errors.Is(err, ErrNotCanonical) {
		t.Fatalf("unsorted unknown body: %v", err)
	}
	in = `{"data":{"a":"x","b":[1,2]},"schema":1,"time":"2025-03-01T09:00:00Z","type":"future.thing"}`
	e, err := Unmarshal([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	u, ok := e.Body.(Unknown)
	if !ok || u.Type != "future.thing" || string(u.Data) != `{"a":"x","b":[1,2]}` {
		t.Fatalf("body %#v", e.Body)
	}
	b, err := e.Marshal()
	if err != nil || string(b) != in {
		t.Errorf("re-marshal %s, %v", b, err)
	}
}

func TestCanonicalize(t *testing.T) {
	for in, want := range map[string]string{
		` { "b" : 1 , "a" : [ true , null , "x" , -0 , 10 ] } `: `{"a":[true,null,"x",0,10],"b":1}`,
		`"\u0041\/\u00e9\n\u001f\""`:                            `"A/é\n\u001f\""`,
		`"<>&\u2028"`:                                           "\"<>&\u2028\"",
		// RFC 8785 §3.2.3: keys sort by UTF-16 code units, so U+20AC comes
		// before U+1F600 (a surrogate pair, D83D…) and U+1F600 before U+FB33,
		// unlike UTF-8 byte order.
		`{"\ufb33":3,"\ud83d\ude00":2,"\u20ac":1}`: "{\"\u20ac\":1,\"\U0001F600\":2,\"\ufb33\":3}",
		`{"a":{"d":1,"c":{"f":[],"e":{}}}}`:        `{"a":{"c":{"e":{},"f":[]},"d":1}}`,
		`9007199254740991`:                         `9007199254740991`,
	} {
		got, err := Canonicalize([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if string(got) != want {
			t.Errorf("%s:\n got %s\nwant %s", in, got, want)
		}
	}
	for _, in := range []string{`{"a":1,"a":2}`, `1.5`, `1e3`, `9007199254740992`, "\"\xff\"", `{"a":1} x`, `[1,`, strings.Repeat("[", 40) + strings.Repeat("]", 40)} {
		if got, err := Canonicalize([]byte(in)); err == nil {
			t.Errorf("%q: accepted as %s", in, got)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{-3: `"<10"`, 0: `"<10"`, 9: `"<10"`, 10: `10`, 12345: `12345`} {
		b, err := json.Marshal(NewCount(n))
		if err == nil {
			b, err = Canonicalize(b)
		}
		if err != nil || string(b) != want {
			t.Errorf("%d: %s, %v; want %s", n, b, err, want)
		}
		var c Count
		if err := json.Unmarshal(b, &c); err != nil {
			t.Errorf("%d: unmarshal %s: %v", n, b, err)
		}
		if c.String() != strings.Trim(want, `"`) {
			t.Errorf("%d: String %s", n, c)
		}
	}
	if v, ok := NewCount(5).Exact(); ok || v != 0 {
		t.Error("5 is exact")
	}
	if v, ok := NewCount(50).Exact(); !ok || v != 50 {
		t.Error("50 is not exact")
	}
	var c Count
	for _, in := range []string{`5`, `"5"`, `"<5"`, `1.5`} {
		if err := json.Unmarshal([]byte(in), &c); err == nil {
			t.Errorf("count %s accepted", in)
		}
	}
}

func TestIdentity(t *testing.T) {
	h1 := time.Date(2025, 3, 1, 9, 5, 0, 0, time.UTC)
	h2 := h1.Add(2 * time.Hour)
	id := func(now time.Time, b Body) string {
		t.Helper()
		s, err := New(now, b).Identity()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	all := samples(t)
	export := all[0].(ExportPublished)
	if id(h1, export) != id(h2, export) {
		t.Error("the same export file at another time is another event")
	}
	other := export
	other.File = "us-wa/1740823200-1740826800-00001.zip"
	if id(h1, export) == id(h1, other) {
		t.Error("two files are one event")
	}
	sw := SoftwareStarted{Module: "m", Version: "v", GoVersion: "go"}
	if id(h1, sw) != id(h1.Add(30*time.Minute), sw) {
		t.Error("two starts within an hour are two events")
	}
	if id(h1, sw) == id(h2, sw) {
		t.Error("starts in different hours are one event")
	}
	added, rotated := all[3].(SigningKeyAdded), all[4].(SigningKeyRotated)
	if id(h1, added) == id(h1, SigningKeyRetired{SigningKey: added.SigningKey, RetiredAt: h1}) {
		t.Error("adding and retiring a key are one event")
	}
	if id(h1, added) == id(h1, rotated) {
		t.Error("two keys are one event")
	}
	changed := added
	changed.PublicKeyPEM = testPEM(t)
	if id(h1, added) == id(h1, changed) {
		t.Error("another public key under the same id and version is the same event")
	}
}

func TestSoftwareFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.1", Path: "github.com/candor-en/candor/cmd/candor",
		Main: debug.Module{Path: "github.com/candor-en/candor", Version: "v1.0.0"},
		Deps: []*debug.Module{
			{Path: "a.example/x", Version: "v1.2.3"},
			{Path: "b.example/y", Version: "v0.1.0", Replace: &debug.Module{Path: "/home/alice/src/y"}},
			{Path: "c.example/z", Version: "v0.1.0", Replace: &debug.Module{Path: "c.example/fork", Version: "v0.1.1"}},
		},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "deadbeef"}, {Key: "vcs.modified", Value: "true"}, {Key: "GOOS", Value: "linux"}},
	}
	s := SoftwareFromBuildInfo(bi)
	if s.Module != "github.com/candor-en/candor" || s.Version != "v1.0.0" || s.Revision != "deadbeef" || !s.Modified || s.Settings["GOOS"] != "linux" {
		t.Errorf("%+v", s)
	}
	want := []string{"a.example/x@v1.2.3", "b.example/y@v0.1.0 => (local directory)", "c.example/z@v0.1.0 => c.example/fork@v0.1.1"}
	if !reflect.DeepEqual(s.Dependencies, want) {
		t.Errorf("deps %q", s.Dependencies)
	}
	b, err := New(time.Now(), s).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "alice") {
		t.Errorf("a local path leaked: %s", b)
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"data":{"goVersion":"go1.26","module":"m","version":"v1"},"schema":1,"time":"2025-03-01T09:00:00Z","type":"software.started"}`))
	f.Add([]byte(`{"data":{"a":1},"schema":1,"time":"2025-03-01T09:00:00Z","type":"x.y"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Unmarshal(b)
		if err != nil {
			return
		}
		// Whatever decodes is canonical: it encodes to the same bytes.
		again, err := e.Marshal()
		if err != nil || string(again) != string(b) {
			t.Fatalf("decoded %q but encodes to %q (%v)", b, again, err)
		}
	})
}
