package operator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/verification"
)

// RealmPolicy are the realm settings an operator may give; nil leaves a
// setting at its default (add) or as it is (set).
type RealmPolicy struct {
	CertificateIssuer   *string        `json:"certificateIssuer,omitempty"`
	CertificateAudience *string        `json:"certificateAudience,omitempty"`
	CertificateLifetime *time.Duration `json:"certificateLifetime,omitempty"`
	AppID               *string        `json:"appID,omitempty"`
	ShortCodeLength     *int           `json:"shortCodeLength,omitempty"`
	ShortCodeLifetime   *time.Duration `json:"shortCodeLifetime,omitempty"`
	LongCodeLength      *int           `json:"longCodeLength,omitempty"`
	LongCodeLifetime    *time.Duration `json:"longCodeLifetime,omitempty"`
	TestTypes           []string       `json:"testTypes,omitempty"`
	DailyQuota          *int           `json:"dailyQuota,omitempty"`
	RequireDate         *bool          `json:"requireDate,omitempty"`
	Maintenance         *bool          `json:"maintenance,omitempty"`
}

// apply sets the settings p gives on r.
func (p *RealmPolicy) apply(r *verification.Realm) {
	set(&r.CertificateIssuer, p.CertificateIssuer)
	set(&r.CertificateAudience, p.CertificateAudience)
	set(&r.AppID, p.AppID)
	set(&r.CertificateLifetime, p.CertificateLifetime)
	set(&r.ShortCodeLength, p.ShortCodeLength)
	set(&r.ShortCodeLifetime, p.ShortCodeLifetime)
	set(&r.LongCodeLength, p.LongCodeLength)
	set(&r.LongCodeLifetime, p.LongCodeLifetime)
	if len(p.TestTypes) > 0 {
		r.TestTypes = p.TestTypes
	}
	set(&r.DailyQuota, p.DailyQuota)
	set(&r.RequireDate, p.RequireDate)
	set(&r.Maintenance, p.Maintenance)
}

// set sets *dst to *v when v is given.
func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// RealmAddRequest is a new realm: its name, region and policy.
type RealmAddRequest struct {
	Name   string `json:"name"`
	Region string `json:"region,omitempty"`
	RealmPolicy
}

// Validate requires the name and the region.
func (r RealmAddRequest) Validate() error {
	if r.Name == "" || r.Region == "" {
		return Error("--name and --region are required")
	}
	return nil
}

// RealmSetRequest changes the policy of realm Name.
type RealmSetRequest RealmAddRequest

// Validate requires the name, and no region: it cannot change.
func (r RealmSetRequest) Validate() error {
	if r.Name == "" {
		return Error("--name is required")
	}
	if r.Region != "" {
		return Error("the region of a realm cannot change")
	}
	return nil
}

// RealmRequest names a realm.
type RealmRequest struct {
	Name string `json:"name"`
}

// Validate accepts every name: an unknown one is found by the service.
func (RealmRequest) Validate() error { return nil }

// RealmInfo is a realm as the operator commands show it.
type RealmInfo struct {
	verification.Realm
	JWKSURL string `json:"jwksURL"`
	// BruteForceBound bounds the chance that clients with one API key, from
	// any number of addresses, guess a given short code within its lifetime.
	BruteForceBound float64 `json:"bruteForceBound"`
}

func (s *Services) realmInfo(r *verification.Realm) RealmInfo {
	return RealmInfo{Realm: *r, JWKSURL: s.PublicURL + api.JWKSPathPrefix + r.Name, BruteForceBound: verification.BruteForceBound(r, s.Verification.KeyLimiter())}
}

// AddRealm creates a realm and trusts it in the built-in key server.
func (s *Services) AddRealm(ctx context.Context, req RealmAddRequest) (RealmInfo, error) {
	r := verification.Realm{Name: req.Name, Region: req.Region, DailyQuota: verification.DefaultDailyQuota}
	req.apply(&r)
	r.Maintenance = false
	realm, err := s.Verification.CreateRealm(ctx, r)
	if err == nil {
		err = s.TrustRealm(ctx, realm)
	}
	if err != nil {
		return RealmInfo{}, Error(err.Error())
	}
	return s.realmInfo(realm), nil
}

// SetRealm changes a realm's policy and trusts it afresh.
func (s *Services) SetRealm(ctx context.Context, req RealmSetRequest) (RealmInfo, error) {
	realm, err := s.Verification.UpdateRealm(ctx, req.Name, func(r *verification.Realm) error {
		req.apply(r)
		return nil
	})
	if err != nil {
		return RealmInfo{}, Error(err.Error())
	}
	if err := s.TrustRealm(ctx, realm); err != nil {
		return RealmInfo{}, err
	}
	return s.realmInfo(realm), nil
}

// ListRealms returns every realm.
func (s *Services) ListRealms(ctx context.Context, _ Empty) ([]RealmInfo, error) {
	realms, err := s.Verification.Realms(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]RealmInfo, 0, len(realms))
	for _, r := range realms {
		out = append(out, s.realmInfo(r))
	}
	return out, nil
}

