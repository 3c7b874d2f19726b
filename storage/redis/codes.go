package redis

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/candor-en/candor/verification"
)

func hashHex(h verification.Hash) string {
	if h == (verification.Hash{}) {
		return ""
	}
	return hex.EncodeToString(h[:])
}

// decodeCode builds a Code from its record's fields (HGETALL).
func decodeCode(f map[string]string) (*verification.Code, error) {
	j, ok := f["j"]
	if !ok {
		return nil, verification.ErrNotFound
	}
	var c verification.Code
	if err := json.Unmarshal([]byte(j), &c); err != nil {
		return nil, fmt.Errorf("code record: %w", err)
	}
	var err error
	if c.ExpiresAt, err = parseNS(f["exp"]); err != nil {
		return nil, fmt.Errorf("code record: %w", err)
	}
	if c.LongExpiresAt, err = parseNS(f["lexp"]); err != nil {
		return nil, fmt.Errorf("code record: %w", err)
	}
	c.Claimed, c.ClaimedAt = false, time.Time{}
	if s, ok := f["clm"]; ok {
		if c.ClaimedAt, err = parseNS(s); err != nil {
			return nil, fmt.Errorf("code record: %w", err)
		}
		c.Claimed = true
	}
	for _, p := range []struct {
		field string
		h     *verification.Hash
	}{{"sh", &c.ShortHash}, {"lh", &c.LongHash}} {
		*p.h = verification.Hash{}
		if s := f[p.field]; s != "" {
			if len(s) != 2*len(p.h) {
				return nil, fmt.Errorf("code record: bad hash %q", s)
			}
			if _, err := hex.Decode(p.h[:], []byte(s)); err != nil {
				return nil, fmt.Errorf("code record: %w", err)
			}
		}
	}
	return &c, nil
}

// pairsToMap turns an HGETALL reply returned by a script (field, value, …)
// into a map.
func pairsToMap(vals []any) map[string]string {
	m := make(map[string]string, len(vals)/2)
	for i := 0; i+1 < len(vals); i += 2 {
		k, _ := vals[i].(string)
		val, _ := vals[i+1].(string)
		m[k] = val
	}
	return m
}

// scriptScore is the Lua helper that turns a 20-digit nanosecond string
// into a microsecond score.
const scriptScore = `local function score(ns) return tonumber(string.sub(ns, 1, 17)) end
`

// issueScript stores a new code unless its UUID exists, a hash collides or
// the day's quota is used up.
// KEYS: record, hashes, hashexp, codeexp, stats, statdays.
// ARGV: json, exp, lexp, short hex, long hex, uuid, quota, day, day number, record TTL ms.
var issueScript = goredis.NewScript(scriptScore + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
if (ARGV[4] ~= '' and redis.call('HEXISTS', KEYS[2], ARGV[4]) == 1) or
   (ARGV[5] ~= '' and redis.call('HEXISTS', KEYS[2], ARGV[5]) == 1) then return 'collision' end
local quota = tonumber(ARGV[7])
if quota > 0 and tonumber(redis.call('HGET', KEYS[5], 'codesIssued') or '0') >= quota then return 'quota' end
redis.call('HSET', KEYS[1], 'j', ARGV[1], 'exp', ARGV[2], 'lexp', ARGV[3], 'sh', ARGV[4], 'lh', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[10])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[4], '1:' .. ARGV[6])
  redis.call('ZADD', KEYS[3], score(ARGV[2]), '1:' .. ARGV[6] .. ':' .. ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[5], '2:' .. ARGV[6])
  redis.call('ZADD', KEYS[3], score(ARGV[3]), '2:' .. ARGV[6] .. ':' .. ARGV[5])
