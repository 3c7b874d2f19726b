package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// JWK is one JSON Web Key of an EC P-256 public key: a realm's certificate
// key as the verification service publishes it at JWKSPathPrefix and the
// key server reads it.
type JWK struct {
	KeyID string `json:"kid"`
	Type  string `json:"kty"`
	Curve string `json:"crv"`
	X     string `json:"x"`
	Y     string `json:"y"`
	Alg   string `json:"alg,omitempty"`
	Use   string `json:"use,omitempty"`
}

// JWKS is a standard {"keys": [...]} key set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// NewJWK returns the JWK of an ECDSA P-256 public key.
func NewJWK(kid string, pub *ecdsa.PublicKey) JWK {
	b, _ := pub.Bytes() // 0x04 ‖ X ‖ Y; cannot fail for a valid P-256 key
	return JWK{
		KeyID: kid, Type: "EC", Curve: "P-256", Alg: "ES256", Use: "sig",
		X: base64.RawURLEncoding.EncodeToString(b[1:33]),
		Y: base64.RawURLEncoding.EncodeToString(b[33:65]),
	}
}

// PublicKey decodes the JWK's EC P-256 point.
func (k JWK) PublicKey() (*ecdsa.PublicKey, error) {
	if k.Type != "EC" || k.Curve != "P-256" {
		return nil, fmt.Errorf("jwk %q: not an EC P-256 key", k.KeyID)
	}
	x, err1 := base64.RawURLEncoding.DecodeString(k.X)
	y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
	if err1 != nil || err2 != nil || len(x) > 32 || len(y) > 32 {
		return nil, fmt.Errorf("jwk %q: bad coordinates", k.KeyID)
	}
	point := make([]byte, 65)
	point[0] = 4
	new(big.Int).SetBytes(x).FillBytes(point[1:33])
	new(big.Int).SetBytes(y).FillBytes(point[33:])
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, fmt.Errorf("jwk %q: %w", k.KeyID, err)
	}
	return pub, nil
}

// ParseJWKS accepts the standard {"keys": [...]} form and a bare array.
func ParseJWKS(b []byte) ([]JWK, error) {
	var set JWKS
	if err := json.Unmarshal(b, &set); err == nil && set.Keys != nil {
		return set.Keys, nil
	}
	var arr []JWK
	if err := json.Unmarshal(b, &arr); err != nil {
		return nil, errors.New("jwks: neither {\"keys\":[...]} nor an array of keys")
	}
	return arr, nil
}
