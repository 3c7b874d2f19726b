package operator

import (
	"context"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyserver"
)

// AuthorityAddRequest trusts a health authority's certificates, by a public
// key or a JWKS URL.
type AuthorityAddRequest struct {
	Issuer       string `json:"issuer"`
	Audience     string `json:"audience"`
	Name         string `json:"name,omitempty"`
	JWKSURL      string `json:"jwksURL,omitempty"`
	KeyVersion   string `json:"keyVersion,omitempty"`
	PublicKeyPEM string `json:"publicKeyPEM,omitempty"`
}

// Validate requires the issuer, the audience and a key or JWKS URL, and a
// key that parses.
func (r AuthorityAddRequest) Validate() error {
	if r.Issuer == "" || r.Audience == "" {
		return Error("--issuer and --audience are required")
	}
	if r.PublicKeyPEM == "" && r.JWKSURL == "" {
		return Error("give --public-key with --key-version, or --jwks-url")
	}
	if r.PublicKeyPEM != "" {
		if r.KeyVersion == "" {
			return Error("--key-version is required with --public-key")
		}
		if _, err := api.ParsePublicKeyPEM(r.PublicKeyPEM); err != nil {
			return Error(err.Error())
		}
	}
	return nil
}

// AuthorityAddResponse is the authority as added or updated.
type AuthorityAddResponse struct {
	Issuer  string `json:"issuer"`
	Created bool   `json:"created"`
	Keys    int    `json:"keys"`
}

// AddAuthority adds a health authority, or updates it and adds its key.
func (s *Services) AddAuthority(ctx context.Context, req AuthorityAddRequest) (AuthorityAddResponse, error) {
	var key *keyserver.AuthorityKey
	if req.PublicKeyPEM != "" {
		key = &keyserver.AuthorityKey{Version: req.KeyVersion, PEM: req.PublicKeyPEM}
	}
	ha, created, err := keyserver.AddAuthority(ctx, s.Authorities, keyserver.HealthAuthority{
		Issuer: req.Issuer, Audience: req.Audience, Name: req.Name, JWKSURL: req.JWKSURL,
	}, key, s.Now())
	if err != nil {
		return AuthorityAddResponse{}, Error(err.Error())
	}
	s.AuthoritiesChanged()
	return AuthorityAddResponse{Issuer: ha.Issuer, Created: created, Keys: len(ha.Keys)}, nil
}

// AppAddRequest lets an app publish with an authority's certificates.
type AppAddRequest struct {
	ID        string `json:"id"`
	Authority string `json:"authority"`
	Region    string `json:"region"`
}

// Validate requires the app and the authority.
func (r AppAddRequest) Validate() error {
	if r.ID == "" || r.Authority == "" {
		return Error("--id and --authority are required")
	}
	return nil
}

// AddApp adds an app, or adds the authority to it.
func (s *Services) AddApp(ctx context.Context, req AppAddRequest) (*keyserver.App, error) {
	app, err := keyserver.AddApp(ctx, s.Authorities, req.ID, req.Authority, req.Region)
	if err != nil {
		return nil, Error(err.Error())
	}
	s.AuthoritiesChanged()
	return app, nil
}