end
redis.call('ZADD', KEYS[4], score(ARGV[3]), ARGV[6])
redis.call('HINCRBY', KEYS[5], 'codesIssued', 1)
redis.call('ZADD', KEYS[6], ARGV[9], ARGV[8])
return 'ok'
`)

// IssueCode implements verification.CodeStore: one script checks and
// writes, so concurrent issues on any replica cannot both pass the quota.
func (v *VerificationStore) IssueCode(ctx context.Context, c *verification.Code, quota int) error {
	if err := v.register(ctx, c.Realm); err != nil {
		return fmt.Errorf("issue code %s: %w", c.UUID, err)
	}
	base := *c
	base.Claimed, base.ClaimedAt = false, time.Time{}
	j, err := json.Marshal(&base)
	if err != nil {
		return fmt.Errorf("issue code %s: %w", c.UUID, err)
	}
	ttl := c.LongExpiresAt.Sub(c.IssuedAt) + recordGrace
	keys := []string{
		v.codeKey(c.Realm, c.UUID), v.realmKey(c.Realm, "hashes"), v.realmKey(c.Realm, "hashexp"),
		v.realmKey(c.Realm, "codeexp"), v.statsKey(c.Realm, c.IssuedAt), v.realmKey(c.Realm, "statdays"),
	}
	res, err := issueScript.Run(ctx, v.s.rdb, keys, j, nsString(c.ExpiresAt), nsString(c.LongExpiresAt),
		hashHex(c.ShortHash), hashHex(c.LongHash), c.UUID, quota,
		verification.UTCDay(c.IssuedAt), dayNumber(c.IssuedAt), max(ttl, time.Minute).Milliseconds()).Text()
	if err == nil {
		switch res {
		case "ok":
			err = v.s.wait(ctx)
		case "exists":
			err = verification.ErrExists
		case "collision":
			err = verification.ErrCollision
		case "quota":
			err = verification.ErrQuotaExceeded
		default:
			err = fmt.Errorf("unexpected reply %q", res)
		}
	}
	if err != nil {
		return fmt.Errorf("issue code %s: %w", c.UUID, err)
	}
	return nil
}

// FindCode implements verification.CodeStore.
func (v *VerificationStore) FindCode(ctx context.Context, realm string, h verification.Hash) (*verification.Code, verification.CodeKind, error) {
	idx, err := v.s.rdb.HGet(ctx, v.realmKey(realm, "hashes"), hex.EncodeToString(h[:])).Result()
	if isNil(err) {
		return nil, 0, fmt.Errorf("find code: %w", verification.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("find code: %w", err)
	}
	kind, uuid, ok := splitIndex(idx)
	if !ok {
		return nil, 0, fmt.Errorf("find code: bad index entry %q", idx)
	}
	c, err := v.CodeByUUID(ctx, realm, uuid)
	if err != nil {
		return nil, 0, fmt.Errorf("find code: %w", err)
	}
	return c, kind, nil
}

func splitIndex(idx string) (verification.CodeKind, string, bool) {
	if len(idx) < 3 || idx[1] != ':' {
		return 0, "", false
	}
	return verification.CodeKind(idx[0] - '0'), idx[2:], true
}

// claimScript redeems a code whose hash index entry and issued record are
// still the expected ones, and leaves its Spent form: the record as it was
// is returned. KEYS: hashes, hashexp, record, stats, statdays, codeexp.
// ARGV: hex hash, expected index entry, now, day, day number, expected j,
// then the Spent form: j, clm; the record's coarse expiry times are
// computed here from the ones the script checked.
var claimScript = goredis.NewScript(scriptScore + scriptCoarse + `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return {'retry'} end
local r = redis.call('HMGET', KEYS[3], 'exp', 'lexp', 'sh', 'lh', 'clm', 'j')
if not r[1] or r[5] then return {'notfound'} end
if r[6] ~= ARGV[6] then return {'retry'} end
local e = r[1]
if string.sub(ARGV[2], 1, 1) == '2' then e = r[2] end
if not (ARGV[3] < e) then return {'expired'} end
local out = redis.call('HGETALL', KEYS[3])
local uuid = string.sub(ARGV[2], 3)
if r[3] ~= '' then
  redis.call('HDEL', KEYS[1], r[3])
  redis.call('ZREM', KEYS[2], '1:' .. uuid .. ':' .. r[3])
