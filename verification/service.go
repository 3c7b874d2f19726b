package verification

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/verification/account"
)

// Defaults of Options.
const (
	// DefaultExpiredCodeGrace is how long after expiry a code's hash is kept
	// so that the app hears code_expired rather than code_invalid.
	DefaultExpiredCodeGrace = time.Hour
	// DefaultCodeStatusRetention is how long after its long code's expiry a
	// code's record (UUID, claimed, expiry times; no code) is kept for
	// checkcodestatus and UUID idempotency.
	DefaultCodeStatusRetention = 48 * time.Hour
	// DefaultTokenKeyRotation is how often a realm's token signing key rotates.
	DefaultTokenKeyRotation = 30 * 24 * time.Hour
)

// maxIssueAttempts bounds how often Issue draws new codes after collisions.
const maxIssueAttempts = 8

// Options configure a Service. Zero fields take the defaults.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Rand is the source of codes, API keys, UUIDs and token IDs; crypto/rand
	// when nil. It must be a CSPRNG outside tests.
	Rand io.Reader
	// LinkBase returns the public base URL (scheme and host, no trailing
	// slash) of long-code links: LinkBase() + "/v?c=" + long code.
	LinkBase func() string
	// Limiter bounds failed redemptions per client (Caller.Client), and
	// KeyLimiter, a much larger ceiling, per API key; in-memory
	// AttemptLimiters with the defaults when nil.
	Limiter    FailureLimiter
	KeyLimiter FailureLimiter
	// TokenLifetime is how long a verification token is valid (24 h).
	TokenLifetime time.Duration
	// MaxDateAgeDays is how far back symptom and test dates may lie (28).
	MaxDateAgeDays int
	// ExpiredCodeGrace and CodeStatusRetention: see their defaults.
	ExpiredCodeGrace    time.Duration
	CodeStatusRetention time.Duration
	// CertificateKeyRotation is how often a realm's certificate signing key
	// rotates; 0 (the default) rotates only on request. See the docs on
	// key servers that poll the JWKS.
	CertificateKeyRotation time.Duration
	// TokenKeyRotation is how often a realm's token signing key rotates.
	TokenKeyRotation time.Duration
	// Auditor records the admin actions (realms, policy, API keys, expired
	// codes) in the internal audit list, whichever door they came through;
	// nothing is recorded when nil.
	Auditor Auditor
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.LinkBase == nil {
		o.LinkBase = func() string { return "http://127.0.0.1:8080" }
	}
	if o.Limiter == nil {
		o.Limiter = NewAttemptLimiter(DefaultFailureBurst, DefaultFailureInterval, o.Now)
	}
	if o.KeyLimiter == nil {
		o.KeyLimiter = NewAttemptLimiter(DefaultKeyFailureBurst, DefaultKeyFailureInterval, o.Now)
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = DefaultTokenLifetime
	}
	if o.MaxDateAgeDays <= 0 {
		o.MaxDateAgeDays = DefaultMaxDateAgeDays
	}
	if o.ExpiredCodeGrace < 0 {
		o.ExpiredCodeGrace = 0
	} else if o.ExpiredCodeGrace == 0 {
		o.ExpiredCodeGrace = DefaultExpiredCodeGrace
	}
	if o.CodeStatusRetention <= 0 {
		o.CodeStatusRetention = DefaultCodeStatusRetention
	}
	if o.TokenKeyRotation <= 0 {
		o.TokenKeyRotation = DefaultTokenKeyRotation
	}
	return o
}

// Service is the verification service: realms, API keys, codes, tokens and
// certificates over a Store, with signing keys in Tink keysets. It is safe
// for concurrent use.
type Service struct {
	store  Store
	keys   keyset.Store
	master tink.AEAD
	opts   Options

	codeKey   []byte // HMAC key of codes
	apiKeyKey []byte // HMAC key of API keys
	invalid   attemptCounter

	mu    sync.Mutex
	rings map[string]*realmKeys
}

// realmKeys are the signing keysets of one realm.
type realmKeys struct {
	certificate *keyset.Ring
	token       *keyset.Ring
}

