package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/candor-en/candor/verification/account"
)

// Account key names. Everything shares the hash tag {acct}, so that a user
// and the email index, or a session and its indexes, change in one
// transaction, on a cluster too; account data is small (people, not codes).
//
//	<prefix>:{acct}:users              hash: user id → User JSON
//	<prefix>:{acct}:emails             hash: email → user id
//	<prefix>:{acct}:session:<hash>     string: Session JSON, with a TTL
//	<prefix>:{acct}:usessions:<id>     set: the user's session hashes
//	<prefix>:{acct}:sessexp            sorted set: session hash by ExpiresAt (ms)
//	<prefix>:{acct}:throttle:<key>     hash: n (failures), until (Unix ms), with a TTL
//	<prefix>:{acct}:audit:<realm>      sorted set, all scores 0: "<id> <JSON>" in
//	                                   lexicographic (= time) order; realm "" is "audit:"
//	<prefix>:{acct}:auditrealms        set: realms with audit entries
//
// TTLs are relative (a session lives ExpiresAt − LastSeen from its last
// write, a throttle window until − now), so they hold whatever the clock of
// the caller says; RemoveExpiredSessions uses the sessexp index for the
// caller's now.

var _ account.Store = (*AccountStore)(nil)

// AccountStore implements account.Store on Redis.
type AccountStore struct{ s *Store }

// NewAccountStore returns the account store on s.
func NewAccountStore(s *Store) *AccountStore { return &AccountStore{s: s} }

func (a *AccountStore) key(name string) string { return a.s.prefix + ":{acct}:" + name }

// maxAccountRetries bounds optimistic transactions under contention.
const maxAccountRetries = 50

func (a *AccountStore) watch(ctx context.Context, fn func(*goredis.Tx) error, keys ...string) error {
	for range maxAccountRetries {
		err := a.s.rdb.Watch(ctx, fn, keys...)
		if errors.Is(err, goredis.TxFailedErr) {
			continue
		}
		if err != nil {
			return err
		}
		return a.s.wait(ctx)
	}
	return errors.New("too much contention")
}

// ---- Users ----

