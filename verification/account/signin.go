package account

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

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