end
if r[4] ~= '' then
  redis.call('HDEL', KEYS[1], r[4])
  redis.call('ZREM', KEYS[2], '2:' .. uuid .. ':' .. r[4])
end
spend(KEYS[3], KEYS[6], uuid, ARGV[7], coarse(r[1]), coarse(r[2]), ARGV[3])
redis.call('HSET', KEYS[3], 'sh', '', 'lh', '', 'clm', ARGV[8])
redis.call('HINCRBY', KEYS[4], 'codesClaimed', 1)
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4])
table.insert(out, 1, 'ok')
return out
`)

// scriptCoarse holds the Lua helpers that keep a code's Spent form and
// coarse Redis expiry times: coarse truncates a 20-digit nanosecond time to
// the hour (StoredTimeUnit); expireAt sets a key's Redis expiry to secs
// seconds from the server's clock, rounded up to the hour (flags: empty or
// 'GT'); spend stores the Spent JSON and coarse expiry times, moves the
// codeexp entry to the coarse long expiry and lets the record expire
// recordGrace after it (now: the caller's time, as 20-digit nanoseconds).
var scriptCoarse = fmt.Sprintf(`local function coarse(ns)
  local sec = tonumber(string.sub(ns, 1, 11))
  return string.format('%%011d000000000', sec - sec %% %[1]d)
end
local function expireAt(key, secs, flags)
  local at = tonumber(redis.call('TIME')[1]) + secs
  at = (at - at %% %[1]d + %[1]d) * 1000
  if flags == '' then return redis.call('PEXPIREAT', key, at) end
  return redis.call('PEXPIREAT', key, at, flags)
end
local function spend(record, codeexp, uuid, j, exp, lexp, now)
  redis.call('HSET', record, 'j', j, 'exp', exp, 'lexp', lexp)
  redis.call('ZADD', codeexp, score(lexp), uuid)
  local left = tonumber(string.sub(lexp, 1, 11)) - tonumber(string.sub(now, 1, 11))
  if left < 0 then left = 0 end
  expireAt(record, left + %[2]d, '')
