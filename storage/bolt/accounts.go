package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/verification/account"
)

// The UI accounts' buckets.
var (
	// accounts_users: user id → User JSON.
	bucketAcctUsers = []byte("accounts_users")
	// accounts_user_emails: email → user id.
	bucketAcctEmails = []byte("accounts_user_emails")
	// accounts_sessions: token hash (hex) → Session JSON.
	bucketAcctSessions = []byte("accounts_sessions")
	// accounts_throttle: key → Throttle JSON.
	bucketAcctThrottle = []byte("accounts_throttle")
	// accounts_audit: realm ‖ 0 ‖ entry id → AuditEntry JSON ("" realm for
	// system actions).
	bucketAcctAudit = []byte("accounts_audit")
)

var _ account.Store = (*AccountStore)(nil)

// AccountStore implements account.Store on a DB. Its writes are
// group-committed with the DB's other writes (see committer).
type AccountStore struct {
	db *bbolt.DB
	w  *committer
}

// NewAccountStore returns the account store on db.
func NewAccountStore(db *DB) *AccountStore { return &AccountStore{db: db.db, w: db.w} }

// ---- Users ----

// CreateUser implements account.UserStore.
func (s *AccountStore) CreateUser(ctx context.Context, u *account.User) error {
	err := s.w.update(func(tx *bbolt.Tx) error {
		users, emails := tx.Bucket(bucketAcctUsers), tx.Bucket(bucketAcctEmails)
		if users.Get([]byte(u.ID)) != nil || emails.Get([]byte(u.Email)) != nil {
			return account.ErrExists
		}
		if err := emails.Put([]byte(u.Email), []byte(u.ID)); err != nil {
			return err
		}
		return putJSON(users, []byte(u.ID), u)
	})
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Email, err)
	}
	return nil
}

// UpdateUser implements account.UserStore.
func (s *AccountStore) UpdateUser(ctx context.Context, id string, fn func(*account.User) error) (*account.User, error) {
	var out *account.User
	err := s.w.update(func(tx *bbolt.Tx) error {
		users, emails := tx.Bucket(bucketAcctUsers), tx.Bucket(bucketAcctEmails)
		u, err := getJSON[account.User](users, []byte(id), account.ErrNotFound)
		if err != nil {
			return err
		}
		oldEmail := u.Email
		if err := fn(u); err != nil {
			return err
		}
		u.ID = id
		if u.Email != oldEmail {
			if emails.Get([]byte(u.Email)) != nil {
				return account.ErrExists
			}
			if err := emails.Delete([]byte(oldEmail)); err != nil {
				return err
			}
			if err := emails.Put([]byte(u.Email), []byte(id)); err != nil {
				return err
			}
		}
		out = u
		return putJSON(users, []byte(id), u)
	})
	if err != nil {
		return nil, fmt.Errorf("update user %s: %w", id, err)
	}
	return out, nil
}

// User implements account.UserStore.
func (s *AccountStore) User(ctx context.Context, id string) (*account.User, error) {
	var u *account.User
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		u, err = getJSON[account.User](tx.Bucket(bucketAcctUsers), []byte(id), account.ErrNotFound)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// UserByEmail implements account.UserStore.
func (s *AccountStore) UserByEmail(ctx context.Context, email string) (*account.User, error) {
	var u *account.User
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		id := tx.Bucket(bucketAcctEmails).Get([]byte(email))
		if id == nil {
			return account.ErrNotFound
		}
		u, err = getJSON[account.User](tx.Bucket(bucketAcctUsers), id, account.ErrNotFound)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", email, err)
	}
	return u, nil
}

// Users implements account.UserStore.
func (s *AccountStore) Users(ctx context.Context) ([]*account.User, error) {
	var out []*account.User
	err := s.db.View(func(tx *bbolt.Tx) error {
		users := tx.Bucket(bucketAcctUsers)
		// The email index is sorted by email.
		return tx.Bucket(bucketAcctEmails).ForEach(func(_, id []byte) error {
			u, err := getJSON[account.User](users, id, account.ErrNotFound)
			if err != nil {
				return err
			}
			out = append(out, u)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	return out, nil
}

// ---- Sessions ----

// CreateSession implements account.SessionStore.
func (s *AccountStore) CreateSession(ctx context.Context, sess *account.Session) error {
	err := s.w.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAcctSessions)
		if b.Get([]byte(sess.Hash)) != nil {
			return account.ErrExists
		}
		return putJSON(b, []byte(sess.Hash), sess)
	})
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// Session implements account.SessionStore.
func (s *AccountStore) Session(ctx context.Context, hash string) (*account.Session, error) {
	var sess *account.Session
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		sess, err = getJSON[account.Session](tx.Bucket(bucketAcctSessions), []byte(hash), account.ErrNotFound)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return sess, nil
}

// UpdateSession implements account.SessionStore.
func (s *AccountStore) UpdateSession(ctx context.Context, hash string, fn func(*account.Session) error) (*account.Session, error) {
	var out *account.Session
	err := s.w.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAcctSessions)
		sess, err := getJSON[account.Session](b, []byte(hash), account.ErrNotFound)
		if err != nil {
			return err
		}
		if err := fn(sess); err != nil {
			return err
		}
		sess.Hash = hash
		out = sess
		return putJSON(b, []byte(hash), sess)
	})
	if err != nil {
		return nil, fmt.Errorf("update session: %w", err)
	}
	return out, nil
}

