package verification

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
)

func TestRealmDefaults(t *testing.T) {
	r := Realm{Name: "wa", Region: "us-wa"}.WithDefaults()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if r.Region != "US-WA" || r.ShortCodeLength != 8 || r.ShortCodeLifetime != 15*time.Minute || r.LongCodeLength != 16 ||
		r.LongCodeLifetime != 24*time.Hour || r.CertificateLifetime != 15*time.Minute || r.CertificateIssuer != "candor/wa" ||
		r.TokenIssuer != "candor/wa/token" || r.AppID != "us-wa.candor.app" || r.CertificateAudience != DefaultCertificateAudience ||
		!slices.Equal(r.TestTypes, []string{"confirmed", "likely", "negative"}) {
		t.Errorf("defaults: %+v", r)
	}
}

func TestRealmValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Realm)
		want   string // "" = valid
	}{
		{"ok", func(r *Realm) {}, ""},
		{"name upper case", func(r *Realm) { r.Name = "WA" }, "name"},
		{"name with slash", func(r *Realm) { r.Name = "a/b" }, "name"},
		{"empty region", func(r *Realm) { r.Region = "" }, "region"},
		{"short code 5", func(r *Realm) { r.ShortCodeLength = 5 }, "short code length"},
		{"short code 6", func(r *Realm) { r.ShortCodeLength = 6 }, ""},
		{"long code 11", func(r *Realm) { r.LongCodeLength = 11 }, "long code length"},
		{"long code 12", func(r *Realm) { r.LongCodeLength = 12 }, ""},
		{"short lifetime 2h", func(r *Realm) { r.ShortCodeLifetime = 2 * time.Hour }, "short code lifetime"},
		{"long shorter than short", func(r *Realm) { r.LongCodeLifetime = 10 * time.Minute }, "long code lifetime"},
		{"long 25h", func(r *Realm) { r.LongCodeLifetime = 25 * time.Hour }, "long code lifetime"},
		{"bad test type", func(r *Realm) { r.TestTypes = []string{"positive"} }, "test type"},
		{"user-report allowed", func(r *Realm) { r.TestTypes = []string{"user-report"} }, ""},
		{"negative quota", func(r *Realm) { r.DailyQuota = -1 }, "daily quota"},
		{"cert lifetime 0", func(r *Realm) { r.CertificateLifetime = 0 }, "certificate lifetime"},
		{"empty audience", func(r *Realm) { r.CertificateAudience = " " }, "certificate audience"},
		{"token issuer = cert issuer", func(r *Realm) { r.TokenIssuer = r.CertificateIssuer }, "token issuer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Realm{Name: "wa", Region: "US-WA"}.WithDefaults()
			tc.change(&r)
			err := r.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseAccept(t *testing.T) {
	all := []string{"confirmed", "likely", "negative", "user-report"}
	tests := []struct {
		accept []string
		want   []string
	}{
		{nil, all},
		{[]string{}, all},
		{[]string{"confirmed"}, []string{"confirmed"}},
		{[]string{"likely"}, []string{"confirmed", "likely"}},
		{[]string{"negative"}, []string{"confirmed", "likely", "negative"}},
		{[]string{"user-report"}, []string{"confirmed", "user-report"}},
		{[]string{"likely", "user-report"}, []string{"confirmed", "likely", "user-report"}},
		{[]string{"Confirmed", " likely "}, []string{"confirmed", "likely"}},
	}
	for _, tc := range tests {
		set, err := ParseAccept(tc.accept)
		if err != nil {
			t.Fatalf("%v: %v", tc.accept, err)
		}
		var got []string
		for _, tt := range all {
			if set.Accepts(tt) {
				got = append(got, tt)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("accept %v → %v, want %v", tc.accept, got, tc.want)
		}
	}
	if !(AcceptSet{all: true}).Accepts("future-type") {
		t.Error("an empty accept list takes future types too")
	}
	for _, bad := range [][]string{{"positive"}, {"confirmed", ""}} {
		if _, err := ParseAccept(bad); ErrorCode(err) != api.ErrInvalidTestType {
			t.Errorf("ParseAccept(%q) = %v, want invalid_test_type", bad, err)
		}
	}
}

func TestAttemptLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewAttemptLimiter(3, time.Second, func() time.Time { return now })
	for i := range 3 {
		if ok, _ := l.Reserve("k"); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	ok, wait := l.Reserve("k")
	if ok || wait < time.Second {
		t.Fatalf("4th attempt: %v %v", ok, wait)
	}
	if ok, _ := l.Reserve("other"); !ok {
		t.Fatal("keys are independent")
	}
	now = now.Add(time.Second)
	if ok, _ := l.Reserve("k"); !ok {
		t.Fatal("one attempt regained per interval")
	}
	if ok, _ := l.Reserve("k"); ok {
		t.Fatal("only one")
	}
	l.Refund("k")
	if ok, _ := l.Reserve("k"); !ok {
		t.Fatal("a refund gives the attempt back")
	}
	if got := l.MaxFailures(15 * time.Minute); got != 3+900 {
		t.Errorf("MaxFailures = %d", got)
	}
	now = now.Add(time.Hour)
	l.Sweep()
	if len(l.buckets) != 0 {
		t.Errorf("sweep kept %d full buckets", len(l.buckets))
	}
}

// TestAttemptLimiterConcurrent: however many goroutines reserve at once,
// no more than the burst succeed.
func TestAttemptLimiterConcurrent(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewAttemptLimiter(50, time.Hour, func() time.Time { return now })
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l.Reserve("k"); ok {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if granted != 50 {
		t.Errorf("granted %d, want 50", granted)
	}
}

func TestBruteForceBound(t *testing.T) {
	r := Realm{Name: "x", Region: "X"}.WithDefaults()
	for _, tc := range []struct {
		name string
		l    FailureLimiter
		want float64
	}{
		{"one client address", NewAttemptLimiter(DefaultFailureBurst, DefaultFailureInterval, nil), 111.0 / 1e8},
		{"one API key, any addresses", NewAttemptLimiter(DefaultKeyFailureBurst, DefaultKeyFailureInterval, nil), 1901.0 / 1e8},
	} {
		if got := BruteForceBound(&r, tc.l); got != tc.want {
			t.Errorf("%s: bound = %g, want %g", tc.name, got, tc.want)
		}
	}
}
