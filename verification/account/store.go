package account

import (
	"context"
	"errors"
	"time"
)

// Errors a Store returns.
var (
	// ErrNotFound: no such user or session.
	ErrNotFound = errors.New("account: not found")
	// ErrExists: a user with the ID or email exists.
	ErrExists = errors.New("account: already exists")
)

// Store is everything the account service keeps. Implementations:
// storage/bolt (embedded) and storage/redis (shared by replicas). Every
// method is safe for concurrent use; a nil error from a write means it is
// durable.
type Store interface {
	UserStore
	SessionStore
	ThrottleStore
	AuditStore
}

// UserStore keeps users by ID, with a unique index of their email.
type UserStore interface {
	// CreateUser stores u; ErrExists when its ID or email is taken.
	CreateUser(ctx context.Context, u *User) error
	// UpdateUser atomically applies fn to the stored user and stores the
	// result, which it returns. ErrNotFound for an unknown ID; ErrExists
	// when fn changed the email to one taken by another user; when fn fails
	// nothing is written and its error is returned. fn may run more than
	// once and must depend only on its argument.
	UpdateUser(ctx context.Context, id string, fn func(*User) error) (*User, error)
	// User returns the user with the ID, or ErrNotFound.
	User(ctx context.Context, id string) (*User, error)
	// UserByEmail returns the user with the (normalized) email, or ErrNotFound.
	UserByEmail(ctx context.Context, email string) (*User, error)
	// Users returns every user, by email.
	Users(ctx context.Context) ([]*User, error)
}

// SessionStore keeps sessions by the hash of their token until they expire.
type SessionStore interface {
	// CreateSession stores s; ErrExists when its hash is taken.
	CreateSession(ctx context.Context, s *Session) error
	// Session returns the session with the hash, or ErrNotFound. It may
	// return a session past its ExpiresAt that was not yet removed; callers
	// check.
	Session(ctx context.Context, hash string) (*Session, error)
	// UpdateSession atomically applies fn to the stored session and stores
	// the result (with the expiry fn left), which it returns. ErrNotFound
	// for an unknown hash; when fn fails nothing is written.
	UpdateSession(ctx context.Context, hash string, fn func(*Session) error) (*Session, error)
	// DeleteSession removes the session; no error when there is none.
	DeleteSession(ctx context.Context, hash string) error
	// DeleteUserSessions removes every session of the user except the one
	// with hash keep ("" keeps none), and returns how many it removed.
	DeleteUserSessions(ctx context.Context, userID, keep string) (int, error)
	// RemoveExpiredSessions removes sessions whose ExpiresAt is not after
	// now, and returns how many.
	RemoveExpiredSessions(ctx context.Context, now time.Time) (int, error)
}

// Throttle is the failed sign-in count of one key (an email's hash) in the
// current window, which ends at Until.
type Throttle struct {
	Failures int       `json:"failures"`
	Until    time.Time `json:"until"`
}

// ThrottleStore counts failed sign-ins per key in fixed windows.
type ThrottleStore interface {
	// AddLoginFailure counts a failure of key at now and returns the count:
	// when the key has no window open at now (none, or its Until is not
	// after now) a new one opens with one failure and Until = now + window;
	// else the open window's count grows by one and its Until stays.
	AddLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (Throttle, error)
	// LoginThrottle returns the key's window open at now, or the zero
	// Throttle when none is.
	LoginThrottle(ctx context.Context, key string, now time.Time) (Throttle, error)
	// ClearLoginFailures forgets the key's failures.
	ClearLoginFailures(ctx context.Context, key string) error
}

// AuditStore keeps the audit list per realm ("" for system actions).
type AuditStore interface {
	// AppendAudit stores e; IDs are unique and ordered by time.
	AppendAudit(ctx context.Context, e *AuditEntry) error
	// Audit returns up to limit entries of realm, newest first, with IDs
	// before before (all when before is "").
	Audit(ctx context.Context, realm, before string, limit int) ([]*AuditEntry, error)
	// RemoveAuditBefore removes every realm's entries older than cutoff and
	// returns how many.
	RemoveAuditBefore(ctx context.Context, cutoff time.Time) (int, error)
}