// DeleteSession implements account.SessionStore.
func (s *AccountStore) DeleteSession(ctx context.Context, hash string) error {
	if err := s.w.update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketAcctSessions).Delete([]byte(hash)) }); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// deleteSessionsWhere removes the sessions for which drop is true.
func (s *AccountStore) deleteSessionsWhere(drop func(*account.Session) bool) (int, error) {
	n := 0
	err := s.w.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAcctSessions)
		var doomed [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			var sess account.Session
			if err := json.Unmarshal(v, &sess); err != nil {
				return err
			}
			if drop(&sess) {
				doomed = append(doomed, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	return n, err
}

// DeleteUserSessions implements account.SessionStore.
func (s *AccountStore) DeleteUserSessions(ctx context.Context, userID, keep string) (int, error) {
	n, err := s.deleteSessionsWhere(func(sess *account.Session) bool { return sess.UserID == userID && sess.Hash != keep })
	if err != nil {
		return 0, fmt.Errorf("delete sessions of %s: %w", userID, err)
	}
	return n, nil
}

// RemoveExpiredSessions implements account.SessionStore. It also forgets
// sign-in throttle windows that have ended.
func (s *AccountStore) RemoveExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	n, err := s.deleteSessionsWhere(func(sess *account.Session) bool { return !now.Before(sess.ExpiresAt) })
	if err != nil {
		return 0, fmt.Errorf("remove expired sessions: %w", err)
	}
	err = s.w.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAcctThrottle)
		var doomed [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			var th account.Throttle
			if json.Unmarshal(v, &th) != nil || !now.Before(th.Until) {
				doomed = append(doomed, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("remove ended throttle windows: %w", err)
	}
	return n, nil
}

// ---- Throttle ----

// AddLoginFailure implements account.ThrottleStore.
func (s *AccountStore) AddLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (account.Throttle, error) {
	var out account.Throttle
	err := s.w.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAcctThrottle)
		th, err := getJSON[account.Throttle](b, []byte(key), account.ErrNotFound)
		if errors.Is(err, account.ErrNotFound) || err == nil && !now.Before(th.Until) {
			th, err = &account.Throttle{Until: now.Add(window).UTC()}, nil
		}
		if err != nil {
			return err
		}
		th.Failures++
		out = *th
		return putJSON(b, []byte(key), th)
	})
	if err != nil {
		return account.Throttle{}, fmt.Errorf("add sign-in failure: %w", err)
	}
	return out, nil
}

// LoginThrottle implements account.ThrottleStore.
func (s *AccountStore) LoginThrottle(ctx context.Context, key string, now time.Time) (account.Throttle, error) {
	var out account.Throttle
	err := s.db.View(func(tx *bbolt.Tx) error {
		th, err := getJSON[account.Throttle](tx.Bucket(bucketAcctThrottle), []byte(key), account.ErrNotFound)
		if errors.Is(err, account.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if now.Before(th.Until) {
			out = *th
		}
		return nil
	})
	if err != nil {
		return account.Throttle{}, fmt.Errorf("sign-in throttle: %w", err)
	}
	return out, nil
}

// ClearLoginFailures implements account.ThrottleStore.
func (s *AccountStore) ClearLoginFailures(ctx context.Context, key string) error {
	if err := s.w.update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketAcctThrottle).Delete([]byte(key)) }); err != nil {
		return fmt.Errorf("clear sign-in failures: %w", err)
	}
	return nil
}

// ---- Audit ----

// AppendAudit implements account.AuditStore.
func (s *AccountStore) AppendAudit(ctx context.Context, e *account.AuditEntry) error {
	err := s.w.update(func(tx *bbolt.Tx) error {
		return putJSON(tx.Bucket(bucketAcctAudit), realmKey(e.Realm, []byte(e.ID)), e)
	})
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	return nil
}

// Audit implements account.AuditStore.
func (s *AccountStore) Audit(ctx context.Context, realm, before string, limit int) ([]*account.AuditEntry, error) {
	var out []*account.AuditEntry
	prefix := realmKey(realm, nil)
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAcctAudit).Cursor()
		var k, v []byte
		if before == "" {
			// The first key after the realm's range, then step back.
			end := realmKey(realm, []byte{0xff})
			if k, _ = c.Seek(end); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		} else {
			if k, _ = c.Seek(realmKey(realm, []byte(before))); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var e account.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, &e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit of %q: %w", realm, err)
	}
	return out, nil
}

// RemoveAuditBefore implements account.AuditStore.
func (s *AccountStore) RemoveAuditBefore(ctx context.Context, cutoff time.Time) (int, error) {
	limit := []byte(account.AuditIDPrefix(cutoff))
	n := 0
	err := s.w.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAcctAudit)
		var doomed [][]byte
		if err := b.ForEach(func(k, _ []byte) error {
			if _, id, ok := splitRealmKey(k); ok && bytes.Compare(id, limit) < 0 {
				doomed = append(doomed, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("remove audit entries: %w", err)
	}
	return n, nil
}
