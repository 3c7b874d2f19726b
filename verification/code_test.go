package verification

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
)

// cycleReader yields 0, 1, …, 255, 0, 1, … forever.
type cycleReader struct{ next byte }

func (c *cycleReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.next
		c.next++
	}
	return len(p), nil
}

// TestRandomCodeUniform proves there is no modulo bias: fed every byte value
// exactly once per cycle, the generator emits every symbol exactly equally
// often, because bytes at or above the largest multiple of the alphabet size
// are discarded. A plain b % len(alphabet) would give the first 256 % size
// symbols one extra hit per cycle.
func TestRandomCodeUniform(t *testing.T) {
	for _, tc := range []struct {
		name     string
		alphabet string
		accepted int // bytes used per 256-byte cycle
	}{
		{"digits", shortCodeAlphabet, 250},
		{"a-z0-9", longCodeAlphabet, 252},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cycles := 40
			code, err := randomCode(&cycleReader{}, tc.alphabet, tc.accepted*cycles)
			if err != nil {
				t.Fatal(err)
			}
			counts := map[rune]int{}
			for _, r := range code {
				counts[r]++
			}
			want := tc.accepted / len(tc.alphabet) * cycles
			for _, r := range tc.alphabet {
				if counts[r] != want {
					t.Errorf("symbol %q drawn %d times, want exactly %d", r, counts[r], want)
				}
			}
		})
	}
}

// TestRandomCodeRejectsHighBytes: bytes ≥ 250 never become a digit.
func TestRandomCodeRejectsHighBytes(t *testing.T) {
	src := bytes.NewReader(append(bytes.Repeat([]byte{250, 251, 252, 253, 254, 255}, 3), 7, 249, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
	code, err := randomCode(src, shortCodeAlphabet, 3)
	if err != nil {
		t.Fatal(err)
	}
	if code != "793" {
		t.Errorf("code = %q, want 793 (7, 249%%10, 3; high bytes skipped)", code)
	}
	if _, err := randomCode(bytes.NewReader(bytes.Repeat([]byte{255}, 10)), shortCodeAlphabet, 8); err == nil {
		t.Error("a source of only rejected bytes must run dry with an error")
	}
}

// TestRandomCodeChiSquare is a sanity check on crypto/rand output: digit
// frequencies of 200,000 draws pass a chi-square test (9 degrees of
// freedom; 27.88 is the 0.001 critical value).
func TestRandomCodeChiSquare(t *testing.T) {
	const n = 200000
	code, err := randomCode(rand.Reader, shortCodeAlphabet, n)
	if err != nil {
		t.Fatal(err)
	}
	var counts [10]float64
	for i := range len(code) {
		counts[code[i]-'0']++
	}
	chi := 0.0
	for _, c := range counts {
		chi += (c - n/10) * (c - n/10) / (n / 10)
	}
	if chi > 27.88 {
		t.Errorf("chi-square %.1f over 27.88: digits %v", chi, counts)
	}
}

func TestRandomCodeShapes(t *testing.T) {
	short, _ := randomCode(rand.Reader, shortCodeAlphabet, 8)
	long, _ := randomCode(rand.Reader, longCodeAlphabet, 16)
	if !regexp.MustCompile(`^[0-9]{8}$`).MatchString(short) || !regexp.MustCompile(`^[a-z0-9]{16}$`).MatchString(long) {
		t.Errorf("codes %q %q", short, long)
	}
}

func TestKeyedHashSeparatesParts(t *testing.T) {
	key := []byte("k")
	if keyedHash(key, "ab", "c") == keyedHash(key, "a", "bc") {
		t.Error("length prefixes must keep ab|c and a|bc apart")
	}
	if keyedHash(key, "realm", "123") == keyedHash([]byte("other"), "realm", "123") {
		t.Error("the key must matter")
	}
}

// Server-made UUIDs are version 4: all random, no issue time in them.
func TestUUIDs(t *testing.T) {
	u1, err := newUUID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !uuidRE.MatchString(u1) || u1[14] != '4' || !strings.ContainsAny(u1[19:20], "89ab") {
		t.Errorf("uuid %s: want version 4, variant 10", u1)
	}
	zero, _ := newUUID(bytes.NewReader(make([]byte, 16)))
	if zero != "00000000-0000-4000-8000-000000000000" {
		t.Errorf("uuid from zero bytes %s: every bit but version and variant must be random", zero)
	}
	if got, err := normalizeUUID(" " + strings.ToUpper(u1) + " "); err != nil || got != u1 {
		t.Errorf("normalizeUUID = %q, %v", got, err)
	}
	for _, bad := range []string{"", "x", "01234567-89ab-cdef-0123-456789abcdeg", "0123456789abcdef0123456789abcdef"} {
		if _, err := normalizeUUID(bad); ErrorCode(err) != api.ErrUnparsableRequest {
			t.Errorf("normalizeUUID(%q) = %v", bad, err)
		}
	}
}

// TestParseDateTZOffset checks both bounds of the allowed date range on
// both sides of UTC. The reference server computes "today" in UTC and only
// widens the lower bound for negative offsets, so an issuer east of UTC is
// refused today's date in the hours before UTC midnight; here both bounds
// follow the issuer's local day.
func TestParseDateTZOffset(t *testing.T) {
	lateUTC := time.Date(2026, 5, 10, 23, 30, 0, 0, time.UTC) // 11 May 01:30 at UTC+2
	earlyUTC := time.Date(2026, 5, 11, 0, 30, 0, 0, time.UTC) // 10 May 19:30 at UTC−5
	tests := []struct {
		name string
		now  time.Time
		tz   int
		date string
		code string // "" = valid
	}{
		// Upper bound: the issuer's today is valid, tomorrow is not.
		{"UTC today", lateUTC, 0, "2026-05-10", ""},
		{"UTC tomorrow", lateUTC, 0, "2026-05-11", api.ErrInvalidDate},
		{"east: local today is UTC tomorrow", lateUTC, 120, "2026-05-11", ""},
		{"east: local tomorrow", lateUTC, 120, "2026-05-12", api.ErrInvalidDate},
		{"west: UTC today is local tomorrow", earlyUTC, -300, "2026-05-11", api.ErrInvalidDate},
		{"west: local today", earlyUTC, -300, "2026-05-10", ""},
		{"max east +14h", time.Date(2026, 5, 10, 10, 0, 0, 0, time.UTC), 840, "2026-05-11", ""},
		// Lower bound: 28 days before the issuer's today is valid, 29 not.
		{"UTC 28 days back", lateUTC, 0, "2026-04-12", ""},
		{"UTC 29 days back", lateUTC, 0, "2026-04-11", api.ErrInvalidDate},
		{"east: 28 days before local today", lateUTC, 120, "2026-04-13", ""},
		{"east: 29 days before local today", lateUTC, 120, "2026-04-12", api.ErrInvalidDate},
		{"west: 28 days before local today", earlyUTC, -300, "2026-04-12", ""},
		{"west: 29 days before local today", earlyUTC, -300, "2026-04-11", api.ErrInvalidDate},
		// Malformed.
		{"slashes", lateUTC, 0, "2026/05/10", api.ErrUnparsableRequest},
		{"no zero padding", lateUTC, 0, "2026-5-10", api.ErrUnparsableRequest},
		{"impossible day", lateUTC, 0, "2026-02-30", api.ErrUnparsableRequest},
		{"timestamp", lateUTC, 0, "2026-05-10T00:00:00Z", api.ErrUnparsableRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDate("testDate", tc.date, tc.now, tc.tz, DefaultMaxDateAgeDays)
			if got := codeOf(err); got != tc.code {
				t.Fatalf("ParseDate(%s, tz %d) at %v: code %q (%v), want %q", tc.date, tc.tz, tc.now, got, err, tc.code)
			}
			if err == nil && d.Format(DateLayout) != tc.date {
				t.Errorf("date = %v", d)
			}
		})
	}
}

func codeOf(err error) string {
	if err == nil {
		return ""
	}
	return ErrorCode(err)
}

func TestParseTZOffset(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want int
		ok   bool
	}{{0, 0, true}, {-720, -720, true}, {840, 840, true}, {330.9, 330, true}, {-300.5, -300, true}, {841, 0, false}, {-721, 0, false}, {1e9, 0, false}} {
		got, err := ParseTZOffset(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseTZOffset(%v) = %d, %v", tc.in, got, err)
		}
	}
}

