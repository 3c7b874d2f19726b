package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
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

// ---- Actors ----

// Actor is who performs an admin action: a signed-in user, or the operator
// at the command line (who may do everything).
type Actor struct {
	// Name is the user's email or "operator".
	Name string
	user *User
}

// operatorName is the name the audit list gives the command line.
const operatorName = "operator"

// Operator returns the command line's actor.
func Operator() Actor { return Actor{Name: operatorName} }

// AsUser returns the actor of signed-in user u.
func AsUser(u *User) Actor { return Actor{Name: u.Email, user: u} }

func (a Actor) can(realm string, need Role) bool {
	if a.user == nil {
		return a.Name == operatorName
	}
	return a.user.Can(realm, need)
}

func (a Actor) system() bool {
	if a.user == nil {
		return a.Name == operatorName
	}
	return a.user.System && !a.user.Disabled
}

func (a Actor) id() string {
	if a.user == nil {
		return ""
	}
	return a.user.ID
}

// ---- Users ----

// NewUser is a user to create or add to a realm.
type NewUser struct {
	Email string
	Name  string
	// Realm and Role give a membership; System makes a system admin.
	Realm  string
	Role   Role
	System bool
}

// AddUser adds a user to a realm (or, with System, makes a system admin).
// A new email creates the user with a one-time password, returned here and
// nowhere else. An existing account keeps its password (the returned
// one-time password is ""): a system admin or the operator adds the
// membership at once; a realm admin only invites it (User.Invitations),
// and the person accepts or declines at their next sign-in, so that no
// realm admin can pull another realm's account into their own. An account
// disabled without realms is nobody's: it is enabled again with a new
// one-time password and the membership. Realm admins may add workers and
// admins to their realm; only system admins and the operator may make
// system admins. The action is recorded in the realm's audit list and in
// that of every realm the person belongs to.
func (s *Service) AddUser(ctx context.Context, by Actor, nu NewUser) (*User, string, error) {
	email, err := NormalizeEmail(nu.Email)
	if err != nil {
		return nil, "", &InputError{err.Error()}
	}
	name := strings.TrimSpace(nu.Name)
	if len(name) > MaxNameLength {
		return nil, "", inputf("The name is longer than %d characters.", MaxNameLength)
	}
	if nu.System {
		if !by.system() {
			return nil, "", ErrForbidden
		}
	} else {
		if nu.Realm == "" {
			return nil, "", inputf("A realm is required.")
		}
		if _, err := ParseRole(string(nu.Role)); err != nil {
			return nil, "", &InputError{err.Error()}
		}
		if !by.can(nu.Realm, RoleAdmin) {
			return nil, "", ErrForbidden
		}
	}
	otp, err := NewOneTimePassword(s.opts.Rand)
	if err != nil {
		return nil, "", err
	}
	hash, err := s.hashPassword(ctx, otp)
	if err != nil {
		return nil, "", err
	}
	now := s.now().UTC()
	detail := "role " + string(nu.Role)
	realm := nu.Realm
	if nu.System {
		detail, realm = "system admin", ""
	}
	existing, err := s.store.UserByEmail(ctx, email)
	switch {
	case errors.Is(err, ErrNotFound):
		id, err := s.random(12)
		if err != nil {
			return nil, "", err
		}
		u := &User{ID: "u" + hex.EncodeToString(id), Email: email, Name: name, System: nu.System,
			PasswordHash: hash, MustChangePassword: true, PasswordChangedAt: now, CreatedAt: now}
		if !nu.System {
			u.Realms = map[string]Role{nu.Realm: nu.Role}
		}
		if err := u.Validate(); err != nil {
			return nil, "", &InputError{err.Error()}
		}
		if err := s.store.CreateUser(ctx, u); err != nil {
			if errors.Is(err, ErrExists) {
				return nil, "", inputf("A user with the email %s already exists.", email)
			}
			return nil, "", fmt.Errorf("add user: %w", err)
		}
		return u, otp, s.recordOn(ctx, by, realm, ActionUserAdd, u, detail, false)
	case err != nil:
		return nil, "", fmt.Errorf("add user: %w", err)
	}
	revived := existing.Disabled && len(existing.Realms) == 0 && !existing.System
	invite := !nu.System && !revived && !by.system()
	if !revived {
		otp = ""
	}
	action := ActionUserAdd
	if invite {
		action = ActionInvite
	}
	u, err := s.store.UpdateUser(ctx, existing.ID, func(u *User) error {
		switch {
		case nu.System && u.System:
			return inputf("%s is already a system admin.", email)
		case nu.System:
			u.System = true
		case u.Realms[nu.Realm] != "":
			return inputf("%s already belongs to realm %s.", email, nu.Realm)
		case invite:
			if u.Invitations == nil {
				u.Invitations = map[string]Invitation{}
			}
			u.Invitations[nu.Realm] = Invitation{Role: nu.Role, By: by.Name}
		default:
			if u.Realms == nil {
				u.Realms = map[string]Role{}
			}
			u.Realms[nu.Realm] = nu.Role
			delete(u.Invitations, nu.Realm)
		}
		if revived {
			// Whoever sees the one-time password could accept what was
			// offered to the account's former holder.
			u.Disabled, u.Invitations = false, nil
			u.PasswordHash, u.MustChangePassword, u.PasswordChangedAt = hash, true, now
			u.TOTPSecret, u.TOTPLastStep = nil, 0
		}
		// An invitation changes nothing of the account, not even its name.
		if name != "" && u.Name == "" && !invite {
			u.Name = name
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if invite {
		detail = "invited as " + string(nu.Role) + "; a member once they accept"
	}
	return u, otp, s.recordOn(ctx, by, realm, action, existing, detail, false)
}

// User returns the user with the ID (ErrNotFound).
func (s *Service) User(ctx context.Context, id string) (*User, error) {
	u, err := s.store.User(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// UserByEmail returns the user with the email (ErrNotFound).
func (s *Service) UserByEmail(ctx context.Context, email string) (*User, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return nil, &InputError{err.Error()}
	}
	u, err := s.store.UserByEmail(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", e, err)
	}
	return u, nil
}

// HasUsers reports whether any user exists.
func (s *Service) HasUsers(ctx context.Context) (bool, error) {
	us, err := s.store.Users(ctx)
	if err != nil {
		return false, fmt.Errorf("users: %w", err)
	}
	return len(us) > 0, nil
}

// RealmUsers returns the members of realm, by email; the actor must be its
// admin.
func (s *Service) RealmUsers(ctx context.Context, by Actor, realm string) ([]*User, error) {
	if !by.can(realm, RoleAdmin) {
		return nil, ErrForbidden
	}
	all, err := s.store.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	var out []*User
	for _, u := range all {
		if _, ok := u.Realms[realm]; ok {
			out = append(out, u)
		}
	}
	return out, nil
}

// RealmInvitations returns the accounts that realm invited and that have
// not answered yet, by email; the actor must be the realm's admin.
func (s *Service) RealmInvitations(ctx context.Context, by Actor, realm string) ([]*User, error) {
	if !by.can(realm, RoleAdmin) {
		return nil, ErrForbidden
	}
	all, err := s.store.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	var out []*User
	for _, u := range all {
		if _, ok := u.Invitations[realm]; ok {
			out = append(out, u)
		}
	}
	return out, nil
}

// SystemAdmins returns the system admins; the actor must be one.
func (s *Service) SystemAdmins(ctx context.Context, by Actor) ([]*User, error) {
	if !by.system() {
		return nil, ErrForbidden
	}
	all, err := s.store.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	var out []*User
	for _, u := range all {
		if u.System {
			out = append(out, u)
		}
	}
	return out, nil
}

// ManagesAccount reports whether by may change u's account itself — its
// password, second factor, whether it is disabled — and not only a
// membership: the operator and system admins may; a realm admin only when
// they are an admin of every realm u belongs to and u is no system admin.
func (s *Service) ManagesAccount(by Actor, u *User) bool {
	if by.system() {
		return true
	}
	if u.System || len(u.Realms) == 0 {
		return false
	}
	for r := range u.Realms {
		if !by.can(r, RoleAdmin) {
			return false
		}
	}
	return true
}

// member loads user id and checks that by may manage their membership in
// realm: by is the realm's admin, the user belongs to it, and the user is
// not by (admins do not demote, remove or reset themselves here) nor —
// unless by is one — a system admin. A refusal on another person is
// recorded as an attempt of action, in realm and the person's realms.
func (s *Service) member(ctx context.Context, by Actor, realm, id, action string) (*User, error) {
	if !by.can(realm, RoleAdmin) {
		return nil, ErrForbidden
	}
	u, err := s.store.User(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, inputf("There is no such user.")
	}
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	switch {
	case u.ID == by.id():
		return nil, inputf("You cannot change your own account here; ask another admin.")
	case u.Realms[realm] == "":
		return nil, s.refuse(ctx, by, realm, action, u, "not a member of realm "+realm,
			inputf("%s does not belong to realm %s.", u.Email, realm))
	case u.System && !by.system():
		return nil, s.refuse(ctx, by, realm, action, u, "a system admin", ErrForbidden)
	}
	return u, nil
}

// accountOf is member for changes of the account itself: by must also
// manage it (ManagesAccount), else ErrOtherRealms, recorded.
func (s *Service) accountOf(ctx context.Context, by Actor, realm, id, action string) (*User, error) {
	u, err := s.member(ctx, by, realm, id, action)
	if err != nil {
		return nil, err
	}
	if !s.ManagesAccount(by, u) {
		return nil, s.refuse(ctx, by, realm, action, u, "not an admin of every realm of the person", ErrOtherRealms)
	}
	return u, nil
}

// refuse records the refused attempt and returns err.
func (s *Service) refuse(ctx context.Context, by Actor, realm, action string, u *User, why string, err error) error {
	if rerr := s.recordOn(ctx, by, realm, action, u, "refused: "+why, true); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// SetRole changes the user's role in realm: a membership change, which
// the realm's admins may make.
func (s *Service) SetRole(ctx context.Context, by Actor, realm, id string, role Role) (*User, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return nil, &InputError{err.Error()}
	}
	before, err := s.member(ctx, by, realm, id, ActionUserRole)
	if err != nil {
		return nil, err
	}
	old := before.Realms[realm]
	if old == role {
		return before, nil
	}
	u, err := s.store.UpdateUser(ctx, id, func(u *User) error {
		if _, ok := u.Realms[realm]; !ok {
			return inputf("%s does not belong to realm %s.", u.Email, realm)
		}
		u.Realms[realm] = role
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, s.recordOn(ctx, by, realm, ActionUserRole, before, fmt.Sprintf("role %s → %s", old, role), false)
}

// RemoveFromRealm removes the user from realm: a membership change, which
// the realm's admins may make. A user left without realms (and not a
// system admin) is disabled and signed out everywhere.
func (s *Service) RemoveFromRealm(ctx context.Context, by Actor, realm, id string) (*User, error) {
	before, err := s.member(ctx, by, realm, id, ActionUserRemove)
	if err != nil {
		return nil, err
	}
	u, err := s.store.UpdateUser(ctx, id, func(u *User) error {
		delete(u.Realms, realm)
		if len(u.Realms) == 0 && !u.System {
			u.Disabled = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		if _, err := s.store.DeleteUserSessions(ctx, id, ""); err != nil {
			return nil, fmt.Errorf("sign out %s: %w", u.Email, err)
		}
	}
	return u, s.recordOn(ctx, by, realm, ActionUserRemove, before, "", false)
}

// SetDisabled disables (signing them out everywhere) or enables the user:
// a change of the account, so by must manage it (ManagesAccount).
func (s *Service) SetDisabled(ctx context.Context, by Actor, realm, id string, disabled bool) (*User, error) {
	action := ActionUserEnable
	if disabled {
		action = ActionUserDisable
	}
	before, err := s.accountOf(ctx, by, realm, id, action)
	if err != nil {
		return nil, err
	}
	return s.setDisabled(ctx, by, realm, before, disabled)
}

// SetDisabledByEmail disables (signing them out everywhere) or enables any
// user, including system admins: for the operator at the command line.
func (s *Service) SetDisabledByEmail(ctx context.Context, email string, disabled bool) (*User, error) {
	u, err := s.UserByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	return s.setDisabled(ctx, Operator(), "", u, disabled)
}

func (s *Service) setDisabled(ctx context.Context, by Actor, realm string, before *User, disabled bool) (*User, error) {
	u, err := s.store.UpdateUser(ctx, before.ID, func(x *User) error {
		if !disabled && len(x.Realms) == 0 && !x.System {
			return inputf("%s belongs to no realm; add them to one instead.", x.Email)
		}
		x.Disabled = disabled
		return nil
	})
	if err != nil {
		return nil, err
	}
	action := ActionUserEnable
	if disabled {
		action = ActionUserDisable
		if _, err := s.store.DeleteUserSessions(ctx, u.ID, ""); err != nil {
			return nil, fmt.Errorf("sign out %s: %w", u.Email, err)
		}
	}
	return u, s.recordOn(ctx, by, realm, action, before, "", false)
}

// AllUsers returns every user, for the operator.
func (s *Service) AllUsers(ctx context.Context) ([]*User, error) {
	us, err := s.store.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	return us, nil
}

// ResetPassword gives the user a new one-time password (returned here only),
// removes their second factor and pending invitations, and signs them out
// everywhere: for a forgotten password or a lost phone. Whoever sees the
// one-time password can act as the person, so by must manage the account
// (ManagesAccount).
func (s *Service) ResetPassword(ctx context.Context, by Actor, realm, id string) (*User, string, error) {
	before, err := s.accountOf(ctx, by, realm, id, ActionPasswordReset)
	if err != nil {
		return nil, "", err
	}
	return s.resetPassword(ctx, by, realm, before)
}

// ResetPasswordByEmail is ResetPassword for the operator (command line),
// for any user including system admins.
func (s *Service) ResetPasswordByEmail(ctx context.Context, email string) (*User, string, error) {
	u, err := s.UserByEmail(ctx, email)
	if err != nil {
		return nil, "", err
	}
	return s.resetPassword(ctx, Operator(), "", u)
}

func (s *Service) resetPassword(ctx context.Context, by Actor, realm string, before *User) (*User, string, error) {
	otp, err := NewOneTimePassword(s.opts.Rand)
	if err != nil {
		return nil, "", err
	}
	hash, err := s.hashPassword(ctx, otp)
	if err != nil {
		return nil, "", err
	}
	now := s.now().UTC()
	u, err := s.store.UpdateUser(ctx, before.ID, func(u *User) error {
		u.PasswordHash, u.MustChangePassword, u.PasswordChangedAt = hash, true, now
		u.TOTPSecret, u.TOTPLastStep = nil, 0
		// Invitations were meant for the person, not for whoever holds
		// the one-time password.
		u.Invitations = nil
		u.Disabled = u.Disabled && len(u.Realms) == 0 && !u.System
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("reset password: %w", err)
	}
	if _, err := s.store.DeleteUserSessions(ctx, u.ID, ""); err != nil {
		return nil, "", fmt.Errorf("sign out %s: %w", u.Email, err)
	}
	if err := s.store.ClearLoginFailures(ctx, throttleKey(u.Email)); err != nil {
		return nil, "", fmt.Errorf("reset password: %w", err)
	}
	detail := "second factor removed"
	if len(before.Invitations) > 0 {
		detail += "; invitations of " + strings.Join(before.InvitationRealms(), ", ") + " withdrawn"
	}
	return u, otp, s.recordOn(ctx, by, realm, ActionPasswordReset, before, detail, false)
}

// WithdrawInvitation drops realm's open invitation of user id: the realm's
// admins may, as it is their realm's offer.
func (s *Service) WithdrawInvitation(ctx context.Context, by Actor, realm, id string) (*User, error) {
	if !by.can(realm, RoleAdmin) {
		return nil, ErrForbidden
	}
	before, err := s.store.User(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, inputf("There is no such user.")
	}
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	after, err := s.store.UpdateUser(ctx, id, func(x *User) error {
		if _, ok := x.Invitations[realm]; !ok {
			return inputf("%s has no open invitation of realm %s.", x.Email, realm)
		}
		delete(x.Invitations, realm)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return after, s.recordOn(ctx, by, realm, ActionInviteWithdraw, before, "", false)
}

// AnswerInvitation makes u a member of realm with the invited role
// (accept) or drops the invitation; either is recorded in realm and every
// realm u belongs to.
func (s *Service) AnswerInvitation(ctx context.Context, u *User, realm string, accept bool) (*User, error) {
	var inv Invitation
	after, err := s.store.UpdateUser(ctx, u.ID, func(x *User) error {
		var ok bool
		if inv, ok = x.Invitations[realm]; !ok {
			return inputf("There is no invitation of realm %s.", realm)
		}
		delete(x.Invitations, realm)
		if accept {
			if x.Realms == nil {
				x.Realms = map[string]Role{}
			}
			x.Realms[realm] = inv.Role
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	action, detail := ActionInviteDecline, "invited as "+string(inv.Role)+" by "+inv.By
	if accept {
		action, detail = ActionInviteAccept, "role "+string(inv.Role)+", invited by "+inv.By
	}
	return after, s.recordOn(ctx, AsUser(u), realm, action, u, detail, false)
}

// SetTimeZone sets the IANA zone in which the user enters dates.
func (s *Service) SetTimeZone(ctx context.Context, u *User, tz string) (*User, error) {
	tz = strings.TrimSpace(tz)
	if tz != "" {
		if _, err := time.LoadLocation(tz); err != nil {
			return nil, inputf("%q is not a time zone name such as Europe/Berlin.", tz)
		}
	}
	return s.store.UpdateUser(ctx, u.ID, func(u *User) error { u.TimeZone = tz; return nil })
}

// ---- Audit ----

// Record appends an audit entry for an action by the actor in realm ("" for
// system actions). Target and detail must hold no code, password or secret.
func (s *Service) Record(ctx context.Context, by Actor, realm, action, target, detail string) error {
	return s.record(ctx, by, realm, action, target, detail, false)
}

func (s *Service) record(ctx context.Context, by Actor, realm, action, target, detail string, refused bool) error {
	now := s.now().UTC()
	r, err := s.random(4)
	if err != nil {
		return err
	}
	e := &AuditEntry{ID: AuditIDPrefix(now) + hex.EncodeToString(r), Time: now, Realm: realm, Actor: by.Name,
		Action: action, Target: target, Detail: detail, Refused: refused}
	if err := s.store.AppendAudit(ctx, e); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// recordOn records an action on the person u (as they were before it),
// done in realm ("" for a system admin's or the operator's action without
// one): in realm's list, in the list of every realm u belongs to, and in
// the system list for a system admin — so that each realm's admins see
// what is done to their people from elsewhere, refused attempts included.
func (s *Service) recordOn(ctx context.Context, by Actor, realm, action string, u *User, detail string, refused bool) error {
	lists := append([]string{realm}, u.RealmNames()...)
	if u.System {
		lists = append(lists, "")
	}
	slices.Sort(lists)
	var errs []error
	for _, list := range slices.Compact(lists) {
		d := detail
		if list != realm {
			where := "in realm " + realm
			if realm == "" {
				where = "system action"
			}
			d = strings.Join(slices.DeleteFunc([]string{where, detail}, func(x string) bool { return x == "" }), "; ")
		}
		errs = append(errs, s.record(ctx, by, list, action, u.Email, d, refused))
	}
	return errors.Join(errs...)
}

// AuditIDPrefix is the part of an audit entry ID that orders it: 16 hex
// digits of t in Unix nanoseconds. IDs of entries older than t sort before it.
func AuditIDPrefix(t time.Time) string { return fmt.Sprintf("%016x", uint64(t.UnixNano())) }

// Audit returns up to limit audit entries of realm ("" for system actions),
// newest first, before the entry ID before ("" for the newest). Realm
// admins read their realm's list; system admins every list.
func (s *Service) Audit(ctx context.Context, by Actor, realm, before string, limit int) ([]*AuditEntry, error) {
	if realm == "" && !by.system() || realm != "" && !by.can(realm, RoleAdmin) {
		return nil, ErrForbidden
	}
	es, err := s.store.Audit(ctx, realm, before, limit)
	if err != nil {
		return nil, fmt.Errorf("audit of %q: %w", realm, err)
	}
	return es, nil
}

// ---- Sessions ----

// SignedIn is a new session: Token goes into the cookie.
type SignedIn struct {
	Token   string
	Session *Session
	User    *User
}

// SignIn checks an email and password. On success it returns a new session:
// complete unless the user has a second factor, in which case it is
// PendingTOTP until CompleteTOTP. Failures: ErrBadCredentials (one answer
// for an unknown email, a wrong password and a disabled user) or, once an
// email has MaxFailures failures in the window, *ThrottledError — even for
// the right password — until the window ends.
func (s *Service) SignIn(ctx context.Context, email, password string) (*SignedIn, error) {
	key := throttleKey(email)
	if err := s.throttled(ctx, key); err != nil {
		return nil, err
	}
	if len(password) > 4*MaxPasswordLength {
		password = password[:4*MaxPasswordLength]
	}
	u, err := s.store.UserByEmail(ctx, strings.ToLower(strings.TrimSpace(email)))
	hash := s.dummyHash
	switch {
	case err == nil:
		hash = u.PasswordHash
	case !errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("sign in: %w", err)
	}
	ok, err := s.checkPassword(ctx, hash, password)
	if err != nil && !errors.Is(err, errBadHash) {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	if !ok || u == nil || u.Disabled {
		return nil, s.fail(ctx, key, ErrBadCredentials)
	}
	if !u.HasTOTP() {
		if err := s.store.ClearLoginFailures(ctx, key); err != nil {
			return nil, fmt.Errorf("sign in: %w", err)
		}
	}
	return s.newSession(ctx, u, u.HasTOTP(), defaultRealm(u))
}

// throttled returns *ThrottledError when key has MaxFailures failures in
// its open window.
func (s *Service) throttled(ctx context.Context, key string) error {
	now := s.now()
	th, err := s.store.LoginThrottle(ctx, key, now)
	if err != nil {
		return fmt.Errorf("sign-in throttle: %w", err)
	}
	if th.Failures >= s.opts.MaxFailures {
		return &ThrottledError{RetryAfter: th.Until.Sub(now)}
	}
	return nil
}

// fail counts a failed attempt of key and returns err, or *ThrottledError
// when this failure reached the limit.
func (s *Service) fail(ctx context.Context, key string, err error) error {
	now := s.now()
	th, serr := s.store.AddLoginFailure(ctx, key, now, s.opts.FailureWindow)
	if serr != nil {
		return fmt.Errorf("count failed sign-in: %w", serr)
	}
	if th.Failures >= s.opts.MaxFailures {
		return &ThrottledError{RetryAfter: th.Until.Sub(now)}
	}
	return err
}

func defaultRealm(u *User) string {
	if names := u.RealmNames(); len(names) > 0 {
		return names[0]
	}
	return ""
}

func (s *Service) newSession(ctx context.Context, u *User, pending bool, realm string) (*SignedIn, error) {
	token, err := s.randomToken()
	if err != nil {
		return nil, err
	}
	csrf, err := s.randomToken()
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	sess := &Session{Hash: TokenHash(token), UserID: u.ID, CSRF: csrf, Realm: realm, PendingTOTP: pending,
		CreatedAt: now, LastSeen: now}
	sess.ExpiresAt = s.expiry(sess, now)
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	return &SignedIn{Token: token, Session: sess, User: u}, nil
}

// expiry is when sess ends if it is used at now and not again.
func (s *Service) expiry(sess *Session, now time.Time) time.Time {
	idle := now.Add(s.opts.SessionIdle)
	if hard := sess.CreatedAt.Add(s.opts.SessionMax); hard.Before(idle) {
		return hard
	}
	return idle
}

// Authenticate returns the session of token and its user, extending the
// session's idle expiry. ErrNoSession when the token is unknown or the
// session expired or its user is disabled (the session is then removed).
func (s *Service) Authenticate(ctx context.Context, token string) (*Session, *User, error) {
	if token == "" || len(token) > 128 {
		return nil, nil, ErrNoSession
	}
	hash := TokenHash(token)
	sess, err := s.store.Session(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrNoSession
	}
	if err != nil {
		return nil, nil, fmt.Errorf("session: %w", err)
	}
	now := s.now()
	if !now.Before(sess.ExpiresAt) {
		_ = s.store.DeleteSession(ctx, hash)
		return nil, nil, ErrNoSession
	}
	u, err := s.store.User(ctx, sess.UserID)
	if errors.Is(err, ErrNotFound) || err == nil && u.Disabled {
		_ = s.store.DeleteSession(ctx, hash)
		return nil, nil, ErrNoSession
	}
	if err != nil {
		return nil, nil, fmt.Errorf("session user: %w", err)
	}
	if now.Sub(sess.LastSeen) >= sessionTouchEvery {
		touched, err := s.store.UpdateSession(ctx, hash, func(x *Session) error {
			x.LastSeen = now.UTC()
			x.ExpiresAt = s.expiry(x, now).UTC()
			return nil
		})
		if errors.Is(err, ErrNotFound) {
			return nil, nil, ErrNoSession
		}
		if err != nil {
			return nil, nil, fmt.Errorf("session: %w", err)
		}
		sess = touched
	}
	return sess, u, nil
}

// CheckCSRF reports whether token is the session's CSRF token, in constant time.
func CheckCSRF(sess *Session, token string) bool {
	return sess != nil && sess.CSRF != "" && subtle.ConstantTimeCompare([]byte(sess.CSRF), []byte(token)) == 1
}

// SignOut ends the session of token.
func (s *Service) SignOut(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	if err := s.store.DeleteSession(ctx, TokenHash(token)); err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	return nil
}

// rotate replaces sess by a new session (new token and CSRF token) with the
// same realm, after a change of privilege: no token seen before it stays
// valid.
func (s *Service) rotate(ctx context.Context, sess *Session, u *User, pending bool) (*SignedIn, error) {
	in, err := s.newSession(ctx, u, pending, sess.Realm)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteSession(ctx, sess.Hash); err != nil {
		return nil, fmt.Errorf("rotate session: %w", err)
	}
	return in, nil
}

// SetRealm makes realm the session's current realm; the user must belong
// to it (or be a system admin).
func (s *Service) SetRealm(ctx context.Context, sess *Session, u *User, realm string) (*Session, error) {
	if !u.Can(realm, RoleWorker) {
		return nil, ErrForbidden
	}
	return s.store.UpdateSession(ctx, sess.Hash, func(x *Session) error { x.Realm = realm; return nil })
}

// CompleteTOTP checks the second factor of a PendingTOTP session and
// returns the completed session under a new token. Wrong codes count as
// failed sign-ins of the user's email.
func (s *Service) CompleteTOTP(ctx context.Context, sess *Session, u *User, code string) (*SignedIn, error) {
	if !sess.PendingTOTP {
		return nil, ErrForbidden
	}
	key := throttleKey(u.Email)
	if err := s.throttled(ctx, key); err != nil {
		return nil, err
	}
	if err := s.useTOTP(ctx, u, code); err != nil {
		if errors.Is(err, ErrBadTOTP) {
			return nil, s.fail(ctx, key, err)
		}
		return nil, err
	}
	if err := s.store.ClearLoginFailures(ctx, key); err != nil {
		return nil, fmt.Errorf("second factor: %w", err)
	}
	return s.rotate(ctx, sess, u, false)
}

func totpAD(userID string) []byte { return []byte("candor account totp v1 " + userID) }

// useTOTP accepts code for u's secret once: the step is stored atomically.
func (s *Service) useTOTP(ctx context.Context, u *User, code string) error {
	if s.opts.Sealer == nil {
		return ErrNoSealer
	}
	secret, err := s.opts.Sealer.Decrypt(u.TOTPSecret, totpAD(u.ID))
	if err != nil {
		return fmt.Errorf("open TOTP secret: %w", err)
	}
	now := s.now()
	_, err = s.store.UpdateUser(ctx, u.ID, func(x *User) error {
		step, ok := CheckTOTP(secret, code, now, x.TOTPLastStep)
		if !ok {
			return ErrBadTOTP
		}
		x.TOTPLastStep = step
		return nil
	})
	return err
}

// ChangePassword sets a new password after checking the current one, ends
// every other session of the user and returns the current session under a
// new token. A wrong current password counts as a failed sign-in.
func (s *Service) ChangePassword(ctx context.Context, sess *Session, u *User, current, next string) (*SignedIn, error) {
	key := throttleKey(u.Email)
	if err := s.throttled(ctx, key); err != nil {
		return nil, err
	}
	now := s.now()
	ok, err := s.checkPassword(ctx, u.PasswordHash, current)
	if err != nil {
		return nil, fmt.Errorf("change password: %w", err)
	}
	if !ok {
		return nil, s.fail(ctx, key, ErrBadPassword)
	}
	if err := CheckPasswordPolicy(next, u.Email); err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(current), []byte(next)) == 1 {
		return nil, &PasswordError{"Choose a password different from the current one."}
	}
	hash, err := s.hashPassword(ctx, next)
	if err != nil {
		return nil, err
	}
	u, err = s.store.UpdateUser(ctx, u.ID, func(x *User) error {
		x.PasswordHash, x.MustChangePassword, x.PasswordChangedAt = hash, false, now.UTC()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("change password: %w", err)
	}
	if _, err := s.store.DeleteUserSessions(ctx, u.ID, sess.Hash); err != nil {
		return nil, fmt.Errorf("change password: sign out other sessions: %w", err)
	}
	return s.rotate(ctx, sess, u, false)
}

// BeginTOTP starts enrolling a second factor: it draws a secret, keeps it
// sealed in the session until ConfirmTOTP, and returns it to show (as a QR
// code and text). Calling it again during an enrolment returns the same
// secret.
func (s *Service) BeginTOTP(ctx context.Context, sess *Session, u *User) ([]byte, error) {
	if s.opts.Sealer == nil {
		return nil, ErrNoSealer
	}
	if len(sess.EnrolTOTP) > 0 {
		if secret, err := s.opts.Sealer.Decrypt(sess.EnrolTOTP, totpAD(u.ID)); err == nil {
			return secret, nil
		}
	}
	secret, err := s.random(TOTPSecretSize)
	if err != nil {
		return nil, err
	}
	sealed, err := s.opts.Sealer.Encrypt(secret, totpAD(u.ID))
	if err != nil {
		return nil, fmt.Errorf("seal TOTP secret: %w", err)
	}
	if _, err := s.store.UpdateSession(ctx, sess.Hash, func(x *Session) error { x.EnrolTOTP = sealed; return nil }); err != nil {
		return nil, fmt.Errorf("begin TOTP: %w", err)
	}
	sess.EnrolTOTP = sealed
	return secret, nil
}

// ConfirmTOTP enables the second factor enrolled with BeginTOTP once the
// user shows a code of it.
func (s *Service) ConfirmTOTP(ctx context.Context, sess *Session, u *User, code string) (*User, error) {
	if s.opts.Sealer == nil {
		return nil, ErrNoSealer
	}
	if len(sess.EnrolTOTP) == 0 {
		return nil, inputf("Start again: the set-up of the authenticator app has expired.")
	}
	secret, err := s.opts.Sealer.Decrypt(sess.EnrolTOTP, totpAD(u.ID))
	if err != nil {
		return nil, fmt.Errorf("open TOTP secret: %w", err)
	}
	step, ok := CheckTOTP(secret, code, s.now(), 0)
	if !ok {
		return nil, ErrBadTOTP
	}
	sealed := slices.Clone(sess.EnrolTOTP)
	u, err = s.store.UpdateUser(ctx, u.ID, func(x *User) error {
		x.TOTPSecret, x.TOTPLastStep = sealed, step
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("enable TOTP: %w", err)
	}
	if _, err := s.store.UpdateSession(ctx, sess.Hash, func(x *Session) error { x.EnrolTOTP = nil; return nil }); err != nil {
		return nil, fmt.Errorf("enable TOTP: %w", err)
	}
	return u, s.recordSelf(ctx, u, ActionTOTPEnable)
}

// DisableTOTP removes the user's second factor after checking their password.
func (s *Service) DisableTOTP(ctx context.Context, u *User, password string) (*User, error) {
	if err := s.throttled(ctx, throttleKey(u.Email)); err != nil {
		return nil, err
	}
	ok, err := s.checkPassword(ctx, u.PasswordHash, password)
	if err != nil {
		return nil, fmt.Errorf("disable TOTP: %w", err)
	}
	if !ok {
		return nil, s.fail(ctx, throttleKey(u.Email), ErrBadPassword)
	}
	u, err = s.store.UpdateUser(ctx, u.ID, func(x *User) error { x.TOTPSecret, x.TOTPLastStep = nil, 0; return nil })
	if err != nil {
		return nil, fmt.Errorf("disable TOTP: %w", err)
	}
	return u, s.recordSelf(ctx, u, ActionTOTPDisable)
}

// recordSelf audits a change of a user's own sign-in in each of their
// realms (and the system list for a system admin), so that their admins
// see it.
func (s *Service) recordSelf(ctx context.Context, u *User, action string) error {
	realms := u.RealmNames()
	if u.System {
		realms = append(realms, "")
	}
	var errs []error
	for _, r := range realms {
		errs = append(errs, s.Record(ctx, AsUser(u), r, action, u.Email, ""))
	}
	return errors.Join(errs...)
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
