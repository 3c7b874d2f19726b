package api

import "github.com/golang-jwt/jwt/v5"

// CertificateClaims are the claims of a verification certificate: the
// verification service issues them and the key server checks them (so does
// the Google reference's). Audience is a plain string: an array audience is
// rejected. TEKMAC is the base64 of TEKMAC over the keys the phone will
// upload, exactly as the phone sent it.
type CertificateClaims struct {
	ReportType           string           `json:"reportType"`
	SymptomOnsetInterval uint32           `json:"symptomOnsetInterval,omitempty"`
	TEKMAC               string           `json:"tekmac"`
	Issuer               string           `json:"iss"`
	Audience             string           `json:"aud"`
	ExpiresAt            *jwt.NumericDate `json:"exp,omitempty"`
	NotBefore            *jwt.NumericDate `json:"nbf,omitempty"`
	IssuedAt             *jwt.NumericDate `json:"iat,omitempty"`
}

// GetExpirationTime returns the "exp" claim, for jwt.Claims.
func (c *CertificateClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }

// GetIssuedAt returns the "iat" claim, for jwt.Claims.
func (c *CertificateClaims) GetIssuedAt() (*jwt.NumericDate, error) { return c.IssuedAt, nil }

// GetNotBefore returns the "nbf" claim, for jwt.Claims.
func (c *CertificateClaims) GetNotBefore() (*jwt.NumericDate, error) { return c.NotBefore, nil }

// GetIssuer returns the "iss" claim, for jwt.Claims.
func (c *CertificateClaims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject returns "": certificates name no subject.
func (c *CertificateClaims) GetSubject() (string, error) { return "", nil }

// GetAudience returns the "aud" claim as a one-element list, for jwt.Claims.
func (c *CertificateClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}
