package keyset

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/key"
	tinkkeyset "github.com/tink-crypto/tink-go/v2/keyset"
	tinkecdsa "github.com/tink-crypto/tink-go/v2/signature/ecdsa"
)

// ECDSAPublicKey returns the public half of a Tink ECDSA key, which may be a
// *ecdsa.PublicKey or *ecdsa.PrivateKey of tink-go's signature/ecdsa package.
func ECDSAPublicKey(k key.Key) (*ecdsa.PublicKey, error) {
	if priv, ok := k.(*tinkecdsa.PrivateKey); ok {
		pk, err := priv.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("keyset: ecdsa public key: %w", err)
		}
		k = pk
	}
	pub, ok := k.(*tinkecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("keyset: ecdsa public key: not a Tink ECDSA key: %T", k)
	}
	params, ok := pub.Parameters().(*tinkecdsa.Parameters)
	if !ok {
		return nil, fmt.Errorf("keyset: ecdsa public key: unexpected parameters %T", pub.Parameters())
	}
	var curve elliptic.Curve
	switch params.CurveType() {
	case tinkecdsa.NistP256:
		curve = elliptic.P256()
	case tinkecdsa.NistP384:
		curve = elliptic.P384()
	case tinkecdsa.NistP521:
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("keyset: ecdsa public key: unsupported curve %v", params.CurveType())
	}
	out, err := ecdsa.ParseUncompressedPublicKey(curve, pub.PublicPoint())
	if err != nil {
		return nil, fmt.Errorf("keyset: ecdsa public key: %w", err)
	}
	return out, nil
}

// ECDSAPublicKeys returns the public keys of every key in a Tink keyset handle
// of ECDSA keys (private or public), by Tink key ID.
func ECDSAPublicKeys(h *tinkkeyset.Handle) (map[uint32]*ecdsa.PublicKey, error) {
	if h == nil {
		return nil, errors.New("keyset: ecdsa public keys: nil handle")
	}
	// Public() avoids handing private keys around; a handle that is already
	// public fails it and is used as is.
	if pub, err := h.Public(); err == nil {
		h = pub
	}
	out := make(map[uint32]*ecdsa.PublicKey, h.Len())
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil {
			return nil, fmt.Errorf("keyset: ecdsa public keys: %w", err)
		}
		pk, err := ECDSAPublicKey(e.Key())
		if err != nil {
			return nil, fmt.Errorf("keyset: key %d: %w", e.KeyID(), err)
		}
		out[e.KeyID()] = pk
	}
	return out, nil
}
