package account

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// TOTP parameters (RFC 6238 with the defaults every authenticator app
// supports): HMAC-SHA1, 30-second steps, 6 digits, 20-byte secrets.
const (
	TOTPPeriod     = 30 * time.Second
	TOTPDigits     = 6
	TOTPSecretSize = 20
	// TOTPSkew is how many steps before and after now are accepted, for
	// clocks that drift.
	TOTPSkew = 1
)

// TOTPStep returns the RFC 6238 time step of t.
func TOTPStep(t time.Time) int64 { return t.Unix() / int64(TOTPPeriod/time.Second) }

// TOTPCode returns the code of secret at time step step with digits digits
// (RFC 4226 HOTP over the step counter, HMAC-SHA1).
func TOTPCode(secret []byte, step int64, digits int) string {
	mac := hmac.New(sha1.New, secret)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// CheckTOTP returns the step (within TOTPSkew of now) whose code is code and
// that is after lastStep, or false. Accepting only steps after the last one
// used makes every code single use.
func CheckTOTP(secret []byte, code string, now time.Time, lastStep int64) (int64, bool) {
	code = strings.Join(strings.Fields(code), "")
	if len(code) != TOTPDigits {
		return 0, false
	}
	cur := TOTPStep(now)
	found, ok := int64(0), false
	for s := cur - TOTPSkew; s <= cur+TOTPSkew; s++ {
		// Compare every candidate (no early exit) in constant time.
		if hmac.Equal([]byte(TOTPCode(secret, s, TOTPDigits)), []byte(code)) && s > lastStep {
			found, ok = s, true
		}
	}
	return found, ok
}

// TOTPSecretText is the secret as authenticator apps take it typed in:
// base32 without padding, in groups of four.
func TOTPSecretText(secret []byte) string {
	s := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
	var parts []string
	for len(s) > 4 {
		parts, s = append(parts, s[:4]), s[4:]
	}
	return strings.Join(append(parts, s), " ")
}

// TOTPURI is the otpauth:// URI of secret for account (an email) at issuer,
// which authenticator apps read from a QR code.
func TOTPURI(issuer, account string, secret []byte) string {
	v := url.Values{}
	v.Set("secret", base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret))
	v.Set("issuer", issuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", fmt.Sprint(TOTPDigits))
	v.Set("period", fmt.Sprint(int(TOTPPeriod/time.Second)))
	return "otpauth://totp/" + url.PathEscape(issuer) + ":" + url.PathEscape(account) + "?" + v.Encode()
}
