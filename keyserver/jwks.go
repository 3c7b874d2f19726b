package keyserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/candor-en/candor/api"
)

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

func fetchJWKS(ctx context.Context, client *http.Client, url string) ([]api.JWK, error) {
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
	return api.ParseJWKS(b)
}

// applyJWKS merges a fetched key set into ha and reports whether it changed.
func applyJWKS(ha *HealthAuthority, keys []api.JWK, now time.Time) bool {
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
		pemText, err := api.MarshalPublicKeyPEM(pub)
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
