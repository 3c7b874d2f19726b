package verification

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/candor-en/candor/api"
)

// Defaults of a realm's code and certificate policy.
const (
	DefaultShortCodeLength     = 8
	DefaultShortCodeLifetime   = 15 * time.Minute
	DefaultLongCodeLength      = 16
	DefaultLongCodeLifetime    = 24 * time.Hour
	DefaultDailyQuota          = 10000
	DefaultCertificateLifetime = 15 * time.Minute
	// DefaultCertificateAudience is the audience the key server expects.
	DefaultCertificateAudience = "candor-keyserver"
)

// Limits of a realm's policy.
const (
	MinShortCodeLength     = 6
	MaxShortCodeLength     = 16
	MinLongCodeLength      = 12
	MaxLongCodeLength      = 64
	MaxShortCodeLifetime   = time.Hour
	MaxLongCodeLifetime    = 24 * time.Hour
	MinCodeLifetime        = time.Minute
	MinCertificateLifetime = time.Minute
	MaxCertificateLifetime = 24 * time.Hour
)

// allTestTypes lists every test type for messages.
const allTestTypes = "confirmed, likely, negative, user-report"

// DefaultTestTypes are the test types a new realm issues.
func DefaultTestTypes() []string {
	return []string{api.TestTypeConfirmed, api.TestTypeLikely, api.TestTypeNegative}
}

// ValidTestType reports whether t names a test type.
func ValidTestType(t string) bool {
	switch t {
	case api.TestTypeConfirmed, api.TestTypeLikely, api.TestTypeNegative, api.TestTypeUserReport:
		return true
	}
	return false
}