// hmacSecretName names the sealed HMAC secret in the SecretStore, and
// secretsRing the AEAD keyset that seals it.
const (
	hmacSecretName = "hmac"
	secretsRing    = "verification/secrets"
	hmacSecretAD   = "candor verification hmac secret v1"
)

// New returns a Service over store, keeping signing keys in keys encrypted
// under master. On first use it creates the 32-byte HMAC secret of codes and
// API keys, sealed by the "verification/secrets" AEAD keyset; codes and keys
// are hashed under subkeys derived from it with HKDF-SHA256. The secret never
// rotates: every stored hash depends on it.
func New(ctx context.Context, store Store, keys keyset.Store, master tink.AEAD, opts Options) (*Service, error) {
	opts = opts.withDefaults()
	ring, err := keyset.Open(ctx, keys, master, secretsRing, keyset.PurposeAEAD, keyset.Options{Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("verification: secrets keyset: %w", err)
	}
	aead, err := ring.AEAD()
	if err != nil {
		return nil, fmt.Errorf("verification: secrets keyset: %w", err)
	}
	blob, err := store.SealedSecret(ctx, hmacSecretName, func() ([]byte, error) {
		secret := make([]byte, 32)
		if _, err := io.ReadFull(rand.Reader, secret); err != nil {
			return nil, err
		}
		return aead.Encrypt(secret, []byte(hmacSecretAD))
	})
	if err != nil {
		return nil, fmt.Errorf("verification: HMAC secret: %w", err)
	}
	secret, err := aead.Decrypt(blob, []byte(hmacSecretAD))
	if err != nil {
		return nil, fmt.Errorf("verification: open HMAC secret (wrong master key?): %w", err)
	}
	s := &Service{store: store, keys: keys, master: master, opts: opts, rings: map[string]*realmKeys{}}
	if s.codeKey, err = hkdf.Key(sha256.New, secret, nil, "candor verification code v1", 32); err != nil {
		return nil, fmt.Errorf("verification: derive code key: %w", err)
	}
	if s.apiKeyKey, err = hkdf.Key(sha256.New, secret, nil, "candor verification api key v1", 32); err != nil {
		return nil, fmt.Errorf("verification: derive API key key: %w", err)
	}
	return s, nil
}

func (s *Service) now() time.Time { return s.opts.Now() }

// Limiter returns the service's failure limiter per client.
func (s *Service) Limiter() FailureLimiter { return s.opts.Limiter }

// KeyLimiter returns the service's failure ceiling per API key.
func (s *Service) KeyLimiter() FailureLimiter { return s.opts.KeyLimiter }

// codeHash is the stored form of a code of realm.
func (s *Service) codeHash(realm, code string) Hash { return keyedHash(s.codeKey, realm, code) }

// keysFor returns the realm's signing keysets, opening (on first use,
// creating) them.
func (s *Service) keysFor(ctx context.Context, realm string) (*realmKeys, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.rings[realm]; ok {
		return k, nil
	}
	cert, err := keyset.Open(ctx, s.keys, s.master, "verification/realm/"+realm+"/certificate", keyset.PurposeECDSAP256P1363, keyset.Options{
		RotateAfter: s.opts.CertificateKeyRotation,
		// Certificates live at most MaxCertificateLifetime; keep retired
		// keys (and publish them in the JWKS) an hour longer.
		RetainFor: MaxCertificateLifetime + time.Hour,
		Now:       s.opts.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("realm %s: certificate keys: %w", realm, err)
	}
	tok, err := keyset.Open(ctx, s.keys, s.master, "verification/realm/"+realm+"/token", keyset.PurposeECDSAP256P1363, keyset.Options{
		RotateAfter: s.opts.TokenKeyRotation,
		RetainFor:   s.opts.TokenLifetime + time.Hour,
		Now:         s.opts.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("realm %s: token keys: %w", realm, err)
	}
	k := &realmKeys{certificate: cert, token: tok}
	s.rings[realm] = k
	return k, nil
}

// ---- Realms and API keys (operators) ----

// CreateRealm validates r (after WithDefaults), stores it and creates its
// certificate and token signing keys.
func (s *Service) CreateRealm(ctx context.Context, r Realm) (*Realm, error) {
	r = r.WithDefaults()
	r.Maintenance = false
	r.CreatedAt = s.now().UTC()
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := s.store.CreateRealm(ctx, &r); err != nil {
		if errors.Is(err, ErrExists) {
			return nil, fmt.Errorf("realm %s already exists", r.Name)
		}
		return nil, fmt.Errorf("create realm %s: %w", r.Name, err)
	}
	if _, err := s.keysFor(ctx, r.Name); err != nil {
		return nil, err
	}
	if err := s.audit(ctx, "", account.ActionRealmAdd, r.Name, "region "+r.Region); err != nil {
		return nil, err
	}
	return &r, nil
}

// UpdateRealm applies fn to the realm called name, validates and stores the
// result. The name cannot change.
func (s *Service) UpdateRealm(ctx context.Context, name string, fn func(*Realm) error) (*Realm, error) {
	var old Realm
	r, err := s.store.UpdateRealm(ctx, name, func(r *Realm) error {
		old = *r
		old.TestTypes = slices.Clone(r.TestTypes)
		if err := fn(r); err != nil {
			return err
		}
		r.Name = name
		return r.Validate()
	})
	if err != nil {
		return nil, fmt.Errorf("update realm %s: %w", name, err)
	}
	if d := policyDiff(&old, r); d != "" {
		if err := s.audit(ctx, r.Name, account.ActionRealmPolicy, r.Name, d); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Realm returns the realm called name (ErrNotFound).
func (s *Service) Realm(ctx context.Context, name string) (*Realm, error) {
	r, err := s.store.Realm(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("realm %s: %w", name, err)
	}
	return r, nil
}

// Realms returns every realm.
func (s *Service) Realms(ctx context.Context) ([]*Realm, error) {
	rs, err := s.store.Realms(ctx)
	if err != nil {
		return nil, fmt.Errorf("realms: %w", err)
	}
	return rs, nil
}

// CreateAPIKey creates an API key of kind for the realm and returns its
// secret — shown this once, stored only as its hash — and the stored key.
func (s *Service) CreateAPIKey(ctx context.Context, realm string, kind APIKeyKind, name string) (string, *APIKey, error) {
	if _, err := ParseAPIKeyKind(string(kind)); err != nil {
		return "", nil, err
	}
	if _, err := s.Realm(ctx, realm); err != nil {
		return "", nil, err
	}
	secret, id, err := newAPIKeySecret(s.opts.Rand, kind)
	if err != nil {
		return "", nil, err
	}
	k := &APIKey{ID: id, Realm: realm, Kind: kind, Name: name, Hash: keyedHash(s.apiKeyKey, secret), CreatedAt: s.now().UTC()}
	if err := s.store.CreateAPIKey(ctx, k); err != nil {
		return "", nil, fmt.Errorf("create API key: %w", err)
	}
	if err := s.audit(ctx, realm, account.ActionAPIKeyAdd, k.ID, keyDetail(k)); err != nil {
		return "", nil, err
	}
	return secret, k, nil
}

// APIKeys returns the realm's API keys (without secrets).
func (s *Service) APIKeys(ctx context.Context, realm string) ([]*APIKey, error) {
	ks, err := s.store.APIKeys(ctx, realm)
	if err != nil {
		return nil, fmt.Errorf("API keys of %s: %w", realm, err)
	}
	return ks, nil
}

// RevokeAPIKey revokes the realm's API key id at once.
func (s *Service) RevokeAPIKey(ctx context.Context, realm, id string) (*APIKey, error) {
	k, err := s.store.RevokeAPIKey(ctx, realm, id, s.now().UTC())
	if err != nil {
		return nil, fmt.Errorf("revoke API key %s of %s: %w", id, realm, err)
	}
	if err := s.audit(ctx, realm, account.ActionAPIKeyRevoke, k.ID, keyDetail(k)); err != nil {
		return nil, err
	}
	return k, nil
}

// Caller is an authenticated API client: its key and the key's realm.
type Caller struct {
	Realm *Realm
	Key   *APIKey
	// Client identifies the client for the failed-redemption budget: the
	// HMAC of its address under the day's key, set by the HTTP handler.
	// Callers without one (in process) count as one client per API key.
	Client string
}

// Authenticate returns the caller whose API key secret is secret; the key
// must be of kind and not revoked. Every failure is unauthorized (401) with
// the same message, so it tells nothing about which keys exist.
func (s *Service) Authenticate(ctx context.Context, secret string, kind APIKeyKind) (*Caller, error) {
	unauthorized := api.Errorf(api.ErrUnauthorized, "a valid %s API key is required in the %s header", kind, api.APIKeyHeader)
	if secret == "" || len(secret) > 256 {
		return nil, unauthorized
	}
	k, err := s.store.APIKey(ctx, keyedHash(s.apiKeyKey, secret))
	if errors.Is(err, ErrNotFound) {
		return nil, unauthorized
	}
	if err != nil {
		return nil, internal("loading API key", err)
	}
	if k.Revoked() || k.Kind != kind {
		return nil, unauthorized
	}
	r, err := s.store.Realm(ctx, k.Realm)
	if errors.Is(err, ErrNotFound) {
		return nil, unauthorized
	}
	if err != nil {
		return nil, internal("loading realm", err)
	}
	return &Caller{Realm: r, Key: k}, nil
}

func checkMaintenance(r *Realm) error {
	if r.Maintenance {
		return api.Errorf(api.ErrMaintenanceMode, "the realm is in maintenance; try again later")
	}
	return nil
}

// ---- Device API ----

// Verified is the outcome of a redeemed code.
type Verified struct {
	TestType    string
	SymptomDate string
	TestDate    string
	// Token is the verification token, an ES256 JWT.
	Token string
}

// Verify redeems a short or long code for a verification token. The code is
// single use: it is claimed atomically, so of concurrent redemptions exactly
// one succeeds. Errors: invalid_test_type (an unknown accept entry),
// rate_limited, code_invalid (unknown, used, or removed after expiry),
// code_expired, unsupported_test_type (the code's type is not accepted;
// the code stays unclaimed), maintenance_mode.
func (s *Service) Verify(ctx context.Context, c *Caller, req *api.VerifyCodeRequest) (*Verified, error) {
	r := c.Realm
	if err := checkMaintenance(r); err != nil {
		return nil, err
	}
	accept, err := ParseAccept(req.AcceptTestTypes)
	if err != nil {
		return nil, err
	}
	return s.redeem(ctx, c, normalizeCode(req.VerificationCode), accept)
}

// reserveAttempt takes one attempt from the caller's client budget, then
// one from its API key's ceiling; refund gives both back.
func (s *Service) reserveAttempt(c *Caller) (refund func(), err error) {
	client := "client:" + c.Client
	if c.Client == "" {
		client = "client:key:" + c.Key.ID
	}
	key := "key:" + c.Key.ID
	if ok, wait := s.opts.Limiter.Reserve(client); !ok {
		return nil, &api.Error{Code: api.ErrRateLimited, Message: "too many failed attempts; try again later", RetryAfter: wait}
	}
	if ok, wait := s.opts.KeyLimiter.Reserve(key); !ok {
		s.opts.Limiter.Refund(client)
		return nil, &api.Error{Code: api.ErrRateLimited, Message: "too many failed attempts; try again later", RetryAfter: wait}
	}
	return func() {
		s.opts.Limiter.Refund(client)
		s.opts.KeyLimiter.Refund(key)
	}, nil
}

// redeem looks the code up, signs a token and claims the code. The failure
// limiter guards the lookup, which is where a guess is tested: an attempt is
// reserved before it and given back when the code exists, so the bound holds
// however many requests run at once, while signing and claiming, the slow
// part, hold no attempt.
func (s *Service) redeem(ctx context.Context, c *Caller, code string, accept AcceptSet) (*Verified, error) {
	r := c.Realm
	invalid := api.Errorf(api.ErrVerifyCodeInvalid, "the verification code is invalid or was already used")
	expired := api.Errorf(api.ErrVerifyCodeExpired, "the verification code has expired")
	refund, err := s.reserveAttempt(c)
	if err != nil {
		return nil, err
	}
	now := s.now()
	fail := func(e *api.Error) (*Verified, error) {
		s.invalid.add(r.Name, now) // the attempt stays spent
		return nil, e
	}
	if code == "" || len(code) > MaxLongCodeLength {
		return fail(invalid)
	}
	h := s.codeHash(r.Name, code)
	found, kind, err := s.store.FindCode(ctx, r.Name, h)
	if errors.Is(err, ErrNotFound) {
		return fail(invalid)
	}
	if err != nil {
		refund()
		return nil, internal("finding code", err)
	}
	if !now.Before(found.ExpiresFor(kind)) {
		return fail(expired)
	}
	refund() // a hit: the guess did not fail
	if !accept.Accepts(found.TestType) {
		return nil, api.Errorf(api.ErrUnsupportedTestType, "the app does not accept test type %s; it may need an update", found.TestType)
	}
	keys, err := s.keysFor(ctx, r.Name)
	if err != nil {
		return nil, internal("token keys", err)
	}
	jti, err := randomID(s.opts.Rand)
	if err != nil {
		return nil, internal("token id", err)
	}
	sub := Subject{TestType: found.TestType, SymptomDate: found.SymptomDate, TestDate: found.TestDate}
	// Sign before claiming: a failure leaves the code unclaimed.
	token, err := newToken(keys.token, r, sub, jti, now, s.opts.TokenLifetime)
	if err != nil {
		return nil, internal("signing token", err)
	}
	switch _, err := s.store.ClaimCode(ctx, r.Name, h, now); {
	case errors.Is(err, ErrNotFound):
		return nil, invalid // claimed by a concurrent redemption
	case errors.Is(err, ErrExpired):
		return nil, expired
	case err != nil:
		return nil, internal("claiming code", err)
	}
	return &Verified{TestType: sub.TestType, SymptomDate: sub.SymptomDate, TestDate: sub.TestDate, Token: token}, nil
}

// randomID returns 16 random bytes as unpadded URL-safe base64.
func randomID(r io.Reader) (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Certificate exchanges a verification token and the HMAC of the phone's
// keys for a signed certificate. The token is single use: it is claimed
// atomically after the certificate is signed, so of concurrent exchanges
// exactly one succeeds. Errors: token_invalid (malformed, forged, another
// realm's), token_expired (expired or already used), hmac_invalid (not
// standard base64 of 32 bytes), maintenance_mode.
func (s *Service) Certificate(ctx context.Context, c *Caller, req *api.VerificationCertificateRequest) (string, error) {
	r := c.Realm
	if err := checkMaintenance(r); err != nil {
		return "", err
	}
	keys, err := s.keysFor(ctx, r.Name)
	if err != nil {
		return "", internal("realm keys", err)
	}
	claims, sub, err := parseToken(keys.token, r, req.VerificationToken, s.opts.Now)
	if err != nil {
		return "", err
	}
	// The key server decodes tekmac as standard base64, so only that is accepted.
	mac, err := base64.StdEncoding.DecodeString(req.ExposureKeyHMAC)
	if err != nil {
		return "", api.Errorf(api.ErrHMACInvalid, "ekeyhmac is not standard base64")
	}
	if len(mac) != sha256.Size {
		return "", api.Errorf(api.ErrHMACInvalid, "ekeyhmac is %d bytes, want %d", len(mac), sha256.Size)
	}
	now := s.now()
	cert, err := newCertificate(keys.certificate, r, sub, req.ExposureKeyHMAC, now)
	if err != nil {
		return "", internal("signing certificate", err)
	}
	switch err := s.store.ClaimToken(ctx, r.Name, claims.ID, claims.ExpiresAt.Time, now); {
	case errors.Is(err, ErrUsed):
		return "", api.Errorf(api.ErrTokenExpired, "the verification token was already used")
	case err != nil:
		return "", internal("claiming token", err)
	}
	return cert, nil
}

// ---- Admin API ----

// Issued is a newly issued code. Code and LongCode exist only here: the
// store keeps their hashes.
type Issued struct {
	UUID          string
	Code          string
	LongCode      string
	LongCodeLink  string
	ExpiresAt     time.Time
	LongExpiresAt time.Time
}

// Issue issues a short and a long code for one person. Errors:
// invalid_test_type, unsupported_test_type (the realm does not issue it),
// unparsable_request (malformed date, tzOffset or UUID), invalid_date,
// missing_date, uuid_already_exists, quota_exceeded, maintenance_mode.
func (s *Service) Issue(ctx context.Context, c *Caller, req *api.IssueCodeRequest) (*Issued, error) {
	r := c.Realm
	if err := checkMaintenance(r); err != nil {
		return nil, err
	}
	now := s.now()
	tt := strings.ToLower(strings.TrimSpace(req.TestType))
	if !ValidTestType(tt) {
		return nil, api.Errorf(api.ErrInvalidTestType, "testType %q: must be one of %s", truncate(req.TestType, 32), allTestTypes)
	}
	if !r.Issues(tt) {
		return nil, api.Errorf(api.ErrUnsupportedTestType, "this realm does not issue %s codes", tt)
	}
	tz, err := ParseTZOffset(req.TZOffset)
	if err != nil {
		return nil, err
	}
	dates := [2]string{}
	for i, d := range []struct{ field, value string }{{"symptomDate", req.SymptomDate}, {"testDate", req.TestDate}} {
		if strings.TrimSpace(d.value) == "" {
			continue
		}
		t, err := ParseDate(d.field, strings.TrimSpace(d.value), now, tz, s.opts.MaxDateAgeDays)
		if err != nil {
			return nil, err
		}
		dates[i] = t.Format(DateLayout)
	}
	if r.RequireDate && dates[0] == "" && dates[1] == "" {
		return nil, api.Errorf(api.ErrMissingDate, "this realm requires a symptomDate or testDate")
	}
	var uuid string
	if strings.TrimSpace(req.UUID) != "" {
		if uuid, err = normalizeUUID(req.UUID); err != nil {
			return nil, err
		}
	} else if uuid, err = newUUID(s.opts.Rand); err != nil {
		return nil, internal("uuid", err)
	}
	for range maxIssueAttempts {
		short, err := randomCode(s.opts.Rand, shortCodeAlphabet, r.ShortCodeLength)
		if err != nil {
			return nil, internal("code", err)
		}
		long, err := randomCode(s.opts.Rand, longCodeAlphabet, r.LongCodeLength)
		if err != nil {
			return nil, internal("code", err)
		}
		code := &Code{
			Realm:         r.Name,
			UUID:          uuid,
			ShortHash:     s.codeHash(r.Name, short),
			LongHash:      s.codeHash(r.Name, long),
			TestType:      tt,
			SymptomDate:   dates[0],
			TestDate:      dates[1],
			IssuedAt:      now.UTC(),
			ExpiresAt:     now.Add(r.ShortCodeLifetime).UTC(),
			LongExpiresAt: now.Add(r.LongCodeLifetime).UTC(),
			IssuedBy:      c.Key.ID,
		}
		switch err := s.store.IssueCode(ctx, code, r.DailyQuota); {
		case err == nil:
			return &Issued{
				UUID: uuid, Code: short, LongCode: long,
				LongCodeLink: s.opts.LinkBase() + api.LongCodeLinkPath + "?c=" + long,
				ExpiresAt:    code.ExpiresAt, LongExpiresAt: code.LongExpiresAt,
			}, nil
		case errors.Is(err, ErrCollision):
			continue
		case errors.Is(err, ErrExists):
			return nil, api.Errorf(api.ErrUUIDAlreadyExists, "a code with uuid %s was already issued", uuid)
		case errors.Is(err, ErrQuotaExceeded):
			return nil, api.Errorf(api.ErrQuotaExceeded, "the realm issued its daily quota of %d codes", r.DailyQuota)
		default:
			return nil, internal("storing code", err)
		}
	}
	return nil, internal("issuing code", fmt.Errorf("%d collisions in a row", maxIssueAttempts))
}

// IssueResult is one code of a batch: Issued or Err.
type IssueResult struct {
	Issued *Issued
	Err    error
}

// BatchIssue issues up to api.MaxBatchIssue codes, each as Issue would; one
// failing does not stop the others. An empty or too large batch fails as a
// whole with unparsable_request.
func (s *Service) BatchIssue(ctx context.Context, c *Caller, req *api.BatchIssueCodeRequest) ([]IssueResult, error) {
	if err := checkMaintenance(c.Realm); err != nil {
		return nil, err
	}
	if n := len(req.Codes); n == 0 || n > api.MaxBatchIssue {
		return nil, api.Errorf(api.ErrUnparsableRequest, "a batch holds 1 to %d codes, not %d", api.MaxBatchIssue, n)
	}
	out := make([]IssueResult, len(req.Codes))
	for i, one := range req.Codes {
		if one == nil {
			out[i].Err = api.Errorf(api.ErrUnparsableRequest, "code %d is null", i)
			continue
		}
		out[i].Issued, out[i].Err = s.Issue(ctx, c, one)
	}
	return out, nil
}

// CodeStatus returns the realm's code with the UUID; code_not_found (404)
// when there is none (never issued, or removed after its retention).
func (s *Service) CodeStatus(ctx context.Context, c *Caller, uuid string) (*Code, error) {
	if err := checkMaintenance(c.Realm); err != nil {
		return nil, err
	}
	u, err := s.lookupUUID(uuid)
	if err != nil {
		return nil, err
	}
	code, err := s.store.CodeByUUID(ctx, c.Realm.Name, u)
	if errors.Is(err, ErrNotFound) {
		return nil, api.Errorf(api.ErrVerifyCodeNotFound, "no code with this uuid; it may have expired and been removed")
	}
	if err != nil {
		return nil, internal("loading code", err)
	}
	return code, nil
}

// ExpireCode expires the realm's code with the UUID now. Errors:
// code_not_found, code_invalid (already claimed), code_expired (already
// expired).
func (s *Service) ExpireCode(ctx context.Context, c *Caller, uuid string) (*Code, error) {
	if err := checkMaintenance(c.Realm); err != nil {
		return nil, err
	}
	u, err := s.lookupUUID(uuid)
	if err != nil {
		return nil, err
	}
	code, err := s.store.ExpireCode(ctx, c.Realm.Name, u, s.now().UTC())
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, api.Errorf(api.ErrVerifyCodeNotFound, "no code with this uuid; it may have expired and been removed")
	case errors.Is(err, ErrClaimed):
		return nil, api.Errorf(api.ErrVerifyCodeInvalid, "the code was already claimed")
	case errors.Is(err, ErrExpired):
		return nil, api.Errorf(api.ErrVerifyCodeExpired, "the code has already expired")
	case err != nil:
		return nil, internal("expiring code", err)
	}
	if _, ok := ActorFromContext(ctx); !ok {
		ctx = NewContextWithActor(ctx, account.Actor{Name: "API key " + c.Key.ID})
	}
	if err := s.audit(ctx, c.Realm.Name, account.ActionCodeExpire, code.UUID, ""); err != nil {
		return nil, internal("expiring code", err)
	}
	return code, nil
}

func (s *Service) lookupUUID(uuid string) (string, error) {
	if strings.TrimSpace(uuid) == "" {
		return "", api.Errorf(api.ErrUnparsableRequest, "uuid is required")
	}
	u, err := normalizeUUID(uuid)
	if err != nil {
		// Not a UUID: certainly not a code of ours.
		return "", api.Errorf(api.ErrVerifyCodeNotFound, "no code with this uuid")
	}
	return u, nil
}

// ---- Keys, statistics, housekeeping ----

// CertificateKeys returns the public keys of the realm's certificate
// keyset, oldest first: the primary and the retired keys still kept.
func (s *Service) CertificateKeys(ctx context.Context, realm string) ([]keyset.PublicKey, error) {
	if _, err := s.Realm(ctx, realm); err != nil {
		return nil, err
	}
	keys, err := s.keysFor(ctx, realm)
	if err != nil {
		return nil, err
	}
	return keys.certificate.PublicKeys()
}

// JWKS returns the realm's certificate public keys as a standard JWKS, for
// key servers to verify its certificates; ErrNotFound for an unknown realm.
func (s *Service) JWKS(ctx context.Context, realm string) (*api.JWKS, error) {
	if _, err := s.store.Realm(ctx, realm); err != nil {
		return nil, err
	}
	keys, err := s.keysFor(ctx, realm)
	if err != nil {
		return nil, err
	}
	return jwks(keys.certificate)
}

// RotateCertificateKey makes a new certificate signing key primary for the
// realm at once; the old key stays published until its certificates expire.
func (s *Service) RotateCertificateKey(ctx context.Context, realm string) error {
	if _, err := s.Realm(ctx, realm); err != nil {
		return err
	}
	keys, err := s.keysFor(ctx, realm)
	if err != nil {
		return err
	}
	return keys.certificate.Rotate(ctx)
}

// MaintainKeys rotates and destroys the realms' signing keys as their
// rotation settings say, and returns the realms whose certificate key set
// changed (new primary or a key destroyed): key servers must learn of them.
func (s *Service) MaintainKeys(ctx context.Context) ([]string, error) {
	realms, err := s.Realms(ctx)
	if err != nil {
		return nil, err
	}
	var changed []string
	var errs []error
	for _, r := range realms {
		keys, err := s.keysFor(ctx, r.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rotated, destroyed, err := keys.certificate.Maintain(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("realm %s certificate keys: %w", r.Name, err))
		} else if rotated || len(destroyed) > 0 {
			changed = append(changed, r.Name)
		}
		if _, _, err := keys.token.Maintain(ctx); err != nil {
			errs = append(errs, fmt.Errorf("realm %s token keys: %w", r.Name, err))
		}
	}
	return changed, errors.Join(errs...)
}

// Stats returns the realm's counts for the UTC days from through to.
func (s *Service) Stats(ctx context.Context, realm string, from, to time.Time) ([]DayStats, error) {
	if err := s.FlushStats(ctx); err != nil {
		return nil, err
	}
	st, err := s.store.Stats(ctx, realm, from, to)
	if err != nil {
		return nil, fmt.Errorf("stats of %s: %w", realm, err)
	}
	return st, nil
}

// FlushStats writes the invalid-attempt counts buffered in memory.
func (s *Service) FlushStats(ctx context.Context) error {
	var errs []error
	for k, n := range s.invalid.take() {
		if err := s.store.AddStats(ctx, k.realm, k.day, Stats{InvalidAttempts: n}); err != nil {
			s.invalid.putBack(k, n)
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("flush stats: %w", err)
	}
	return nil
}

// Cleanup is what housekeeping removed.
type Cleanup struct {
	CodeHashes  int
	CodeRecords int
	Tokens      int
}

// Cleanup removes the hashes of codes expired more than ExpiredCodeGrace
// ago, code records past CodeStatusRetention, and used tokens that expired;
// it also flushes buffered statistics. Run it every minute or so.
func (s *Service) Cleanup(ctx context.Context) (Cleanup, error) {
	now := s.now()
	var res Cleanup
	var err1, err2 error
	res.CodeHashes, res.CodeRecords, err1 = s.store.RemoveExpiredCodes(ctx, now.Add(-s.opts.ExpiredCodeGrace), now.Add(-s.opts.CodeStatusRetention))
	res.Tokens, err2 = s.store.RemoveExpiredTokens(ctx, now)
	for _, l := range []FailureLimiter{s.opts.Limiter, s.opts.KeyLimiter} {
		if l, ok := l.(*AttemptLimiter); ok {
			l.Sweep()
		}
	}
	err := errors.Join(err1, err2, s.FlushStats(ctx))
	if err != nil {
		return res, fmt.Errorf("verification cleanup: %w", err)
	}
	return res, nil
}
