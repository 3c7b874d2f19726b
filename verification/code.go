package verification

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/candor-en/candor/api"
)

// Hash is the HMAC-SHA256 of a code or API key under the service's secret:
// the only form in which either is stored.
type Hash [32]byte

// MarshalText encodes h as unpadded base64.
func (h Hash) MarshalText() ([]byte, error) {
	return []byte(base64.RawStdEncoding.EncodeToString(h[:])), nil
}

// UnmarshalText decodes unpadded base64 of 32 bytes.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != base64.RawStdEncoding.EncodedLen(len(h)) {
		return fmt.Errorf("hash: not base64 of %d bytes", len(h))
	}
	if _, err := base64.RawStdEncoding.Decode(h[:], b); err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	return nil
}

// CodeKind tells a short code from a long code.
type CodeKind uint8

// Kinds of code.
const (
	ShortCode CodeKind = 1
	LongCode  CodeKind = 2
)

// String returns "short" or "long".
func (k CodeKind) String() string {
	if k == LongCode {
		return "long"
	}
	return "short"
}

// Code is an issued verification code as stored. The short and long codes
// themselves are never stored, only their hashes, and those are cleared when
// the code is claimed or removed after expiry.
type Code struct {
	Realm     string `json:"realm"`
	UUID      string `json:"uuid"`
	ShortHash Hash   `json:"shortHash"`
	LongHash  Hash   `json:"longHash"`
	TestType  string `json:"testType"`
	// SymptomDate and TestDate are YYYY-MM-DD, or empty.
	SymptomDate   string    `json:"symptomDate,omitempty"`
	TestDate      string    `json:"testDate,omitempty"`
	IssuedAt      time.Time `json:"issuedAt"`
	ExpiresAt     time.Time `json:"expiresAt"`
	LongExpiresAt time.Time `json:"longExpiresAt"`
	Claimed       bool      `json:"claimed,omitempty"`
	ClaimedAt     time.Time `json:"claimedAt,omitzero"`
	// IssuedBy is the ID of the admin API key that issued the code.
	IssuedBy string `json:"issuedBy,omitempty"`
}

// ExpiresFor returns when the code of the given kind expires.
func (c *Code) ExpiresFor(kind CodeKind) time.Time {
	if kind == LongCode {
		return c.LongExpiresAt
	}
	return c.ExpiresAt
}

// Hashed reports whether the code can still be redeemed in principle: its
// hashes are stored (not claimed, not removed).
func (c *Code) Hashed() bool { return c.ShortHash != (Hash{}) || c.LongHash != (Hash{}) }

// StoredTimeUnit is the coarseness of every stored time of a code that can
// no longer be redeemed and of a used token: the key server's publish
// window, so that no stored time orders claims or tokens finer than the
// uploads they led to.
const StoredTimeUnit = time.Hour

// Spent returns what is kept of a code once it can no longer be redeemed
// (claimed, or both hashes removed after expiry): what checkcodestatus, the
// UUID check, the code page and the record's retention need. Every time is
// truncated to StoredTimeUnit; the dates (which the keys' days since onset
// would match) and the issuing key are dropped. Counts are in the stats.
func (c *Code) Spent() *Code {
	return &Code{
		Realm:         c.Realm,
		UUID:          c.UUID,
		TestType:      c.TestType,
		IssuedAt:      CoarseTime(c.IssuedAt),
		ExpiresAt:     CoarseTime(c.ExpiresAt),
		LongExpiresAt: CoarseTime(c.LongExpiresAt),
		Claimed:       c.Claimed,
		ClaimedAt:     CoarseTime(c.ClaimedAt),
	}
}

// CoarseTime truncates t to StoredTimeUnit, in UTC; the zero time stays zero.
func CoarseTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Truncate(StoredTimeUnit).UTC()
}

// CoarseTimeAfter rounds t up to StoredTimeUnit: for a time a record must
// be kept until, such as a used token's expiry.
func CoarseTimeAfter(t time.Time) time.Time {
	c := CoarseTime(t)
	if c.Before(t) {
		c = c.Add(StoredTimeUnit)
	}
	return c
}

// Alphabets of the codes.
const (
	shortCodeAlphabet = "0123456789"
	longCodeAlphabet  = "abcdefghijklmnopqrstuvwxyz0123456789"
)

