package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"

	"github.com/candor-en/candor/api"
)

func TestJWKRoundTrip(t *testing.T) {
	for range 20 { // coordinates with leading zero bytes must survive
		priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		jwk := api.NewJWK("k", &priv.PublicKey)
		pub, err := jwk.PublicKey()
		if err != nil || !pub.Equal(&priv.PublicKey) {
			t.Fatalf("round trip: %v", err)
		}
	}
	if _, err := (api.JWK{Type: "RSA"}).PublicKey(); err == nil {
		t.Error("RSA JWK accepted")
	}
	if _, err := (api.JWK{Type: "EC", Curve: "P-256", X: "AAAA", Y: "AAAA"}).PublicKey(); err == nil {
		t.Error("point not on the curve accepted")
	}
}

func TestParseJWKSForms(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k := api.NewJWK("v1", &priv.PublicKey)
	std, _ := json.Marshal(api.JWKS{Keys: []api.JWK{k}})
	bare, _ := json.Marshal([]api.JWK{k})
	for name, b := range map[string][]byte{"standard": std, "bare array": bare} {
		keys, err := api.ParseJWKS(b)
		if err != nil || len(keys) != 1 || keys[0].KeyID != "v1" {
			t.Errorf("%s: %v %v", name, keys, err)
		}
	}
	if _, err := api.ParseJWKS([]byte(`"nope"`)); err == nil {
		t.Error("a string parsed as a JWKS")
	}
}
