package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/candor-en/candor/internal/outbox"
)

// outboxGroup is the consumer group of every outbox stream.
const outboxGroup = "candor"

// Outbox implements outbox.Queue with a Redis stream and a consumer group:
//
//	<prefix>:{ob:<name>}:stream   entries with fields kind and body
//
// Append is XADD (durable as Redis' AOF is, see deploy/redis); Fetch reads
// the consumer's own pending entries (XREADGROUP from 0: handed out before a
// crash), claims entries idle in other consumers (XAUTOCLAIM: a consumer
// that died), then reads new ones (XREADGROUP >, blocking); Ack is XACK and
// XDEL in one transaction, so the stream holds exactly the unacknowledged
// messages.
type Outbox struct {
	s      *Store
	stream string

	mu      sync.Mutex
	grouped bool
}

var _ outbox.Queue = (*Outbox)(nil)

// NewOutbox returns the outbox called name on s.
func NewOutbox(s *Store, name string) *Outbox {
	return &Outbox{s: s, stream: s.prefix + ":{ob:" + name + "}:stream"}
}

// Append implements outbox.Queue.
func (o *Outbox) Append(ctx context.Context, kind string, body []byte) error {
	err := o.s.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: o.stream, Values: []any{"kind", kind, "body", body}}).Err()
	if err == nil {
		err = o.s.wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("outbox append: %w", err)
	}
	return nil
}

// ensureGroup creates the consumer group (and the stream) once; from 0, so
// that messages appended before any consumer started are read.
func (o *Outbox) ensureGroup(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.grouped {
		return nil
	}
	err := o.s.rdb.XGroupCreateMkStream(ctx, o.stream, outboxGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("outbox group: %w", err)
	}
	o.grouped = true
	return nil
}

func toMessages(xs []goredis.XMessage) []outbox.Message {
	out := make([]outbox.Message, 0, len(xs))
	for _, x := range xs {
		if x.Values == nil {
			continue // deleted while pending
		}
		kind, _ := x.Values["kind"].(string)
		body, _ := x.Values["body"].(string)
		out = append(out, outbox.Message{ID: x.ID, Kind: kind, Body: []byte(body)})
	}
	return out
}

// Fetch implements outbox.Queue.
func (o *Outbox) Fetch(ctx context.Context, consumer string, n int, minIdle, block time.Duration) ([]outbox.Message, error) {
	if err := o.ensureGroup(ctx); err != nil {
		return nil, err
	}
	var out []outbox.Message
	// Own pending first: what this consumer took before it restarted.
	own, err := o.s.rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: outboxGroup, Consumer: consumer, Streams: []string{o.stream, "0"}, Count: int64(n), Block: -1}).Result()
	if err != nil && !isNil(err) {
		return nil, fmt.Errorf("outbox fetch: %w", err)
	}
	for _, st := range own {
		out = append(out, toMessages(st.Messages)...)
	}
	if len(out) < n {
		claimed, _, err := o.s.rdb.XAutoClaim(ctx, &goredis.XAutoClaimArgs{Stream: o.stream, Group: outboxGroup, Consumer: consumer, MinIdle: minIdle, Start: "0", Count: int64(n - len(out))}).Result()
		if err != nil && !isNil(err) {
			return nil, fmt.Errorf("outbox claim: %w", err)
		}
		out = append(out, toMessages(claimed)...)
	}
	if len(out) > 0 {
		return out, nil
	}
	b := block
	if b <= 0 {
		b = -1 // no BLOCK argument: answer at once
	}
	fresh, err := o.s.rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: outboxGroup, Consumer: consumer, Streams: []string{o.stream, ">"}, Count: int64(n), Block: b}).Result()
	if isNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outbox fetch: %w", err)
	}
	for _, st := range fresh {
		out = append(out, toMessages(st.Messages)...)
	}
	return out, nil
}

// Ack implements outbox.Queue.
func (o *Outbox) Ack(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := o.s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.XAck(ctx, o.stream, outboxGroup, ids...)
		p.XDel(ctx, o.stream, ids...)
		return nil
	})
	if err == nil {
		err = o.s.wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("outbox ack: %w", err)
	}
	return nil
}

// Len implements outbox.Queue.
func (o *Outbox) Len(ctx context.Context) (int64, error) {
	n, err := o.s.rdb.XLen(ctx, o.stream).Result()
	if err != nil {
		return 0, fmt.Errorf("outbox length: %w", err)
	}
	return n, nil
}
