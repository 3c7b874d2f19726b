package account

import (
	"crypto/rand"
	"regexp"
	"strings"
	"testing"
)

var testParams = PasswordParams{Memory: 64, Time: 1, Threads: 1}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery", testParams)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(h) {
		t.Errorf("hash %q is not a PHC argon2id string", h)
	}
	if ok, err := CheckPassword(h, "correct horse battery"); !ok || err != nil {
		t.Errorf("right password: %v, %v", ok, err)
	}
	if ok, err := CheckPassword(h, "correct horse batterY"); ok || err != nil {
		t.Errorf("wrong password: %v, %v", ok, err)
	}
	h2, _ := HashPassword("correct horse battery", testParams)
	if h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", strings.Replace(h, "v=19", "v=16", 1)} {
		if _, err := CheckPassword(bad, "x"); err == nil {
			t.Errorf("malformed hash %q accepted", bad)
		}
	}
}

// The default parameters must match the published reference: argon2id of
// RFC 9106's construction via x/crypto, at the default cost.
func TestDefaultPasswordParams(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes at full cost")
	}
	h, err := HashPassword("pw", DefaultPasswordParams())
	if err != nil || !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=2,p=2$") {
		t.Errorf("default hash %q, %v", h, err)
	}
}

func TestPasswordPolicy(t *testing.T) {
	for pw, ok := range map[string]bool{
		"short":                      false,
		"aaaaaaaaaaaaaaaa":           false,
		"password1234":               false,
		"ana.lopez-secret-2026":      false, // contains the email's local part
		"correct horse battery":      true,
		"Zwölf Wörter mit Umlauten!": true,
		strings.Repeat("ab", 129):    false,
	} {
		err := CheckPasswordPolicy(pw, "ana.lopez@example.org")
		if (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", pw, err, ok)
		}
	}
}

func TestOneTimePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p, err := NewOneTimePassword(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[a-hjkmnp-z2-9]{5}(-[a-hjkmnp-z2-9]{5}){3}$`).MatchString(p) {
			t.Fatalf("one-time password %q", p)
		}
		if seen[p] {
			t.Fatal("repeated one-time password")
		}
		seen[p] = true
		if err := CheckPasswordPolicy(p, "ana@example.org"); err != nil {
			t.Errorf("a one-time password fails the policy: %v", err)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	for in, want := range map[string]string{
		" Ana@Example.ORG ": "ana@example.org",
		"admin@localhost":   "admin@localhost",
		"Ana <a@b.org>":     "",
		"no-at-sign":        "",
		"a@nodot":           "",
	} {
		got, err := NormalizeEmail(in)
		if want == "" && err == nil || want != "" && got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
