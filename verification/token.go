package verification

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyset"
)

// DefaultTokenLifetime is how long a verification token may be exchanged
// for a certificate.
const DefaultTokenLifetime = 24 * time.Hour

// certificateBackdate is how far iat and nbf of a certificate lie before
// its issuing, for clock skew between this server and the key server.
const certificateBackdate = 5 * time.Second

// Subject is what a verification token attests, its "sub" claim
// "testtype.symptomDate.testDate" (dates YYYY-MM-DD or empty).
type Subject struct {
	TestType    string
	SymptomDate string
	TestDate    string
}

func (s Subject) String() string { return s.TestType + "." + s.SymptomDate + "." + s.TestDate }

// ParseSubject parses a token's "sub" claim.
func ParseSubject(sub string) (Subject, error) {
	parts := strings.Split(sub, ".")
	if len(parts) != 3 {
		return Subject{}, fmt.Errorf("subject %q: want testtype.symptomDate.testDate", truncate(sub, 64))
	}
	s := Subject{TestType: parts[0], SymptomDate: parts[1], TestDate: parts[2]}
	if !ValidTestType(s.TestType) {
		return Subject{}, fmt.Errorf("subject: unknown test type %q", truncate(s.TestType, 32))
	}
	for _, d := range []string{s.SymptomDate, s.TestDate} {
		if d == "" {
			continue
		}
		if _, err := time.Parse(DateLayout, d); err != nil {
			return Subject{}, fmt.Errorf("subject: bad date %q", truncate(d, 32))
		}
	}
	return s, nil
}

// SymptomOnsetInterval is the certificate's symptomOnsetInterval: UTC
// midnight of the symptom date in 10-minute intervals, or 0 without one.
func (s Subject) SymptomOnsetInterval() uint32 {
	d, err := time.Parse(DateLayout, s.SymptomDate)
	if err != nil || d.Unix() <= 0 {
		return 0
	}
	return uint32(d.Unix() / 600)
}

