package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/storage/internal/record"
)

// Export key names, all under the tag {x} (completing a batch checks the
// lease, writes the record and appends its events in one script):
//
//	<prefix>:{x}:configs             hash: root → Config JSON
//	<prefix>:{x}:lease:<name>        hash: owner, exp (20-digit Unix ns)
//	<prefix>:{x}:batches:<root>      hash: 20-digit window start → Batch JSON (no Padding, Revised)
//	<prefix>:{x}:batchkeys:<root>    hash: same field → padding and revised keys
//	<prefix>:{x}:events              stream: the outbox, entry ID <n>-0 for event n
//	<prefix>:{x}:eventseq            counter: the last event number
//
// A lease key also carries a Redis TTL of its lease time plus leaseGrace,
// so that the leases of exporters that died do not pile up; the lease's
// own expiry (exp, on the caller's clock) is what decides.

const leaseGrace = time.Hour

var _ exporter.Store = (*Store)(nil)

func (s *Store) xKey(name string) string { return s.prefix + ":{x}:" + name }

// batchField is the hash field of a window start: fixed width, so that
// sorting fields sorts windows (as bbolt's big-endian keys do).
func batchField(start time.Time) string { return fmt.Sprintf("%020d", uint64(start.Unix())) }

// ExportConfigs implements exporter.ConfigStore.
func (s *Store) ExportConfigs(ctx context.Context) ([]*exporter.Config, error) {
	all, err := s.rdb.HGetAll(ctx, s.xKey("configs")).Result()
	if err != nil {
		return nil, fmt.Errorf("export configs: %w", err)
	}
	var out []*exporter.Config
	for _, root := range sortedKeys(all) {
		c := new(exporter.Config)
		if err := json.Unmarshal([]byte(all[root]), c); err != nil {
			return nil, fmt.Errorf("export config %q: %w", root, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// ExportConfig implements exporter.ConfigStore.
func (s *Store) ExportConfig(ctx context.Context, root string) (*exporter.Config, error) {
	b, err := s.rdb.HGet(ctx, s.xKey("configs"), root).Bytes()
	if isNil(err) {
		err = exporter.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("export config %q: %w", root, err)
	}
	c := new(exporter.Config)
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("export config %q: %w", root, err)
	}
	return c, nil
}

// UpdateExportConfig implements exporter.ConfigStore with an optimistic
// transaction.
func (s *Store) UpdateExportConfig(ctx context.Context, root string, fn func(*exporter.Config) (*exporter.Config, error)) (*exporter.Config, error) {
	key := s.xKey("configs")
	var out *exporter.Config
	txf := func(tx *goredis.Tx) error {
		var cur *exporter.Config
		b, err := tx.HGet(ctx, key, root).Bytes()
		switch {
		case err == nil:
			cur = new(exporter.Config)
			if err := json.Unmarshal(b, cur); err != nil {
				return fmt.Errorf("decode: %w", err)
			}
		case !isNil(err):
			return err
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		if next.Root != root {
			return fmt.Errorf("update changed the root to %q", next.Root)
		}
		v, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if _, err := tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.HSet(ctx, key, root, v)
			return nil
		}); err != nil {
			return err
		}
		out = next
		return nil
	}
	if err := s.watchRetry(ctx, txf, key); err != nil {
		return nil, fmt.Errorf("export config %q: %w", root, err)
	}
	if err := s.wait(ctx); err != nil {
		return nil, fmt.Errorf("export config %q: %w", root, err)
	}
	return out, nil
}

// acquireLeaseScript gives the lease to ARGV[1] until ARGV[3] unless
// another owner holds it past ARGV[2]. KEYS: lease. ARGV: owner, now,
// expiry, Redis TTL ms. Returns {} or the holder and its expiry.
var acquireLeaseScript = goredis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'owner', 'exp')
if cur[1] and cur[1] ~= ARGV[1] and ARGV[2] < cur[2] then return {cur[1], cur[2]} end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'exp', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {}
`)

// releaseLeaseScript deletes the lease if ARGV[1] holds it.
var releaseLeaseScript = goredis.NewScript(`
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`)

// AcquireLease implements lease.Store.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) error {
	exp := now.Add(ttl)
	res, err := acquireLeaseScript.Run(ctx, s.rdb, []string{s.xKey("lease:" + name)}, owner, nsString(now), nsString(exp), (ttl + leaseGrace).Milliseconds()).StringSlice()
	if err != nil {
		return fmt.Errorf("lease %s: %w", name, err)
	}
	if len(res) == 2 {
		until, _ := parseNS(res[1])
		return fmt.Errorf("lease %s: %w (%s until %s)", name, exporter.ErrLeaseHeld, res[0], until.Format(time.RFC3339))
	}
	if err := s.wait(ctx); err != nil {
		return fmt.Errorf("lease %s: %w", name, err)
	}
	return nil
}

// ReleaseLease implements lease.Store.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	if err := releaseLeaseScript.Run(ctx, s.rdb, []string{s.xKey("lease:" + name)}, owner).Err(); err != nil {
		return fmt.Errorf("lease %s: %w", name, err)
	}
	return nil
}

// Batch implements exporter.BatchStore.
func (s *Store) Batch(ctx context.Context, root string, start time.Time) (*exporter.Batch, error) {
	f := batchField(start)
	var sum, keys *goredis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		sum = p.HGet(ctx, s.xKey("batches:"+root), f)
		keys = p.HGet(ctx, s.xKey("batchkeys:"+root), f)
		return nil
	})
	if err != nil && !isNil(err) {
		return nil, fmt.Errorf("export batch %s/%d: %w", root, start.Unix(), err)
	}
	v, err := sum.Bytes()
	if isNil(err) {
		err = exporter.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("export batch %s/%d: %w", root, start.Unix(), err)
	}
	out := new(exporter.Batch)
	if err := json.Unmarshal(v, out); err != nil {
		return nil, fmt.Errorf("export batch %s/%d: %w", root, start.Unix(), err)
	}
	if kv, err := keys.Bytes(); err == nil {
		if err := record.DecodeBatchKeys(kv, out); err != nil {
			return nil, fmt.Errorf("export batch %s/%d: %w", root, start.Unix(), err)
		}
	}
	return out, nil
}

// Batches implements exporter.BatchStore.
func (s *Store) Batches(ctx context.Context, root string) ([]*exporter.Batch, error) {
	all, err := s.rdb.HGetAll(ctx, s.xKey("batches:"+root)).Result()
	if err != nil {
		return nil, fmt.Errorf("export batches of %s: %w", root, err)
	}
	var out []*exporter.Batch
	for _, f := range sortedKeys(all) {
		b := new(exporter.Batch)
		if err := json.Unmarshal([]byte(all[f]), b); err != nil {
			return nil, fmt.Errorf("export batches of %s: batch %s: %w", root, f, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// appendEventsLua appends the events ARGV[first..] to the outbox stream,
// numbering them from the counter. KEYS[seq], KEYS[stream] are given by the
// script that includes it.
const appendEventsLua = `
local function append(seq, stream, first)
  for i = first, #ARGV do
    local n = redis.call('INCR', seq)
    redis.call('XADD', stream, n .. '-0', 'e', ARGV[i])
  end
end
`

// completeBatchScript records a batch, appends its events and releases the
// lease, provided ARGV[1] still holds the lease (or nobody does) and the
// window has no record yet. KEYS: lease, batches, batchkeys, eventseq,
// events. ARGV: owner, field, summary, keys, events….
var completeBatchScript = goredis.NewScript(appendEventsLua + `
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return 'lost' end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 'lost' end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
append(KEYS[4], KEYS[5], 5)
if owner then redis.call('DEL', KEYS[1]) end
return 'ok'
`)

// appendEventsScript appends events. KEYS: eventseq, events. ARGV: events….
var appendEventsScript = goredis.NewScript(appendEventsLua + `
append(KEYS[1], KEYS[2], 1)
return 'ok'
`)

// eventArgs encodes events for the scripts; the store assigns the IDs.
func eventArgs(events []exporter.Event) ([]any, error) {
	out := make([]any, len(events))
	for i, ev := range events {
		ev.ID = 0
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// CompleteBatch implements exporter.BatchStore in one script.
func (s *Store) CompleteBatch(ctx context.Context, b *exporter.Batch, leaseName, owner string, events []exporter.Event) error {
	summary := *b
	summary.Padding, summary.Revised = nil, nil
	sum, err := json.Marshal(&summary)
	if err != nil {
		return fmt.Errorf("export batch: %w", err)
	}
	evs, err := eventArgs(events)
	if err != nil {
		return fmt.Errorf("export batch: %w", err)
	}
	keys := []string{s.xKey("lease:" + leaseName), s.xKey("batches:" + b.Root), s.xKey("batchkeys:" + b.Root), s.xKey("eventseq"), s.xKey("events")}
	args := append([]any{owner, batchField(b.Start), sum, record.EncodeBatchKeys(b)}, evs...)
	res, err := completeBatchScript.Run(ctx, s.rdb, keys, args...).Text()
	if err == nil && res == "lost" {
		err = exporter.ErrLeaseLost
	}
	if err == nil {
		err = s.wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("complete export batch %s/%d: %w", b.Root, b.Start.Unix(), err)
	}
	return nil
}

// DeleteBatches implements exporter.BatchStore. The records are removed in
// one transaction; a batch is returned only by the call whose HDEL removed
// it, so two concurrent retention runs do not both report it.
func (s *Store) DeleteBatches(ctx context.Context, root string, cutoff time.Time) ([]*exporter.Batch, error) {
	list, err := s.Batches(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("delete export batches of %s: %w", root, err)
	}
	var due []*exporter.Batch
	for _, b := range list {
		if !b.End.After(cutoff) {
			due = append(due, b)
		}
	}
	if len(due) == 0 {
		return nil, nil
	}
	dels := make([]*goredis.IntCmd, len(due))
	_, err = s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for i, b := range due {
			f := batchField(b.Start)
			dels[i] = p.HDel(ctx, s.xKey("batches:"+root), f)
			p.HDel(ctx, s.xKey("batchkeys:"+root), f)
		}
		return nil
	})
	if err == nil {
		err = s.wait(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("delete export batches of %s: %w", root, err)
	}
	var out []*exporter.Batch
	for i, b := range due {
		if dels[i].Val() == 1 {
			out = append(out, b)
		}
	}
	return out, nil
}

// AppendEvents implements exporter.BatchStore.
func (s *Store) AppendEvents(ctx context.Context, events []exporter.Event) error {
	if len(events) == 0 {
		return nil
	}
	evs, err := eventArgs(events)
	if err == nil {
		err = appendEventsScript.Run(ctx, s.rdb, []string{s.xKey("eventseq"), s.xKey("events")}, evs...).Err()
	}
	if err == nil {
		err = s.wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("export events: %w", err)
	}
	return nil
}

// PendingEvents implements exporter.BatchStore.
func (s *Store) PendingEvents(ctx context.Context, limit int) ([]exporter.Event, error) {
	msgs, err := s.rdb.XRangeN(ctx, s.xKey("events"), "-", "+", int64(limit)).Result()
	if err != nil {
		return nil, fmt.Errorf("export events: %w", err)
	}
	var out []exporter.Event
	for _, m := range msgs {
		id, ok := strings.CutSuffix(m.ID, "-0")
		n, err := strconv.ParseUint(id, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("export events: entry %s: not an event ID", m.ID)
		}
		raw, _ := m.Values["e"].(string)
		var ev exporter.Event
		if err := json.Unmarshal([]byte(raw), &ev); err != nil {
			return nil, fmt.Errorf("export events: event %d: %w", n, err)
		}
		ev.ID = n
		out = append(out, ev)
	}
	return out, nil
}

// AckEvent implements exporter.BatchStore.
func (s *Store) AckEvent(ctx context.Context, id uint64) error {
	err := s.rdb.XDel(ctx, s.xKey("events"), strconv.FormatUint(id, 10)+"-0").Err()
	if err == nil {
		err = s.wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("export event %d: %w", id, err)
	}
	return nil
}

// ScanExportExposures implements exporter.ExposureSource.
func (s *Store) ScanExportExposures(ctx context.Context, revised bool, from, to time.Time, fn func(*keyserver.Exposure) error) (int, error) {
	index := s.createdKey()
	if revised {
		index = s.revisedKey()
	}
	return s.scan(ctx, index, from, to, fn)
}

// CountExportExposures implements exporter.ExposureSource.
func (s *Store) CountExportExposures(ctx context.Context, revised bool, from, to time.Time) (int, error) {
	index := s.createdKey()
	if revised {
		index = s.revisedKey()
	}
	n, err := s.rdb.ZCount(ctx, index, strconv.FormatInt(from.Unix(), 10), "("+strconv.FormatInt(to.Unix(), 10)).Result()
	if err != nil {
		return 0, fmt.Errorf("count exposures: %w", err)
	}
	return int(n), nil
}