end
`, int64(verification.StoredTimeUnit/time.Second), int64(recordGrace/time.Second))

// spentJSON is the j field of a code's Spent form, from the j it was issued
// with.
func spentJSON(j string, claimedAt time.Time) (string, error) {
	var c verification.Code
	if err := json.Unmarshal([]byte(j), &c); err != nil {
		return "", fmt.Errorf("code record: %w", err)
	}
	c.Claimed, c.ClaimedAt = !claimedAt.IsZero(), claimedAt
	b, err := json.Marshal(c.Spent())
	return string(b), err
}

// maxScriptRetries bounds how often a script guarded by a value read just
// before runs again after that value changed.
const maxScriptRetries = 20

// ClaimCode implements verification.CodeStore: the script checks that the
// hash still points at the code, that it is unclaimed and unexpired, and
// marks it claimed, in one step on the realm's slot. Of concurrent claims
// on any number of replicas exactly one sees the code unclaimed.
func (v *VerificationStore) ClaimCode(ctx context.Context, realm string, h verification.Hash, now time.Time) (*verification.Code, error) {
	hx := hex.EncodeToString(h[:])
	hashes := v.realmKey(realm, "hashes")
	for range maxScriptRetries {
		idx, err := v.s.rdb.HGet(ctx, hashes, hx).Result()
		if isNil(err) {
			return nil, fmt.Errorf("claim code: %w", verification.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("claim code: %w", err)
		}
		_, uuid, ok := splitIndex(idx)
		if !ok {
			return nil, fmt.Errorf("claim code: bad index entry %q", idx)
		}
		j, err := v.s.rdb.HGet(ctx, v.codeKey(realm, uuid), "j").Result()
		if isNil(err) {
			return nil, fmt.Errorf("claim code: %w", verification.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("claim code: %w", err)
		}
		spent, err := spentJSON(j, now.UTC())
		if err != nil {
			return nil, fmt.Errorf("claim code: %w", err)
		}
		keys := []string{hashes, v.realmKey(realm, "hashexp"), v.codeKey(realm, uuid), v.statsKey(realm, now), v.realmKey(realm, "statdays"), v.realmKey(realm, "codeexp")}
		res, err := claimScript.Run(ctx, v.s.rdb, keys, hx, idx, nsString(now), verification.UTCDay(now), dayNumber(now),
			j, spent, nsString(verification.CoarseTime(now))).Slice()
		if err != nil {
			return nil, fmt.Errorf("claim code: %w", err)
		}
		switch res[0] {
		case "retry": // the index entry changed since it was read
			continue
		case "notfound":
			return nil, fmt.Errorf("claim code: %w", verification.ErrNotFound)
		case "expired":
			return nil, fmt.Errorf("claim code: %w", verification.ErrExpired)
		case "ok":
			c, err := decodeCode(pairsToMap(res[1:]))
			if err != nil {
				return nil, fmt.Errorf("claim code: %w", err)
			}
			c.Claimed, c.ClaimedAt = true, now.UTC()
			c.ShortHash, c.LongHash = verification.Hash{}, verification.Hash{}
			if err := v.s.wait(ctx); err != nil {
				return nil, fmt.Errorf("claim code: %w", err)
			}
			return c, nil
		}
		return nil, fmt.Errorf("claim code: unexpected reply %v", res[0])
	}
	return nil, fmt.Errorf("claim code: too much contention")
}

// CodeByUUID implements verification.CodeStore.
func (v *VerificationStore) CodeByUUID(ctx context.Context, realm, uuid string) (*verification.Code, error) {
	f, err := v.s.rdb.HGetAll(ctx, v.codeKey(realm, uuid)).Result()
	if err != nil {
		return nil, fmt.Errorf("code %s: %w", uuid, err)
	}
	c, err := decodeCode(f)
	if err != nil {
		return nil, fmt.Errorf("code %s: %w", uuid, err)
	}
	return c, nil
}

// expireScript moves a code's expiry times to now and reindexes its
// hashes. KEYS: record, hashexp, codeexp. ARGV: now, uuid.
var expireScript = goredis.NewScript(scriptScore + `
local r = redis.call('HMGET', KEYS[1], 'exp', 'lexp', 'sh', 'lh', 'clm')
if not r[1] then return {'notfound'} end
if r[5] then return {'claimed'} end
if not (ARGV[1] < r[2]) then return {'expired'} end
local e = r[1]
if ARGV[1] < e then e = ARGV[1] end
redis.call('HSET', KEYS[1], 'exp', e, 'lexp', ARGV[1])
if r[3] ~= '' then redis.call('ZADD', KEYS[2], score(e), '1:' .. ARGV[2] .. ':' .. r[3]) end
if r[4] ~= '' then redis.call('ZADD', KEYS[2], score(ARGV[1]), '2:' .. ARGV[2] .. ':' .. r[4]) end
redis.call('ZADD', KEYS[3], score(ARGV[1]), ARGV[2])
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, 'ok')
return out
`)

// ExpireCode implements verification.CodeStore.
func (v *VerificationStore) ExpireCode(ctx context.Context, realm, uuid string, now time.Time) (*verification.Code, error) {
	keys := []string{v.codeKey(realm, uuid), v.realmKey(realm, "hashexp"), v.realmKey(realm, "codeexp")}
	res, err := expireScript.Run(ctx, v.s.rdb, keys, nsString(now), uuid).Slice()
	if err == nil {
		switch res[0] {
		case "ok":
			c, derr := decodeCode(pairsToMap(res[1:]))
			if derr != nil {
				err = derr
				break
			}
			if err = v.s.wait(ctx); err == nil {
				return c, nil
			}
		case "notfound":
			err = verification.ErrNotFound
		case "claimed":
			err = verification.ErrClaimed
		case "expired":
			err = verification.ErrExpired
		default:
			err = fmt.Errorf("unexpected reply %v", res[0])
		}
	}
	return nil, fmt.Errorf("expire code %s: %w", uuid, err)
}

// expireHashScript removes one expired hash of a code, counting the code
// as expired unclaimed, and leaving its Spent form, when it was its last.
// KEYS: record, hashes, hashexp, stats of the record's long-expiry day,
// statdays, codeexp. ARGV: member, before, expected long expiry, day, day
// number, Spent JSON, uuid. It returns 1 when the entry went, 0 when it is
// not due, -1 when the record's long expiry changed.
var expireHashScript = goredis.NewScript(scriptScore + scriptCoarse + `
local r = redis.call('HMGET', KEYS[1], 'exp', 'lexp', 'sh', 'lh', 'clm')
local kind = string.sub(ARGV[1], 1, 1)
if not r[1] then
  local h = string.match(ARGV[1], ':([0-9a-f]+)$')
  if h and redis.call('HGET', KEYS[2], h) == string.match(ARGV[1], '^(%d:.*):[0-9a-f]+$') then
    redis.call('HDEL', KEYS[2], h)
  end
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 1
end
local e, mine, other, field = r[1], r[3], r[4], 'sh'
if kind == '2' then e, mine, other, field = r[2], r[4], r[3], 'lh' end
if not (e < ARGV[2]) then return 0 end
if r[2] ~= ARGV[3] then return -1 end
redis.call('ZREM', KEYS[3], ARGV[1])
if mine ~= '' then
  redis.call('HDEL', KEYS[2], mine)
  redis.call('HSET', KEYS[1], field, '')
  if other == '' and not r[5] then
    redis.call('HINCRBY', KEYS[4], 'codesExpired', 1)
    redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4])
    spend(KEYS[1], KEYS[6], ARGV[7], ARGV[6], coarse(r[1]), coarse(r[2]), ARGV[2])
  end
