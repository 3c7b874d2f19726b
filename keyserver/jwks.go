package keyserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"
)

// JWK is one JSON Web Key of an EC P-256 public key.
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

// SyncJWKS fetches the JWKS URL of every authority that has one, adds keys
// it does not know yet and retires active keys that disappeared. It returns
// the issuers that changed.
func SyncJWKS(ctx context.Context, store AuthorityStore, client *http.Client, now time.Time) ([]string, error) {
	all, err := store.HealthAuthorities(ctx)
	if err != nil {
		return nil, fmt.Errorf("jwks sync: %w", err)
	}
	var changed []string
	var errs []error
	for _, ha := range all {
		if ha.JWKSURL == "" {
			continue
		}
		keys, err := fetchJWKS(ctx, client, ha.JWKSURL)
		if err != nil {
			errs = append(errs, fmt.Errorf("jwks %s: %w", ha.Issuer, err))
			continue
		}
		if applyJWKS(ha, keys, now) {
			if err := store.PutHealthAuthority(ctx, ha); err != nil {
				errs = append(errs, err)
				continue
			}
			changed = append(changed, ha.Issuer)
		}
	}
	return changed, errors.Join(errs...)
}

func fetchJWKS(ctx context.Context, client *http.Client, url string) ([]JWK, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	return ParseJWKS(b)
}

// applyJWKS merges a fetched key set into ha and reports whether it changed.
func applyJWKS(ha *HealthAuthority, keys []JWK, now time.Time) bool {
	changed := false
	present := map[string]bool{}
	for _, k := range keys {
		pub, err := k.PublicKey()
		if err != nil || k.KeyID == "" {
			continue
		}
		present[k.KeyID] = true
		if _, ok := ha.ActiveKey(k.KeyID, now); ok {
			continue
		}
		pemText, err := MarshalPublicKey(pub)
		if err != nil {
			continue
		}
		ha.Keys = append(ha.Keys, AuthorityKey{Version: k.KeyID, PEM: pemText, From: now.Add(-time.Minute)})
		changed = true
	}
	for i := range ha.Keys {
		k := &ha.Keys[i]
		if k.Thru.IsZero() && !present[k.Version] {
			k.Thru = now
			changed = true
		}
	}
	return changed
}
