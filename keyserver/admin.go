package keyserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/candor-en/candor/api"
)

// AddAuthority creates the health authority issuer or updates it: the
// audience and JWKS URL are replaced when given, and key (when not nil) is
// added as a new version. Re-adding an identical key version is a no-op; a
// different key under an existing active version is refused.
func AddAuthority(ctx context.Context, store AuthorityStore, h HealthAuthority, key *AuthorityKey, now time.Time) (*HealthAuthority, bool, error) {
	cur, err := store.HealthAuthority(ctx, h.Issuer)
	created := false
	switch {
	case errors.Is(err, ErrNotFound):
		cur, created = &HealthAuthority{Issuer: h.Issuer}, true
	case err != nil:
		return nil, false, err
	}
	if h.Audience != "" {
		cur.Audience = h.Audience
	}
	if h.Name != "" {
		cur.Name = h.Name
	}
	if h.JWKSURL != "" {
		cur.JWKSURL = h.JWKSURL
	}
	if key != nil {
		if key.From.IsZero() {
			key.From = now
		}
		if k, ok := cur.ActiveKey(key.Version, now); ok {
			if !samePEM(k.PEM, key.PEM) {
				return nil, false, fmt.Errorf("health authority %s: key version %q already exists with another key", h.Issuer, key.Version)
			}
		} else {
			cur.Keys = append(cur.Keys, *key)
		}
	}
	if err := cur.Validate(); err != nil {
		return nil, false, err
	}
	if err := store.PutHealthAuthority(ctx, cur); err != nil {
		return nil, false, err
	}
	return cur, created, nil
}

func samePEM(a, b string) bool {
	ka, err1 := api.ParsePublicKeyPEM(a)
	kb, err2 := api.ParsePublicKeyPEM(b)
	return err1 == nil && err2 == nil && ka.Equal(kb)
}

// AddApp creates the app id or adds authority to its allowed issuers. The
// authority must exist. Region, when given, replaces the app's region.
func AddApp(ctx context.Context, store AuthorityStore, id, authority, region string) (*App, error) {
	if _, err := store.HealthAuthority(ctx, authority); err != nil {
		return nil, fmt.Errorf("app %s: authority %q: %w", id, authority, err)
	}
	app, err := store.App(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		app = &App{ID: id}
	case err != nil:
		return nil, err
	}
	if !slices.Contains(app.Authorities, authority) {
		app.Authorities = append(app.Authorities, authority)
	}
	if region != "" {
		app.Region = region
	}
	if err := app.Validate(); err != nil {
		return nil, err
	}
	if err := store.PutApp(ctx, app); err != nil {
		return nil, err
	}
	return app, nil
}