// Realm is one health authority that issues verification codes: its code
// policy, and the issuer, audience and lifetime of its certificates. Its
// signing keys are keysets named after it (see Service).
type Realm struct {
	// Name identifies the realm in URLs (/jwks/{name}) and commands:
	// lower-case letters, digits and dashes.
	Name string `json:"name"`
	// Region is the region the realm's uploads are exported under, e.g. US-WA.
	Region string `json:"region"`

	ShortCodeLength   int           `json:"shortCodeLength"`
	ShortCodeLifetime time.Duration `json:"shortCodeLifetime"`
	LongCodeLength    int           `json:"longCodeLength"`
	LongCodeLifetime  time.Duration `json:"longCodeLifetime"`
	// TestTypes are the test types the realm issues.
	TestTypes []string `json:"testTypes"`
	// DailyQuota bounds the codes issued per UTC day; 0 means no bound
	// (`candor admin realm add` gives DefaultDailyQuota unless told).
	DailyQuota int `json:"dailyQuota"`
	// RequireDate refuses codes without a symptom or test date.
	RequireDate bool `json:"requireDate,omitempty"`

	// CertificateIssuer and CertificateAudience are the certificate's iss
	// and aud; the key server selects the health authority by iss.
	CertificateIssuer   string        `json:"certificateIssuer"`
	CertificateAudience string        `json:"certificateAudience"`
	CertificateLifetime time.Duration `json:"certificateLifetime"`
	// TokenIssuer is the iss and aud of the realm's verification tokens.
	TokenIssuer string `json:"tokenIssuer"`
	// AppID is the healthAuthorityID under which the built-in key server
	// accepts this realm's certificates.
	AppID string `json:"appID"`

	// Maintenance makes every API of the realm answer maintenance_mode.
	Maintenance bool      `json:"maintenance,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
}

// WithDefaults returns r with every unset policy field at its default:
// issuer "candor/<name>", token issuer "candor/<name>/token", app ID
// "<region in lower case>.candor.app".
func (r Realm) WithDefaults() Realm {
	r.Name = strings.TrimSpace(r.Name)
	r.Region = strings.ToUpper(strings.TrimSpace(r.Region))
	setInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	setStr := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	setInt(&r.ShortCodeLength, DefaultShortCodeLength)
	setDur(&r.ShortCodeLifetime, DefaultShortCodeLifetime)
	setInt(&r.LongCodeLength, DefaultLongCodeLength)
	setDur(&r.LongCodeLifetime, DefaultLongCodeLifetime)
	setDur(&r.CertificateLifetime, DefaultCertificateLifetime)
	if len(r.TestTypes) == 0 {
		r.TestTypes = DefaultTestTypes()
	}
	setStr(&r.CertificateIssuer, "candor/"+r.Name)
	setStr(&r.CertificateAudience, DefaultCertificateAudience)
	setStr(&r.TokenIssuer, "candor/"+r.Name+"/token")
	setStr(&r.AppID, strings.ToLower(r.Region)+".candor.app")
	return r
}

var (
	realmNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	regionRE    = regexp.MustCompile(`^[A-Z0-9][A-Z0-9_-]{0,31}$`)
)

// Validate checks the realm's fields against the limits above.
func (r *Realm) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !realmNameRE.MatchString(r.Name) {
		bad("name %q: use 1-63 lower-case letters, digits and dashes", r.Name)
	}
	if !regionRE.MatchString(r.Region) {
		bad("region %q: use 1-32 upper-case letters, digits, dashes and underscores", r.Region)
	}
	if r.ShortCodeLength < MinShortCodeLength || r.ShortCodeLength > MaxShortCodeLength {
		bad("short code length %d: must be %d to %d", r.ShortCodeLength, MinShortCodeLength, MaxShortCodeLength)
	}
	if r.LongCodeLength < MinLongCodeLength || r.LongCodeLength > MaxLongCodeLength {
		bad("long code length %d: must be %d to %d", r.LongCodeLength, MinLongCodeLength, MaxLongCodeLength)
	}
	if r.ShortCodeLifetime < MinCodeLifetime || r.ShortCodeLifetime > MaxShortCodeLifetime {
		bad("short code lifetime %v: must be %v to %v", r.ShortCodeLifetime, MinCodeLifetime, MaxShortCodeLifetime)
	}
	if r.LongCodeLifetime < r.ShortCodeLifetime || r.LongCodeLifetime > MaxLongCodeLifetime {
		bad("long code lifetime %v: must be the short code's (%v) to %v", r.LongCodeLifetime, r.ShortCodeLifetime, MaxLongCodeLifetime)
	}
	if len(r.TestTypes) == 0 {
		bad("at least one test type is required")
	}
	for _, t := range r.TestTypes {
		if !ValidTestType(t) {
			bad("test type %q: must be one of %s", t, allTestTypes)
		}
	}
	if r.DailyQuota < 0 {
		bad("daily quota %d: must be 0 (no bound) or more", r.DailyQuota)
	}
	if r.CertificateLifetime < MinCertificateLifetime || r.CertificateLifetime > MaxCertificateLifetime {
		bad("certificate lifetime %v: must be %v to %v", r.CertificateLifetime, MinCertificateLifetime, MaxCertificateLifetime)
	}
	for name, v := range map[string]string{"certificate issuer": r.CertificateIssuer, "certificate audience": r.CertificateAudience, "token issuer": r.TokenIssuer, "app ID": r.AppID} {
		if strings.TrimSpace(v) == "" || len(v) > 255 {
			bad("%s %q: must be 1 to 255 characters", name, v)
		}
	}
	if r.TokenIssuer == r.CertificateIssuer {
		bad("token issuer must differ from the certificate issuer")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("realm %s: %w", r.Name, err)
	}
	return nil
}

// Issues reports whether the realm issues codes of test type t.
func (r *Realm) Issues(t string) bool { return slices.Contains(r.TestTypes, t) }

// AcceptSet is the set of test types an app accepts in /api/verify. The zero
// value accepts every type.
type AcceptSet struct {
	all   bool
	types map[string]bool
}

// Accepts reports whether a code of test type t may be redeemed.
func (a AcceptSet) Accepts(t string) bool { return a.all || a.types[t] }

// ParseAccept expands the accept list of a verify request: empty accepts
// everything; confirmed → {confirmed}; likely → {confirmed, likely};
// negative → {confirmed, likely, negative}; user-report → {confirmed,
// user-report}; a list is the union of its members' expansions. An unknown
// name fails with invalid_test_type.
func ParseAccept(accept []string) (AcceptSet, error) {
	if len(accept) == 0 {
		return AcceptSet{all: true}, nil
	}
	set := AcceptSet{types: map[string]bool{}}
	for _, raw := range accept {
		t := strings.ToLower(strings.TrimSpace(raw))
		switch t {
		case api.TestTypeConfirmed:
			set.types[api.TestTypeConfirmed] = true
		case api.TestTypeLikely:
			set.types[api.TestTypeConfirmed], set.types[api.TestTypeLikely] = true, true
		case api.TestTypeNegative:
			set.types[api.TestTypeConfirmed], set.types[api.TestTypeLikely], set.types[api.TestTypeNegative] = true, true, true
		case api.TestTypeUserReport:
			set.types[api.TestTypeConfirmed], set.types[api.TestTypeUserReport] = true, true
		default:
			return AcceptSet{}, api.Errorf(api.ErrInvalidTestType, "accept: unknown test type %q", truncate(raw, 32))
		}
	}
	return set, nil
}

// truncate shortens untrusted text echoed in error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