var createUserScript = goredis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1
`)

// CreateUser implements account.UserStore.
func (a *AccountStore) CreateUser(ctx context.Context, u *account.User) error {
	b, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Email, err)
	}
	n, err := createUserScript.Run(ctx, a.s.rdb, []string{a.key("users"), a.key("emails")}, u.ID, u.Email, b).Int()
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Email, err)
	}
	if n == 0 {
		return fmt.Errorf("create user %s: %w", u.Email, account.ErrExists)
	}
	return a.s.wait(ctx)
}

// UpdateUser implements account.UserStore.
func (a *AccountStore) UpdateUser(ctx context.Context, id string, fn func(*account.User) error) (*account.User, error) {
	users, emails := a.key("users"), a.key("emails")
	var out *account.User
	err := a.watch(ctx, func(tx *goredis.Tx) error {
		b, err := tx.HGet(ctx, users, id).Bytes()
		if isNil(err) {
			return account.ErrNotFound
		}
		if err != nil {
			return err
		}
		var u account.User
		if err := json.Unmarshal(b, &u); err != nil {
			return err
		}
		old := u.Email
		if err := fn(&u); err != nil {
			return err
		}
		u.ID = id
		if u.Email != old {
			owner, err := tx.HGet(ctx, emails, u.Email).Result()
			if err == nil && owner != id {
				return account.ErrExists
			}
			if err != nil && !isNil(err) {
				return err
			}
		}
		nb, err := json.Marshal(&u)
		if err != nil {
			return err
		}
		out = &u
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.HSet(ctx, users, id, nb)
			if u.Email != old {
				p.HDel(ctx, emails, old)
				p.HSet(ctx, emails, u.Email, id)
			}
			return nil
		})
		return err
	}, users, emails)
	if err != nil {
		return nil, fmt.Errorf("update user %s: %w", id, err)
	}
	return out, nil
}

// User implements account.UserStore.
func (a *AccountStore) User(ctx context.Context, id string) (*account.User, error) {
	b, err := a.s.rdb.HGet(ctx, a.key("users"), id).Bytes()
	if isNil(err) {
		err = account.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	var u account.User
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	return &u, nil
}

// UserByEmail implements account.UserStore.
func (a *AccountStore) UserByEmail(ctx context.Context, email string) (*account.User, error) {
	id, err := a.s.rdb.HGet(ctx, a.key("emails"), email).Result()
	if isNil(err) {
		return nil, fmt.Errorf("user %s: %w", email, account.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", email, err)
	}
	return a.User(ctx, id)
}

// Users implements account.UserStore.
func (a *AccountStore) Users(ctx context.Context) ([]*account.User, error) {
	all, err := a.s.rdb.HGetAll(ctx, a.key("users")).Result()
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	out := make([]*account.User, 0, len(all))
	for id, b := range all {
		var u account.User
		if err := json.Unmarshal([]byte(b), &u); err != nil {
			return nil, fmt.Errorf("user %s: %w", id, err)
		}
		out = append(out, &u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Email < out[j].Email })
	return out, nil
}

// ---- Sessions ----

// sessionTTL is how long Redis keeps a session written now: its idle life
// from LastSeen, and at least a second.
func sessionTTL(s *account.Session) time.Duration {
	return max(s.ExpiresAt.Sub(s.LastSeen), time.Second)
}

func (a *AccountStore) sessionKey(hash string) string { return a.key("session:" + hash) }

// CreateSession implements account.SessionStore.
func (a *AccountStore) CreateSession(ctx context.Context, sess *account.Session) error {
	b, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	key := a.sessionKey(sess.Hash)
	err = a.watch(ctx, func(tx *goredis.Tx) error {
		n, err := tx.Exists(ctx, key).Result()
		if err != nil {
			return err
		}
		if n > 0 {
			return account.ErrExists
		}
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, key, b, sessionTTL(sess))
			p.SAdd(ctx, a.key("usessions:"+sess.UserID), sess.Hash)
			a.expireUserSessions(ctx, p, sess)
			p.ZAdd(ctx, a.key("sessexp"), goredis.Z{Score: float64(sess.ExpiresAt.UnixMilli()), Member: sess.Hash})
			return nil
		})
		return err
	}, key)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// expireUserSessions makes the user's set of session hashes expire no
// earlier than sess, so that the set goes away with the last session Redis
// expires on its own.
func (a *AccountStore) expireUserSessions(ctx context.Context, p goredis.Pipeliner, sess *account.Session) {
	set := a.key("usessions:" + sess.UserID)
	p.ExpireNX(ctx, set, sessionTTL(sess))
	p.ExpireGT(ctx, set, sessionTTL(sess))
}

// Session implements account.SessionStore.
func (a *AccountStore) Session(ctx context.Context, hash string) (*account.Session, error) {
	b, err := a.s.rdb.Get(ctx, a.sessionKey(hash)).Bytes()
	if isNil(err) {
		err = account.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	var sess account.Session
	if err := json.Unmarshal(b, &sess); err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return &sess, nil
}

// UpdateSession implements account.SessionStore.
func (a *AccountStore) UpdateSession(ctx context.Context, hash string, fn func(*account.Session) error) (*account.Session, error) {
	key := a.sessionKey(hash)
	var out *account.Session
	err := a.watch(ctx, func(tx *goredis.Tx) error {
		b, err := tx.Get(ctx, key).Bytes()
		if isNil(err) {
			return account.ErrNotFound
		}
		if err != nil {
			return err
		}
		var sess account.Session
		if err := json.Unmarshal(b, &sess); err != nil {
			return err
		}
		if err := fn(&sess); err != nil {
			return err
		}
		sess.Hash = hash
		nb, err := json.Marshal(&sess)
		if err != nil {
			return err
		}
		out = &sess
		_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, key, nb, sessionTTL(&sess))
			a.expireUserSessions(ctx, p, &sess)
			p.ZAdd(ctx, a.key("sessexp"), goredis.Z{Score: float64(sess.ExpiresAt.UnixMilli()), Member: hash})
			return nil
		})
		return err
	}, key)
	if err != nil {
		return nil, fmt.Errorf("update session: %w", err)
	}
	return out, nil
}

// deleteSessions removes the sessions with the hashes (and their index
// entries) and returns how many existed.
func (a *AccountStore) deleteSessions(ctx context.Context, hashes ...string) (int, error) {
	if len(hashes) == 0 {
		return 0, nil
	}
	owners := map[string][]string{}
	keys := make([]string, len(hashes))
	for i, h := range hashes {
		keys[i] = a.sessionKey(h)
	}
	vals, err := a.s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return 0, err
	}
	n := 0
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var sess account.Session
		if json.Unmarshal([]byte(str), &sess) == nil {
			owners[sess.UserID] = append(owners[sess.UserID], hashes[i])
		}
		n++
	}
	_, err = a.s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, keys...)
		p.ZRem(ctx, a.key("sessexp"), toAny(hashes)...)
		for user, hs := range owners {
			p.SRem(ctx, a.key("usessions:"+user), toAny(hs)...)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, a.s.wait(ctx)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// DeleteSession implements account.SessionStore.
func (a *AccountStore) DeleteSession(ctx context.Context, hash string) error {
	if _, err := a.deleteSessions(ctx, hash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions implements account.SessionStore.
func (a *AccountStore) DeleteUserSessions(ctx context.Context, userID, keep string) (int, error) {
	set := a.key("usessions:" + userID)
	members, err := a.s.rdb.SMembers(ctx, set).Result()
	if err != nil {
		return 0, fmt.Errorf("delete sessions of %s: %w", userID, err)
	}
	var doomed []string
	for _, h := range members {
		if h != keep {
			doomed = append(doomed, h)
		}
	}
	n, err := a.deleteSessions(ctx, doomed...)
	if err != nil {
		return 0, fmt.Errorf("delete sessions of %s: %w", userID, err)
	}
	// Forget members whose sessions Redis expired on its own.
	if len(doomed) > 0 {
		if err := a.s.rdb.SRem(ctx, set, toAny(doomed)...).Err(); err != nil {
			return n, fmt.Errorf("delete sessions of %s: %w", userID, err)
		}
	}
	return n, nil
}

// RemoveExpiredSessions implements account.SessionStore.
func (a *AccountStore) RemoveExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		hashes, err := a.s.rdb.ZRangeByScore(ctx, a.key("sessexp"), &goredis.ZRangeBy{
			Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: 500,
		}).Result()
		if err != nil {
			return total, fmt.Errorf("remove expired sessions: %w", err)
		}
		if len(hashes) == 0 {
			return total, nil
		}
		// A session touched since the index was read is kept: only hashes
		// whose stored expiry is still not after now go.
		var doomed []string
		for _, h := range hashes {
			sess, err := a.Session(ctx, h)
			if errors.Is(err, account.ErrNotFound) || err == nil && !now.Before(sess.ExpiresAt) {
				doomed = append(doomed, h)
			}
		}
		n, err := a.deleteSessions(ctx, doomed...)
		total += n
		if err != nil {
			return total, fmt.Errorf("remove expired sessions: %w", err)
		}
		// Hashes whose session Redis already expired left the index too. A
		// hash kept here was touched concurrently and has a later score by
		// now; stop rather than read it again.
		if len(doomed) < len(hashes) || len(hashes) < 500 {
			return total, nil
		}
	}
}

// ---- Throttle ----

// addFailureScript: KEYS[1] the throttle hash; ARGV now (ms), window (ms).
// Returns {failures, until}.
var addFailureScript = goredis.NewScript(`
local now = tonumber(ARGV[1])
local untilv = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
local n
if untilv <= now then
  untilv = now + tonumber(ARGV[2])
  n = 1
  redis.call('HSET', KEYS[1], 'n', 1, 'until', untilv)