// randomCode draws n symbols independently and uniformly from alphabet,
// reading bytes from r (a CSPRNG). A byte is used only when it is below the
// largest multiple of len(alphabet) that fits in 256, so every symbol has
// exactly the same probability (no modulo bias); other bytes are discarded.
func randomCode(r io.Reader, alphabet string, n int) (string, error) {
	size := len(alphabet)
	limit := 256 - 256%size // 250 for digits, 252 for a-z0-9
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+4)
	for len(out) < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("random code: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, alphabet[int(b)%size])
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}

// normalizeCode turns a typed or linked code into its canonical form:
// surrounding space removed, letters in lower case.
func normalizeCode(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// keyedHash computes HMAC-SHA256 under key of the length-prefixed parts, so
// that different parts can never produce the same input.
func keyedHash(key []byte, parts ...string) Hash {
	m := hmac.New(sha256.New, key)
	var n [4]byte
	for _, p := range parts {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		m.Write(n[:])
		m.Write([]byte(p))
	}
	var h Hash
	m.Sum(h[:0])
	return h
}

// Dates.
const (
	// DateLayout is the format of symptom and test dates: YYYY-MM-DD.
	DateLayout = "2006-01-02"
	// DefaultMaxDateAgeDays is how many days before the issuer's local
	// today a symptom or test date may be.
	DefaultMaxDateAgeDays = 28
	// MinTZOffset and MaxTZOffset bound tzOffset (minutes east of UTC):
	// UTC−12:00 to UTC+14:00, the offsets in use on Earth.
	MinTZOffset = -12 * 60
	MaxTZOffset = 14 * 60
)

// ParseTZOffset checks an issue request's tzOffset (minutes east of UTC; a
// fraction is dropped) and returns it as whole minutes.
func ParseTZOffset(v float64) (int, error) {
	if math.IsNaN(v) || v < MinTZOffset || v > MaxTZOffset {
		return 0, api.Errorf(api.ErrUnparsableRequest, "tzOffset %v: must be minutes east of UTC, %d to %d", v, MinTZOffset, MaxTZOffset)
	}
	return int(v), nil
}

// LocalDay returns the issuer's calendar day at now, as UTC midnight of that
// date: the date of the wall clock at UTC + tzOffset minutes.
func LocalDay(now time.Time, tzOffset int) time.Time {
	local := now.UTC().Add(time.Duration(tzOffset) * time.Minute)
	y, m, d := local.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// ParseDate parses a symptom or test date (YYYY-MM-DD) and checks it against
// the issuer's local day: it may be neither after the issuer's today nor
// more than maxAgeDays before it. Both bounds move with tzOffset: at 23:30
// UTC an issuer at UTC+2 may already give tomorrow's UTC date, and at 00:30
// UTC one at UTC−5 may still give yesterday's date 28 days back. A malformed
// date fails with unparsable_request, one out of range with invalid_date.
// The result is UTC midnight of the date.
func ParseDate(field, s string, now time.Time, tzOffset, maxAgeDays int) (time.Time, error) {
	d, err := time.Parse(DateLayout, s)
	if err != nil {
		return time.Time{}, api.Errorf(api.ErrUnparsableRequest, "%s %q is not a YYYY-MM-DD date", field, truncate(s, 32))
	}
	today := LocalDay(now, tzOffset)
	oldest := today.AddDate(0, 0, -maxAgeDays)
	if d.After(today) {
		return time.Time{}, api.Errorf(api.ErrInvalidDate, "%s %s is after the issuer's today %s", field, s, today.Format(DateLayout))
	}
	if d.Before(oldest) {
		return time.Time{}, api.Errorf(api.ErrInvalidDate, "%s %s is more than %d days before the issuer's today %s", field, s, maxAgeDays, today.Format(DateLayout))
	}
	return d, nil
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// normalizeUUID returns a client UUID in lower case, or an error when it is
// not in the 8-4-4-4-12 hex form.
func normalizeUUID(s string) (string, error) {
	u := strings.ToLower(strings.TrimSpace(s))
	if !uuidRE.MatchString(u) {
		return "", api.Errorf(api.ErrUnparsableRequest, "uuid %q is not a UUID", truncate(s, 40))
	}
	return u, nil
}

// newUUID returns a random UUID (version 4). Not version 7: the UUID is the
// tracking ID a health worker ties to a person, and a millisecond issue time
// inside it would be a fine time in every record and index it keys.
func newUUID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("uuid: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