end
return 1
`)

// removeRecordScript deletes a code record whose long code expired before
// ARGV[2], with any hash still indexed. KEYS: record, hashes, hashexp,
// codeexp. ARGV: uuid, before. Returns 1 when the entry went, 0 when not due.
var removeRecordScript = goredis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'lexp', 'sh', 'lh')
if r[1] and not (r[1] < ARGV[2]) then return 0 end
if r[2] and r[2] ~= '' then
  redis.call('HDEL', KEYS[2], r[2])
  redis.call('ZREM', KEYS[3], '1:' .. ARGV[1] .. ':' .. r[2])
end
if r[3] and r[3] ~= '' then
  redis.call('HDEL', KEYS[2], r[3])
  redis.call('ZREM', KEYS[3], '2:' .. ARGV[1] .. ':' .. r[3])
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
`)

// realmsWithData returns the realms that cleanup visits.
func (v *VerificationStore) realmsWithData(ctx context.Context) ([]string, error) {
	realms, err := v.s.rdb.SMembers(ctx, v.verKey("vrealms")).Result()
	if err != nil {
		return nil, err
	}
	sort.Strings(realms)
	return realms, nil
}

// RemoveExpiredCodes implements verification.CodeStore, realm by realm, in
// rounds of at most cleanupChunk entries.
func (v *VerificationStore) RemoveExpiredCodes(ctx context.Context, hashesBefore, recordsBefore time.Time) (int, int, error) {
	realms, err := v.realmsWithData(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("cleanup codes: %w", err)
	}
	hashes, records := 0, 0
	for _, realm := range realms {
		if !beforeEpoch(hashesBefore) {
			n, err := v.removeExpiredHashes(ctx, realm, hashesBefore)
			hashes += n
			if err != nil {
				return hashes, records, fmt.Errorf("cleanup codes of %s: %w", realm, err)
			}
		}
		if !beforeEpoch(recordsBefore) {
			n, err := v.removeExpiredRecords(ctx, realm, recordsBefore)
			records += n
			if err != nil {
				return hashes, records, fmt.Errorf("cleanup codes of %s: %w", realm, err)
			}
		}
	}
	return hashes, records, nil
}