else
  n = redis.call('HINCRBY', KEYS[1], 'n', 1)
end
redis.call('PEXPIRE', KEYS[1], math.max(untilv - now, 1))
return {n, untilv}
`)

// AddLoginFailure implements account.ThrottleStore.
func (a *AccountStore) AddLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (account.Throttle, error) {
	res, err := addFailureScript.Run(ctx, a.s.rdb, []string{a.key("throttle:" + key)}, now.UnixMilli(), window.Milliseconds()).Int64Slice()
	if err != nil {
		return account.Throttle{}, fmt.Errorf("add sign-in failure: %w", err)
	}
	if err := a.s.wait(ctx); err != nil {
		return account.Throttle{}, err
	}
	return account.Throttle{Failures: int(res[0]), Until: time.UnixMilli(res[1]).UTC()}, nil
}

// LoginThrottle implements account.ThrottleStore.
func (a *AccountStore) LoginThrottle(ctx context.Context, key string, now time.Time) (account.Throttle, error) {
	vals, err := a.s.rdb.HMGet(ctx, a.key("throttle:"+key), "n", "until").Result()
	if err != nil {
		return account.Throttle{}, fmt.Errorf("sign-in throttle: %w", err)
	}
	ns, _ := vals[0].(string)
	us, _ := vals[1].(string)
	n, _ := strconv.Atoi(ns)
	until, _ := strconv.ParseInt(us, 10, 64)
	if n == 0 || until <= now.UnixMilli() {
		return account.Throttle{}, nil
	}
	return account.Throttle{Failures: n, Until: time.UnixMilli(until).UTC()}, nil
}

// ClearLoginFailures implements account.ThrottleStore.
func (a *AccountStore) ClearLoginFailures(ctx context.Context, key string) error {
	if err := a.s.rdb.Del(ctx, a.key("throttle:"+key)).Err(); err != nil {
		return fmt.Errorf("clear sign-in failures: %w", err)
	}
	return nil
}

// ---- Audit ----

func (a *AccountStore) auditKey(realm string) string { return a.key("audit:" + realm) }

// AppendAudit implements account.AuditStore.
func (a *AccountStore) AppendAudit(ctx context.Context, e *account.AuditEntry) error {
	if strings.ContainsAny(e.ID, " ") {
		return fmt.Errorf("append audit entry: id %q contains a space", e.ID)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	_, err = a.s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZAdd(ctx, a.auditKey(e.Realm), goredis.Z{Score: 0, Member: e.ID + " " + string(b)})
		p.SAdd(ctx, a.key("auditrealms"), e.Realm)
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	return a.s.wait(ctx)
}

// Audit implements account.AuditStore.
func (a *AccountStore) Audit(ctx context.Context, realm, before string, limit int) ([]*account.AuditEntry, error) {
	maxLex := "+"
	if before != "" {
		maxLex = "(" + before // members start "<id> ", which sort after "<id>"
	}
	count := int64(limit)
	if limit <= 0 {
		count = -1
	}
	members, err := a.s.rdb.ZRevRangeByLex(ctx, a.auditKey(realm), &goredis.ZRangeBy{Min: "-", Max: maxLex, Count: count}).Result()
	if err != nil {
		return nil, fmt.Errorf("audit of %q: %w", realm, err)
	}
	out := make([]*account.AuditEntry, 0, len(members))
	for _, m := range members {
		_, js, ok := strings.Cut(m, " ")
		if !ok {
			continue
		}
		var e account.AuditEntry
		if err := json.Unmarshal([]byte(js), &e); err != nil {
			return nil, fmt.Errorf("audit of %q: %w", realm, err)
		}
		out = append(out, &e)
	}
	return out, nil
}

// RemoveAuditBefore implements account.AuditStore.
func (a *AccountStore) RemoveAuditBefore(ctx context.Context, cutoff time.Time) (int, error) {
	realms, err := a.s.rdb.SMembers(ctx, a.key("auditrealms")).Result()
	if err != nil {
		return 0, fmt.Errorf("remove audit entries: %w", err)
	}
	total := 0
	for _, r := range realms {
		n, err := a.s.rdb.ZRemRangeByLex(ctx, a.auditKey(r), "-", "("+account.AuditIDPrefix(cutoff)).Result()
		if err != nil {
			return total, fmt.Errorf("remove audit entries of %q: %w", r, err)
		}
		total += int(n)
	}
	return total, nil
}
