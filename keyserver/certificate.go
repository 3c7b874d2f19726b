package keyserver

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/candor-en/candor/api"
)

// verifiedCertificate is what a valid certificate tells the key server.
type verifiedCertificate struct {
	Authority            *HealthAuthority
	ReportType           ReportType
	SymptomOnsetInterval int32
	// HMACKey is the request's decoded hmacKey, which the tekmac matched.
	HMACKey []byte
}

// certificateLeeway tolerates clock skew between verification and key server.
const certificateLeeway = 30 * time.Second

// verifyCertificate checks the certificate of a publish request against the
// app's allowed authorities, and its TEK HMAC against the request's keys.
func (p *Publisher) verifyCertificate(ctx context.Context, app *App, req *api.Publish) (*verifiedCertificate, error) {
	invalid := func(format string, args ...any) error {
		return api.Errorf(api.CodeCertificateInvalid, format, args...)
	}
	if req.VerificationPayload == "" {
		return nil, invalid("verificationPayload is missing")
	}
	var authority *HealthAuthority
	var lookupErr error
	claims := &api.CertificateClaims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(certificateLeeway),
		jwt.WithTimeFunc(p.now),
	)
	_, err := parser.ParseWithClaims(req.VerificationPayload, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("certificate has no kid")
		}
		if !app.Allows(claims.Issuer) {
			return nil, fmt.Errorf("issuer %q is not allowed for app %q", claims.Issuer, app.ID)
		}
		ha, err := p.authorities.HealthAuthority(ctx, claims.Issuer)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				lookupErr = err
			}
			return nil, fmt.Errorf("issuer %q: %w", claims.Issuer, err)
		}
		authority = ha
		key, ok := ha.ActiveKey(kid, p.now())
		if !ok {
			return nil, fmt.Errorf("issuer %q has no active key %q", claims.Issuer, kid)
		}
		pub, err := p.authorities.PublicKey(key)
		if err != nil {
			return nil, err
		}
		return pub, nil
	})
	if lookupErr != nil {
		return nil, &api.Error{Code: api.CodeUnableToLoadHealthAuthority, Message: "loading health authority", Err: lookupErr}
	}
	if err != nil {
		return nil, &api.Error{Code: api.CodeCertificateInvalid, Message: "verification certificate is invalid", Err: err}
	}
	if claims.Audience != authority.Audience {
		return nil, invalid("certificate audience does not match the health authority")
	}
	rt, err := ParseReportType(claims.ReportType)
	if err != nil {
		return nil, invalid("certificate reportType: %v", err)
	}
	secret, err := base64.StdEncoding.DecodeString(req.HMACKey)
	if err != nil || len(secret) == 0 {
		return nil, invalid("hmacKey is not valid base64")
	}
	mac, err := base64.StdEncoding.DecodeString(claims.TEKMAC)
	if err != nil {
		return nil, invalid("certificate tekmac is not valid base64")
	}
	if !api.VerifyTEKMAC(secret, mac, req.Keys) {
		return nil, invalid("certificate tekmac does not match the uploaded keys")
	}
	return &verifiedCertificate{Authority: authority, ReportType: rt, SymptomOnsetInterval: int32(claims.SymptomOnsetInterval), HMACKey: secret}, nil
}

// ecdsaKey is the parsed form of an AuthorityKey, cached by the authority cache.
type ecdsaKey = *ecdsa.PublicKey