func (v *VerificationStore) removeExpiredHashes(ctx context.Context, realm string, before time.Time) (int, error) {
	hashexp := v.realmKey(realm, "hashexp")
	total, skip := 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		members, err := v.s.rdb.ZRangeByScore(ctx, hashexp, &goredis.ZRangeBy{Min: "-inf", Max: usBefore(before), Offset: int64(skip), Count: cleanupChunk}).Result()
		if err != nil {
			return total, err
		}
		if len(members) == 0 {
			return total, nil
		}
		// The day of each code's long expiry names the stats key the
		// script counts an expired code in; the script checks it is still
		// the record's.
		uuids := make([]string, len(members))
		lexps := make([]*goredis.StringCmd, len(members))
		js := make([]*goredis.StringCmd, len(members))
		if _, err := v.s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, m := range members {
				_, uuids[i], _ = splitIndex(m[:max(0, len(m)-65)])
				lexps[i] = p.HGet(ctx, v.codeKey(realm, uuids[i]), "lexp")
				js[i] = p.HGet(ctx, v.codeKey(realm, uuids[i]), "j") // fixed while the code is unclaimed
			}
			return nil
		}); err != nil && !isNil(err) {
			return total, err
		}
		for i, m := range members {
			for attempt := 0; ; attempt++ {
				lexp, err := lexps[i].Result()
				if err != nil && !isNil(err) {
					return total, err
				}
				day := time.Unix(0, 0)
				if lexp != "" {
					if day, err = parseNS(lexp); err != nil {
						return total, err
					}
				}
				spent := ""
				if j := js[i].Val(); j != "" {
					if spent, err = spentJSON(j, time.Time{}); err != nil {
						return total, err
					}
				}
				keys := []string{v.codeKey(realm, uuids[i]), v.realmKey(realm, "hashes"), hashexp, v.statsKey(realm, day), v.realmKey(realm, "statdays"), v.realmKey(realm, "codeexp")}
				n, err := expireHashScript.Run(ctx, v.s.rdb, keys, m, nsString(before), lexp, verification.UTCDay(day), dayNumber(day), spent, uuids[i]).Int()
				if err != nil {
					return total, err
				}
				if n == -1 && attempt < maxScriptRetries {
					lexps[i] = v.s.rdb.HGet(ctx, v.codeKey(realm, uuids[i]), "lexp")
					continue
				}
				if n == 1 {
					total++
				} else {
					skip++
				}
				break
			}
		}
		if len(members) < cleanupChunk {
			return total, v.s.wait(ctx)
		}
	}
}

func (v *VerificationStore) removeExpiredRecords(ctx context.Context, realm string, before time.Time) (int, error) {
	codeexp := v.realmKey(realm, "codeexp")
	total, skip := 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		uuids, err := v.s.rdb.ZRangeByScore(ctx, codeexp, &goredis.ZRangeBy{Min: "-inf", Max: usBefore(before), Offset: int64(skip), Count: cleanupChunk}).Result()
		if err != nil {
			return total, err
		}
		if len(uuids) == 0 {
			return total, nil
		}
		cmds := make([]*goredis.Cmd, len(uuids))
		if _, err := v.s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, u := range uuids {
				keys := []string{v.codeKey(realm, u), v.realmKey(realm, "hashes"), v.realmKey(realm, "hashexp"), codeexp}
				cmds[i] = removeRecordScript.Eval(ctx, p, keys, u, nsString(before))
			}
			return nil
		}); err != nil {
			return total, err
		}
		for _, c := range cmds {
			if n, _ := c.Int(); n == 1 {
				total++
			} else {
				skip++
			}
		}
		if len(uuids) < cleanupChunk {
			return total, v.s.wait(ctx)
		}
	}
}
