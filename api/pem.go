package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// PublicKeyPEMType is the PEM block type of every public key Candor
// publishes or accepts: a PKIX SubjectPublicKeyInfo.
const PublicKeyPEMType = "PUBLIC KEY"

// ParsePublicKeyPEM parses the first PEM block of s, which must be a
// "PUBLIC KEY" holding an ECDSA P-256 key: the form of export signing keys,
// certificate keys in the log, and health authorities' keys.
func ParsePublicKeyPEM(s string) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != PublicKeyPEMType {
		return nil, errors.New("public key: no PEM \"PUBLIC KEY\" block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("public key: not an ECDSA P-256 key")
	}
	return ec, nil
}

// MarshalPublicKeyPEM encodes an ECDSA public key as a PEM "PUBLIC KEY",
// the form ParsePublicKeyPEM reads.
func MarshalPublicKeyPEM(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: PublicKeyPEMType, Bytes: der})), nil
}
