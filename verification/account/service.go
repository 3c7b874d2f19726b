package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Defaults of Options.
const (
	// DefaultMaxFailures failed sign-ins of one email within
	// DefaultFailureWindow lock it until the window ends.
	DefaultMaxFailures   = 5
	DefaultFailureWindow = 15 * time.Minute
	// DefaultSessionIdle ends a session unused this long;
	// DefaultSessionMax ends every session this long after sign-in.
	DefaultSessionIdle = time.Hour
	DefaultSessionMax  = 12 * time.Hour
	// DefaultAuditRetention is how long audit entries are kept.
	DefaultAuditRetention = 2 * 365 * 24 * time.Hour
	// DefaultTOTPIssuer labels the account in authenticator apps.
	DefaultTOTPIssuer = "Candor"
	// DefaultConcurrentHashes bounds password hashes computed at once, so
	// that a flood of sign-ins cannot exhaust memory (64 MiB each).
	DefaultConcurrentHashes = 2
	// DefaultHashQueue bounds requests waiting for a hash slot; more get
	// ErrBusy at once instead of queueing behind a flood (with the default
	// costs a full queue drains in about half a second).
	DefaultHashQueue = 8
)

// sessionTouchEvery is how stale LastSeen may be before a request writes
// it again: sliding expiry without a store write per request.
const sessionTouchEvery = time.Minute

// Sealer encrypts small secrets with associated data; tink.AEAD is one.
type Sealer interface {
	Encrypt(plaintext, associatedData []byte) ([]byte, error)
	Decrypt(ciphertext, associatedData []byte) ([]byte, error)
}

// Options configure a Service. Zero fields take the defaults.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Rand is the source of tokens, IDs, one-time passwords and TOTP
	// secrets; crypto/rand when nil.
	Rand io.Reader
	// Password are the argon2id costs of new hashes (DefaultPasswordParams()).
	Password PasswordParams
	// Sealer seals TOTP secrets at rest. Without one, TOTP cannot be
	// enabled (ErrNoSealer).
	Sealer         Sealer
	MaxFailures    int
	FailureWindow  time.Duration
	SessionIdle    time.Duration
	SessionMax     time.Duration
	AuditRetention time.Duration
	TOTPIssuer     string
	// ConcurrentHashes bounds password hashes computed at once.
	ConcurrentHashes int
	// HashQueue bounds requests waiting for one of them (DefaultHashQueue).
	HashQueue int
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Password == (PasswordParams{}) {
		o.Password = DefaultPasswordParams()
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = DefaultMaxFailures
	}
	if o.FailureWindow <= 0 {
		o.FailureWindow = DefaultFailureWindow
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = DefaultSessionIdle
	}
	if o.SessionMax <= 0 {
		o.SessionMax = DefaultSessionMax
	}
	if o.AuditRetention <= 0 {
		o.AuditRetention = DefaultAuditRetention
	}
	if o.TOTPIssuer == "" {
		o.TOTPIssuer = DefaultTOTPIssuer
	}
	if o.ConcurrentHashes <= 0 {
		o.ConcurrentHashes = DefaultConcurrentHashes
	}
	if o.HashQueue <= 0 {
		o.HashQueue = DefaultHashQueue
	}
	return o
}

//lint:file-ignore ST1005 the Service's errors below are sentences shown to users as they are

// Errors of the Service; their messages may be shown to users.
var (
	// ErrBadCredentials: unknown email, wrong password, or disabled user —
	// one answer for all, so it tells nothing about which accounts exist.
	ErrBadCredentials = errors.New("The email address or password is not right.")
	// ErrBadTOTP: the second-factor code is wrong or was already used.
	ErrBadTOTP = errors.New("The code from the authenticator app is not right, or was already used. Wait for the next code.")
	// ErrBadPassword: the current password given to change it is wrong.
	ErrBadPassword = errors.New("The current password is not right.")
	// ErrForbidden: the actor may not do this.
	ErrForbidden = errors.New("You do not have permission to do this.")
	// ErrNoSealer: TOTP needs a Sealer.
	ErrNoSealer = errors.New("Two-factor sign-in is not available on this server.")
	// ErrNoSession: the session is unknown, expired or its user disabled.
	ErrNoSession = errors.New("account: no valid session")
	// ErrBusy: every password-hash slot and queue place is taken (a flood
	// of sign-ins); answer 503 with Retry-After. Like ErrOtherRealms it is
	// an *InputError, so that pages show its message.
	ErrBusy error = &InputError{"The server is busy checking other sign-ins. Try again in a few seconds."}
	// ErrOtherRealms: the change would affect the person's account in
	// realms the actor is not an admin of.
	ErrOtherRealms error = &InputError{"This person also works in realms you are not an admin of, so only a system admin, or an admin of each of their realms, can reset their password or disable or enable their account. You can remove them from this realm."}
)

