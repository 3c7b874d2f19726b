package verification

import (
	"context"
	"errors"
	"time"
)

// Errors a Store returns; the service turns them into API errors.
var (
	// ErrNotFound: no such realm, API key or code — or, from ClaimCode, a
	// code that was already claimed.
	ErrNotFound = errors.New("verification: not found")
	// ErrExists: a realm with the name, or a code with the UUID, exists.
	ErrExists = errors.New("verification: already exists")
	// ErrCollision: a new code's hash is already indexed in the realm; draw
	// new codes and try again.
	ErrCollision = errors.New("verification: code collision")
	// ErrQuotaExceeded: the realm issued its daily quota of codes.
	ErrQuotaExceeded = errors.New("verification: daily quota exceeded")
	// ErrExpired: the code has expired.
	ErrExpired = errors.New("verification: expired")
	// ErrClaimed: the code was already claimed.
	ErrClaimed = errors.New("verification: already claimed")
	// ErrUsed: the verification token was already exchanged.
	ErrUsed = errors.New("verification: token already used")
)

// Store is everything the verification service keeps. Implementations:
// storage/bolt (embedded) and storage/redis (shared by replicas). Every
// method is safe for concurrent use; a nil error from a write means it is
// durable.
type Store interface {
	RealmStore
	APIKeyStore
	CodeStore
	TokenStore
	StatsStore
	SecretStore
}

// RealmStore keeps realms by name.
type RealmStore interface {
	// CreateRealm stores a new realm; ErrExists when the name is taken.
	CreateRealm(ctx context.Context, r *Realm) error
	// UpdateRealm atomically applies fn to the stored realm and stores the
	// result, which it returns. ErrNotFound for an unknown name; when fn
	// fails nothing is written and its error is returned. fn may run more
	// than once and must depend only on its argument.
	UpdateRealm(ctx context.Context, name string, fn func(*Realm) error) (*Realm, error)
	// Realm returns the realm called name, or ErrNotFound.
	Realm(ctx context.Context, name string) (*Realm, error)
	// Realms returns every realm, by name.
	Realms(ctx context.Context) ([]*Realm, error)
}

// APIKeyStore keeps API keys, found by the hash of their secret.
type APIKeyStore interface {
	// CreateAPIKey stores k; ErrExists when a key with its hash exists.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// APIKey returns the key whose secret hashes to h, or ErrNotFound.
	APIKey(ctx context.Context, h Hash) (*APIKey, error)
	// APIKeys returns the realm's keys, revoked ones included.
	APIKeys(ctx context.Context, realm string) ([]*APIKey, error)
	// RevokeAPIKey marks the realm's key id revoked at at (unless it already
	// is) and returns it; ErrNotFound for an unknown id.
	RevokeAPIKey(ctx context.Context, realm, id string, at time.Time) (*APIKey, error)
}

// CodeStore keeps verification codes: records by realm and UUID, and an
// index from each short and long code hash to its record.
//
// Single use is the store's job: ClaimCode is an atomic check-and-mark, so of
// any number of concurrent redemptions of one code exactly one succeeds.
type CodeStore interface {
	// IssueCode atomically stores c and indexes its ShortHash and LongHash in
	// c.Realm, and counts it as issued in the stats of c.IssuedAt's UTC day.
	// It writes nothing and fails with ErrExists when the realm has a code
	// with c.UUID, ErrCollision when either hash is already indexed in the
	// realm, or ErrQuotaExceeded when quota > 0 and the realm has already
	// issued quota codes that UTC day.
	IssueCode(ctx context.Context, c *Code, quota int) error
	// FindCode returns the code of realm whose short or long hash is h and
	// which of the two matched; ErrNotFound when none. It writes nothing.
	FindCode(ctx context.Context, realm string, h Hash) (*Code, CodeKind, error)
	// ClaimCode atomically redeems the code of realm whose hash is h: when
	// it is indexed, unclaimed and its matched kind has not expired at now,
	// it is marked claimed at now, both its hashes are removed from the
	// index and the record, a claim is counted in now's UTC day, the record
	// keeps only its Spent form, and the claimed code as it was issued
	// (with ClaimedAt now) is returned. Of concurrent claims of one code exactly one
	// succeeds; the others get ErrNotFound, as for an unknown or used code.
	// An expired code gives ErrExpired and is left as it is.
	ClaimCode(ctx context.Context, realm string, h Hash, now time.Time) (*Code, error)
	// CodeByUUID returns the realm's code with the UUID, or ErrNotFound.
	CodeByUUID(ctx context.Context, realm, uuid string) (*Code, error)
	// ExpireCode atomically sets both expiry times of the realm's code to
	// now and returns it. ErrNotFound for an unknown UUID, ErrClaimed for a
	// claimed code, ErrExpired for one whose long code already expired.
	ExpireCode(ctx context.Context, realm, uuid string, now time.Time) (*Code, error)
	// RemoveExpiredCodes removes from the index and the records every short
	// or long code hash that expired before hashesBefore (a code whose last
	// hash goes unclaimed is counted as expired, on the UTC day of its long
	// expiry, and keeps only its Spent form), and deletes the records of
	// codes whose (stored) long expiry is before recordsBefore. It returns the numbers of hashes and records removed.
	RemoveExpiredCodes(ctx context.Context, hashesBefore, recordsBefore time.Time) (hashes, records int, err error)
}

// TokenStore remembers used verification tokens until they expire. It
// stores a token's expiry rounded up to StoredTimeUnit (CoarseTimeAfter),
// never the exact time, which is the claim time plus the token lifetime.
type TokenStore interface {
	// ClaimToken atomically records token jti of realm, which expires at
	// expires, as used, and counts a certificate in now's UTC day. Of
	// concurrent claims of one token exactly one succeeds; the others, and
	// every later claim until RemoveExpiredTokens forgets it, get ErrUsed.
	ClaimToken(ctx context.Context, realm, jti string, expires, now time.Time) error
	// RemoveExpiredTokens forgets used tokens whose expiry, rounded up to
	// StoredTimeUnit, is before before and returns how many.
	RemoveExpiredTokens(ctx context.Context, before time.Time) (int, error)
}

// StatsStore keeps per-realm, per-UTC-day counts.
type StatsStore interface {
	// AddStats adds delta to the realm's counts of day's UTC day.
	AddStats(ctx context.Context, realm string, day time.Time, delta Stats) error
	// Stats returns the realm's counts of the UTC days from from through
	// to, oldest first; days without counts are left out.
	Stats(ctx context.Context, realm string, from, to time.Time) ([]DayStats, error)
}

// SecretStore keeps small sealed (encrypted) secrets by name.
type SecretStore interface {
	// SealedSecret returns the blob stored under name. When there is none
	// it stores the result of create first; concurrent callers all get the
	// one blob that was stored.
	SealedSecret(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error)
}