// TokenClaims are the claims of a verification token. Audience is a plain
// string, equal to Issuer (the realm's token issuer).
type TokenClaims struct {
	Issuer    string           `json:"iss"`
	Audience  string           `json:"aud"`
	Subject   string           `json:"sub"`
	ID        string           `json:"jti"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ExpiresAt *jwt.NumericDate `json:"exp"`
}

// GetExpirationTime implements jwt.Claims.
func (c *TokenClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }

// GetIssuedAt implements jwt.Claims.
func (c *TokenClaims) GetIssuedAt() (*jwt.NumericDate, error) { return c.IssuedAt, nil }

// GetNotBefore implements jwt.Claims.
func (c *TokenClaims) GetNotBefore() (*jwt.NumericDate, error) { return nil, nil }

// GetIssuer implements jwt.Claims.
func (c *TokenClaims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims.
func (c *TokenClaims) GetSubject() (string, error) { return c.Subject, nil }

// GetAudience implements jwt.Claims.
func (c *TokenClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// tinkES256 signs JWTs as ES256 with a Tink signer of a
// PurposeECDSAP256P1363 keyset (IEEE P1363 r‖s, no prefix: exactly JWS).
// It is used only for signing; verification uses jwt.SigningMethodES256.
type tinkES256 struct{}

func (tinkES256) Alg() string { return jwt.SigningMethodES256.Alg() }

func (tinkES256) Sign(signingString string, key any) ([]byte, error) {
	s, ok := key.(tink.Signer)
	if !ok {
		return nil, fmt.Errorf("sign: want a tink.Signer, have %T", key)
	}
	sig, err := s.Sign([]byte(signingString))
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if len(sig) != 64 {
		return nil, fmt.Errorf("sign: %d-byte signature, want 64 (IEEE P1363)", len(sig))
	}
	return sig, nil
}

func (tinkES256) Verify(string, []byte, any) error {
	return errors.New("tinkES256 only signs")
}

// signJWT signs claims with the ring's primary key, naming its version in
// the "kid" header.
func signJWT(ring *keyset.Ring, claims jwt.Claims) (string, error) {
	signer, pub, err := ring.SignerWithKey()
	if err != nil {
		return "", err
	}
	tok := jwt.NewWithClaims(tinkES256{}, claims)
	tok.Header["kid"] = pub.Version
	s, err := tok.SignedString(signer)
	if err != nil {
		return "", fmt.Errorf("keyset %s: %w", ring.Name(), err)
	}
	return s, nil
}

// newToken returns the signed verification token for a claimed code.
func newToken(ring *keyset.Ring, r *Realm, sub Subject, jti string, now time.Time, lifetime time.Duration) (string, error) {
	return signJWT(ring, &TokenClaims{
		Issuer:    r.TokenIssuer,
		Audience:  r.TokenIssuer,
		Subject:   sub.String(),
		ID:        jti,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(lifetime)),
	})
}

// maxJTILength bounds the jti of tokens this server accepts.
const maxJTILength = 64

// parseToken verifies a verification token of realm r against the ring's
// keys (selected by kid) and returns its claims and subject. A token that is
// malformed, signed by another key (another realm's, say) or for another
// issuer fails with token_invalid; an expired one with token_expired.
func parseToken(ring *keyset.Ring, r *Realm, raw string, now func() time.Time) (*TokenClaims, Subject, error) {
	claims := &TokenClaims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(r.TokenIssuer),
		jwt.WithAudience(r.TokenIssuer),
		jwt.WithTimeFunc(now),
	)
	_, err := parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		return publicKey(ring, t)
	})
	if errors.Is(err, jwt.ErrTokenExpired) {
		return nil, Subject{}, &api.Error{Code: api.ErrTokenExpired, Message: "the verification token has expired", Err: err}
	}
	if err != nil {
		return nil, Subject{}, &api.Error{Code: api.ErrTokenInvalid, Message: "the verification token is invalid", Err: err}
	}
	if claims.ID == "" || len(claims.ID) > maxJTILength {
		return nil, Subject{}, api.Errorf(api.ErrTokenInvalid, "the verification token has no valid jti")
	}
	sub, err := ParseSubject(claims.Subject)
	if err != nil {
		return nil, Subject{}, &api.Error{Code: api.ErrTokenInvalid, Message: "the verification token's subject is invalid", Err: err}
	}
	return claims, sub, nil
}

// publicKey returns the ring's public key named by the token's kid.
func publicKey(ring *keyset.Ring, t *jwt.Token) (*ecdsa.PublicKey, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("no kid")
	}
	keys, err := ring.PublicKeys()
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.Version == kid {
			return k.Public, nil
		}
	}
	return nil, fmt.Errorf("unknown kid %q", truncate(kid, 16))
}

// newCertificate returns the signed verification certificate: claims
// reportType, tekmac (exactly as the phone sent it), symptomOnsetInterval
// when the code had a symptom date, iss and aud (a plain string) of the
// realm, iat = nbf = now − 5 s and exp = now + the realm's certificate
// lifetime; header kid = the signing key's version.
func newCertificate(ring *keyset.Ring, r *Realm, sub Subject, tekmac string, now time.Time) (string, error) {
	back := jwt.NewNumericDate(now.Add(-certificateBackdate))
	return signJWT(ring, &api.CertificateClaims{
		ReportType:           sub.TestType,
		SymptomOnsetInterval: sub.SymptomOnsetInterval(),
		TEKMAC:               tekmac,
		Issuer:               r.CertificateIssuer,
		Audience:             r.CertificateAudience,
		IssuedAt:             back,
		NotBefore:            back,
		ExpiresAt:            jwt.NewNumericDate(now.Add(r.CertificateLifetime)),
	})
}

// jwks returns the ring's public keys as a JWKS, every key it still keeps:
// the primary and retired keys whose certificates may still be valid.
func jwks(ring *keyset.Ring) (*api.JWKS, error) {
	keys, err := ring.PublicKeys()
	if err != nil {
		return nil, err
	}
	set := &api.JWKS{Keys: make([]api.JWK, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, api.NewJWK(k.Version, k.Public))
	}
	return set, nil
}