// ThrottledError refuses a sign-in after too many failures; RetryAfter is
// when the window ends.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	m := int((e.RetryAfter + time.Minute - 1) / time.Minute)
	unit := "minutes"
	if m == 1 {
		unit = "minute"
	}
	return fmt.Sprintf("Too many failed sign-in attempts for this account. Try again in %d %s.", max(m, 1), unit)
}

// InputError is a request the user can correct; its message says how.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputf(format string, args ...any) error { return &InputError{fmt.Sprintf(format, args...)} }

// Service manages users, sessions and the audit list over a Store. It is
// safe for concurrent use.
type Service struct {
	store Store
	opts  Options
	// hashes holds a token per hash being computed; queue one per request
	// computing or waiting.
	hashes    chan struct{}
	queue     chan struct{}
	dummyHash string
}

// New returns a Service over store.
func New(store Store, opts Options) (*Service, error) {
	opts = opts.withDefaults()
	s := &Service{store: store, opts: opts, hashes: make(chan struct{}, opts.ConcurrentHashes),
		queue: make(chan struct{}, opts.ConcurrentHashes+opts.HashQueue)}
	// Unknown emails are checked against this hash, so that they take as
	// long as known ones.
	var err error
	if s.dummyHash, err = HashPassword("candor dummy password", opts.Password); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) now() time.Time { return s.opts.Now() }

// Options returns the service's options with defaults applied.
func (s *Service) Options() Options { return s.opts }

// TOTPAvailable reports whether users can enable a second factor.
func (s *Service) TOTPAvailable() bool { return s.opts.Sealer != nil }

func (s *Service) hashPassword(ctx context.Context, pw string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	return HashPassword(pw, s.opts.Password)
}

func (s *Service) checkPassword(ctx context.Context, hash, pw string) (bool, error) {
	if err := s.acquire(ctx); err != nil {
		return false, err
	}
	defer s.release()
	return CheckPassword(hash, pw)
}

// acquire takes a hash slot, waiting in the bounded queue; ErrBusy at once
// when the queue is full.
func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.queue <- struct{}{}:
	default:
		return ErrBusy
	}
	select {
	case s.hashes <- struct{}{}:
		return nil
	case <-ctx.Done():
		<-s.queue
		return ctx.Err()
	}
}

func (s *Service) release() {
	<-s.hashes
	<-s.queue
}

// HashLoad returns how many password hashes are being computed and how
// many requests wait for a slot.
func (s *Service) HashLoad() (running, waiting int) {
	running = len(s.hashes)
	return running, max(0, len(s.queue)-running)
}

func (s *Service) random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.opts.Rand, b); err != nil {
		return nil, fmt.Errorf("account: random: %w", err)
	}
	return b, nil
}

func (s *Service) randomToken() (string, error) {
	b, err := s.random(32)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// TokenHash is the stored form of a session token.
func TokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// throttleKey names an email's sign-in failures without storing the email.
func throttleKey(email string) string {
	h := sha256.Sum256([]byte("candor sign-in " + strings.ToLower(strings.TrimSpace(email))))
	return "signin:" + hex.EncodeToString(h[:16])
}

// Cleanup removes expired sessions and audit entries past the retention.
func (s *Service) Cleanup(ctx context.Context) (sessions, audit int, err error) {
	now := s.now()
	sessions, err1 := s.store.RemoveExpiredSessions(ctx, now)
	audit, err2 := s.store.RemoveAuditBefore(ctx, now.Add(-s.opts.AuditRetention))
	if err := errors.Join(err1, err2); err != nil {
		return sessions, audit, fmt.Errorf("account cleanup: %w", err)
	}
	return sessions, audit, nil
}
