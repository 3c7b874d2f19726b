package keyserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/storage/memory"
)

// SyncJWKS adds keys that appear at the URL and retires keys that vanish;
// the key server then accepts and refuses certificates accordingly.
func TestSyncJWKS(t *testing.T) {
	ctx := context.Background()
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var mu sync.Mutex
	served := []api.JWK{api.NewJWK("v1", &k1.PublicKey)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		json.NewEncoder(w).Encode(api.JWKS{Keys: served})
	}))
	defer srv.Close()

	store := memory.New()
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if _, _, err := keyserver.AddAuthority(ctx, store, keyserver.HealthAuthority{Issuer: "iss", Audience: "aud", JWKSURL: srv.URL}, nil, now); err != nil {
		t.Fatal(err)
	}
	changed, err := keyserver.SyncJWKS(ctx, store, srv.Client(), now)
	if err != nil || len(changed) != 1 {
		t.Fatalf("first sync: %v %v", changed, err)
	}
	ha, _ := store.HealthAuthority(ctx, "iss")
	if _, ok := ha.ActiveKey("v1", now); !ok {
		t.Fatal("v1 not active after sync")
	}
	// Nothing new: no change.
	if changed, _ := keyserver.SyncJWKS(ctx, store, srv.Client(), now.Add(time.Minute)); len(changed) != 0 {
		t.Errorf("unchanged JWKS reported a change")
	}
	// Rotation: v2 appears, v1 disappears.
	mu.Lock()
	served = []api.JWK{api.NewJWK("v2", &k2.PublicKey)}
	mu.Unlock()
	later := now.Add(time.Hour)
	if _, err := keyserver.SyncJWKS(ctx, store, srv.Client(), later); err != nil {
		t.Fatal(err)
	}
	ha, _ = store.HealthAuthority(ctx, "iss")
	if _, ok := ha.ActiveKey("v2", later); !ok {
		t.Error("v2 not active after rotation")
	}
	if _, ok := ha.ActiveKey("v1", later); ok {
		t.Error("v1 still active after it vanished from the JWKS")
	}
	// An unreachable URL is an error, and nothing is retired.
	srv.Close()
	if _, err := keyserver.SyncJWKS(ctx, store, http.DefaultClient, later.Add(time.Hour)); err == nil {
		t.Error("unreachable JWKS: no error")
	}
	ha, _ = store.HealthAuthority(ctx, "iss")
	if _, ok := ha.ActiveKey("v2", later.Add(time.Hour)); !ok {
		t.Error("a failed fetch retired keys")
	}
}

func TestAddAuthorityRefusesKeyChangeUnderSameVersion(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	now := time.Now()
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p1, _ := api.MarshalPublicKeyPEM(&k1.PublicKey)
	p2, _ := api.MarshalPublicKeyPEM(&k2.PublicKey)
	ha := keyserver.HealthAuthority{Issuer: "iss", Audience: "aud"}
	if _, created, err := keyserver.AddAuthority(ctx, store, ha, &keyserver.AuthorityKey{Version: "v1", PEM: p1}, now); err != nil || !created {
		t.Fatal(err)
	}
	if _, _, err := keyserver.AddAuthority(ctx, store, ha, &keyserver.AuthorityKey{Version: "v1", PEM: p1}, now); err != nil {
		t.Errorf("re-adding the same key: %v", err)
	}
	if _, _, err := keyserver.AddAuthority(ctx, store, ha, &keyserver.AuthorityKey{Version: "v1", PEM: p2}, now); err == nil {
		t.Error("another key under an active version accepted")
	}
	if _, err := keyserver.AddApp(ctx, store, "app", "unknown-issuer", "R"); err == nil {
		t.Error("app for an unknown authority accepted")
	}
}