// RealmKeys are a realm's certificate key versions, the primary last.
type RealmKeys struct {
	Realm string   `json:"realm"`
	Keys  []string `json:"keys"`
}

// RotateRealmKey makes a new certificate signing key primary for a realm.
func (s *Services) RotateRealmKey(ctx context.Context, req RealmRequest) (RealmKeys, error) {
	if err := s.Verification.RotateCertificateKey(ctx, req.Name); err != nil {
		if errors.Is(err, verification.ErrNotFound) {
			return RealmKeys{}, Error(err.Error())
		}
		return RealmKeys{}, err
	}
	r, err := s.Verification.Realm(ctx, req.Name)
	if err != nil {
		return RealmKeys{}, err
	}
	if err := s.TrustRealm(ctx, r); err != nil {
		return RealmKeys{}, err
	}
	keys, err := s.Verification.CertificateKeys(ctx, req.Name)
	if err != nil {
		return RealmKeys{}, err
	}
	out := RealmKeys{Realm: req.Name}
	for _, k := range keys {
		out.Keys = append(out.Keys, k.Version)
	}
	return out, nil
}

// RealmStatsRequest asks for a realm's statistics of the last Days UTC
// days, today included.
type RealmStatsRequest struct {
	Name string `json:"name"`
	Days int    `json:"days"`
}

// Validate accepts every request: fewer than one day means one.
func (RealmStatsRequest) Validate() error { return nil }

// RealmStats returns a realm's statistics per UTC day.
func (s *Services) RealmStats(ctx context.Context, req RealmStatsRequest) ([]verification.DayStats, error) {
	if _, err := s.Verification.Realm(ctx, req.Name); err != nil {
		return nil, Error(err.Error())
	}
	now := s.Now()
	days := max(req.Days, 1)
	st, err := s.Verification.Stats(ctx, req.Name, now.AddDate(0, 0, 1-days), now)
	if err != nil {
		return nil, err
	}
	if st == nil {
		st = []verification.DayStats{}
	}
	return st, nil
}

// APIKeyRequest names a realm's API keys, or one of them (ID).
type APIKeyRequest struct {
	Realm string `json:"realm"`
	Kind  string `json:"kind,omitempty"`
	Name  string `json:"name,omitempty"`
	ID    string `json:"id,omitempty"`
}

// Validate accepts every request: an unknown realm or key is found by the
// service.
func (APIKeyRequest) Validate() error { return nil }

// APIKeyAddRequest is a new API key of a realm: its kind and label.
type APIKeyAddRequest APIKeyRequest

// Validate requires a known kind.
func (r APIKeyAddRequest) Validate() error {
	if _, err := verification.ParseAPIKeyKind(r.Kind); err != nil {
		return Error("--kind: " + err.Error())
	}
	return nil
}

// APIKeyInfo is an API key as the operator commands show it.
type APIKeyInfo struct {
	ID        string    `json:"id"`
	Realm     string    `json:"realm"`
	Kind      string    `json:"kind"`
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	// Secret is set only in the answer to apikey.add.
	Secret string `json:"secret,omitempty"`
}

func newAPIKeyInfo(k *verification.APIKey) APIKeyInfo {
	return APIKeyInfo{ID: k.ID, Realm: k.Realm, Kind: string(k.Kind), Name: k.Name, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}

// AddAPIKey creates an API key; the answer holds its secret, shown once.
func (s *Services) AddAPIKey(ctx context.Context, req APIKeyAddRequest) (APIKeyInfo, error) {
	kind, _ := verification.ParseAPIKeyKind(req.Kind) // checked by Validate
	secret, k, err := s.Verification.CreateAPIKey(ctx, req.Realm, kind, req.Name)
	if err != nil {
		if errors.Is(err, verification.ErrNotFound) {
			return APIKeyInfo{}, Error(err.Error())
		}
		return APIKeyInfo{}, err
	}
	info := newAPIKeyInfo(k)
	info.Secret = secret
	return info, nil
}

// ListAPIKeys returns a realm's API keys, never their secrets.
func (s *Services) ListAPIKeys(ctx context.Context, req APIKeyRequest) ([]APIKeyInfo, error) {
	keys, err := s.Verification.APIKeys(ctx, req.Realm)
	if err != nil {
		return nil, err
	}
	out := make([]APIKeyInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, newAPIKeyInfo(k))
	}
	return out, nil
}

// RevokeAPIKey revokes API key ID of a realm.
func (s *Services) RevokeAPIKey(ctx context.Context, req APIKeyRequest) (APIKeyInfo, error) {
	k, err := s.Verification.RevokeAPIKey(ctx, req.Realm, req.ID)
	if err != nil {
		if errors.Is(err, verification.ErrNotFound) {
			return APIKeyInfo{}, Error(fmt.Sprintf("realm %s has no API key %s", req.Realm, req.ID))
		}
		return APIKeyInfo{}, err
	}
	return newAPIKeyInfo(k), nil
}
