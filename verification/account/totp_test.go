package account

import (
	"testing"
	"time"
)

// RFC 6238 appendix B, SHA-1 rows: the secret is the ASCII of
// "12345678901234567890"; the RFC prints 8 digits, of which 6-digit codes
// are the last six.
func TestTOTPRFC6238Vectors(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, v := range []struct {
		unix int64
		code string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		step := TOTPStep(time.Unix(v.unix, 0))
		if got := TOTPCode(secret, step, 8); got != v.code {
			t.Errorf("T=%d: 8 digits %s, want %s", v.unix, got, v.code)
		}
		if got := TOTPCode(secret, step, 6); got != v.code[2:] {
			t.Errorf("T=%d: 6 digits %s, want %s", v.unix, got, v.code[2:])
		}
	}
}

func TestCheckTOTP(t *testing.T) {
	secret := []byte("12345678901234567890")
	now := time.Unix(1111111111, 0)
	step := TOTPStep(now)
	for _, tc := range []struct {
		name string
		code string
		last int64
		ok   bool
		want int64
	}{
		{"current", TOTPCode(secret, step, 6), 0, true, step},
		{"with spaces", TOTPCode(secret, step, 6)[:3] + " " + TOTPCode(secret, step, 6)[3:], 0, true, step},
		{"previous step (clock drift)", TOTPCode(secret, step-1, 6), 0, true, step - 1},
		{"next step", TOTPCode(secret, step+1, 6), 0, true, step + 1},
		{"two steps old", TOTPCode(secret, step-2, 6), 0, false, 0},
		{"replayed", TOTPCode(secret, step, 6), step, false, 0},
		{"older than the last used", TOTPCode(secret, step-1, 6), step, false, 0},
		{"wrong", "000000", 0, TOTPCode(secret, step, 6) == "000000", step},
		{"too short", "12345", 0, false, 0},
	} {
		got, ok := CheckTOTP(secret, tc.code, now, tc.last)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("%s: CheckTOTP = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestTOTPURI(t *testing.T) {
	got := TOTPURI("Candor", "ana@example.org", []byte("12345678901234567890"))
	want := "otpauth://totp/Candor:ana@example.org?algorithm=SHA1&digits=6&issuer=Candor&period=30&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	if got != want {
		t.Errorf("TOTPURI =\n%s\nwant\n%s", got, want)
	}
	if got := TOTPSecretText([]byte("12345678901234567890")); got != "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ" {
		t.Errorf("TOTPSecretText = %q", got)
	}
}