func TestLocalDay(t *testing.T) {
	now := time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)
	if got := LocalDay(now, 60); got != time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) {
		t.Errorf("LocalDay +60 = %v", got)
	}
	if got := LocalDay(now.Add(2*time.Hour), -180); got != time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC) {
		t.Errorf("LocalDay -180 = %v", got)
	}
}

func TestHashText(t *testing.T) {
	h := keyedHash([]byte("k"), "x")
	b, _ := h.MarshalText()
	var back Hash
	if err := back.UnmarshalText(b); err != nil || back != h {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{"", "AAAA", strings.Repeat("A", 44), strings.Repeat("!", 43)} {
		if err := back.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted", bad)
		}
	}
}

func TestSubject(t *testing.T) {
	s := Subject{TestType: "likely", SymptomDate: "2026-01-02"}
	got, err := ParseSubject(s.String())
	if err != nil || got != s || s.String() != "likely.2026-01-02." {
		t.Fatalf("round trip %q: %+v %v", s.String(), got, err)
	}
	if want := uint32(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).Unix() / 600); s.SymptomOnsetInterval() != want {
		t.Errorf("onset = %d, want %d", s.SymptomOnsetInterval(), want)
	}
	if (Subject{TestType: "confirmed"}).SymptomOnsetInterval() != 0 {
		t.Error("no symptom date must give 0")
	}
	for _, bad := range []string{"", "confirmed", "bogus..", "confirmed.2026-13-01.", "a.b.c.d"} {
		if _, err := ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted", bad)
		}
	}
}

func TestErrorStatus(t *testing.T) {
	for code, want := range map[string]int{
		"": 200, api.ErrUnparsableRequest: 400, api.ErrVerifyCodeInvalid: 400, api.ErrVerifyCodeExpired: 400,
		api.ErrVerifyCodeNotFound: 404, api.ErrInvalidTestType: 400, api.ErrMissingDate: 400, api.ErrInvalidDate: 400,
		api.ErrUUIDAlreadyExists: 409, api.ErrMaintenanceMode: 429, api.ErrQuotaExceeded: 429, api.ErrRateLimited: 429,
		api.ErrUnsupportedTestType: 412, api.ErrTokenInvalid: 400, api.ErrTokenExpired: 400, api.ErrHMACInvalid: 400,
		api.ErrUnauthorized: 401, api.ErrInternal: 500,
	} {
		if got := Status(code); got != want {
			t.Errorf("Status(%q) = %d, want %d", code, got, want)
		}
	}
	if ErrorCode(errors.New("x")) != api.ErrInternal || errorMessage(internal("secret detail", io.EOF)) != "internal error" {
		t.Error("internal errors must not leak")
	}
}
