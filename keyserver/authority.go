package keyserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/candor-en/candor/api"
)

// ErrNotFound is returned by stores when a record does not exist.
var ErrNotFound = errors.New("not found")

// HealthAuthority is an issuer of verification certificates the key server
// trusts: certificates whose "iss" equals Issuer must carry "aud" Audience and
// be signed by one of Keys, selected by the JWT "kid" header.
type HealthAuthority struct {
	Issuer   string
	Audience string
	Name     string
	// JWKSURL, when set, is polled for Keys; keys missing from it are retired.
	JWKSURL string
	Keys    []AuthorityKey
}

// AuthorityKey is one version of a health authority's certificate signing key.
type AuthorityKey struct {
	Version string
	// PEM is the PKIX public key, "-----BEGIN PUBLIC KEY-----".
	PEM  string
	From time.Time
	// Thru, when not zero, ends the key's validity (it was retired).
	Thru time.Time
}

// ActiveKey returns the key with the given version that is valid at now.
func (h *HealthAuthority) ActiveKey(version string, now time.Time) (*AuthorityKey, bool) {
	for i := range h.Keys {
		k := &h.Keys[i]
		if k.Version != version {
			continue
		}
		if now.Before(k.From) || (!k.Thru.IsZero() && !now.Before(k.Thru)) {
			continue
		}
		return k, true
	}
	return nil, false
}

// Validate checks the authority's fields.
func (h *HealthAuthority) Validate() error {
	if strings.TrimSpace(h.Issuer) == "" {
		return errors.New("health authority: issuer is required")
	}
	if strings.TrimSpace(h.Audience) == "" {
		return errors.New("health authority: audience is required")
	}
	seen := map[string]bool{}
	for _, k := range h.Keys {
		if k.Version == "" {
			return fmt.Errorf("health authority %s: key version is required", h.Issuer)
		}
		if seen[k.Version] && k.Thru.IsZero() {
			return fmt.Errorf("health authority %s: key version %q twice", h.Issuer, k.Version)
		}
		seen[k.Version] = true
		if _, err := api.ParsePublicKeyPEM(k.PEM); err != nil {
			return fmt.Errorf("health authority %s key %s: %w", h.Issuer, k.Version, err)
		}
	}
	return nil
}

// App is an application allowed to publish: the healthAuthorityID a phone
// sends, the certificate issuers it may present, and the region its keys
// are exported under.
type App struct {
	// ID is the healthAuthorityID of publish requests, e.g. "com.example.app".
	ID string
	// Authorities lists the certificate issuers accepted for this app.
	Authorities []string
	Region      string
}

// Validate checks the app's fields.
func (a *App) Validate() error {
	if strings.TrimSpace(a.ID) == "" {
		return errors.New("app: id is required")
	}
	if len(a.Authorities) == 0 {
		return fmt.Errorf("app %s: at least one authority is required", a.ID)
	}
	if strings.TrimSpace(a.Region) == "" {
		return fmt.Errorf("app %s: region is required", a.ID)
	}
	return nil
}

// Allows reports whether certificates from issuer may authorise uploads for the app.
func (a *App) Allows(issuer string) bool {
	for _, iss := range a.Authorities {
		if iss == issuer {
			return true
		}
	}
	return false
}

// AuthorityStore keeps health authorities and apps.
//
// Lookups return ErrNotFound for unknown names. Put operations replace the
// whole record.
type AuthorityStore interface {
	HealthAuthority(ctx context.Context, issuer string) (*HealthAuthority, error)
	HealthAuthorities(ctx context.Context) ([]*HealthAuthority, error)
	PutHealthAuthority(ctx context.Context, h *HealthAuthority) error
	App(ctx context.Context, id string) (*App, error)
	Apps(ctx context.Context) ([]*App, error)
	PutApp(ctx context.Context, a *App) error
}
