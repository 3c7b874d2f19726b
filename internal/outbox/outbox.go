// Package outbox carries events durably from the processes that produce
// them to the one process that handles them — in Candor, data-use events
// from any replica to the single writer of the transparency log.
//
// A Queue keeps every appended message until it is acknowledged: while the
// consumer is down messages wait; a message handed to a consumer that dies
// before acknowledging it is handed out again (to the same consumer when it
// comes back, or to another once it has been idle long enough). Delivery is
// therefore at least once, and a Relay's handler must be idempotent; the
// transparency log is (recording an entry already logged changes nothing),
// so every event is logged exactly once.
//
// MemoryQueue serves one process and tests; storage/redis implements Queue
// with a Redis stream and a consumer group, shared by every replica.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Message is one event in a queue.
type Message struct {
	// ID identifies the message in its queue; the queue assigns it, in
	// append order.
	ID string
	// Kind says how to read Body.
	Kind string
	Body []byte
}

// Queue is a durable queue read by one group of consumers.
type Queue interface {
	// Append adds a message; a nil error means it is durable.
	Append(ctx context.Context, kind string, body []byte) error
	// Fetch hands up to n messages to consumer, oldest first: those it
	// was given before and did not acknowledge, then those another
	// consumer was given and has left unacknowledged for minIdle, then
	// new ones, waiting up to block (0: not at all) when there are none.
	// A message stays pending until acknowledged.
	Fetch(ctx context.Context, consumer string, n int, minIdle, block time.Duration) ([]Message, error)
	// Ack marks messages handled: they are not handed out again.
	Ack(ctx context.Context, ids ...string) error
	// Len is the number of messages appended and not yet acknowledged.
	Len(ctx context.Context) (int64, error)
}

// Defaults of Relay.
const (
	DefaultBatch   = 64
	DefaultMinIdle = time.Minute
	DefaultBlock   = 2 * time.Second
	// DefaultRetry is how long a Relay waits after a failure.
	DefaultRetry = 5 * time.Second
)

// Relay hands a queue's messages to a handler, one at a time in order,
// and acknowledges each once the handler succeeded. A failed message stays
// pending and comes again after Retry, before any later one.
type Relay struct {
	Queue    Queue
	Consumer string
	Handle   func(context.Context, Message) error
	// Batch, MinIdle, Block and Retry tune Fetch; zero values take the
	// defaults.
	Batch          int
	MinIdle, Block time.Duration
	Retry          time.Duration
	Log            *slog.Logger
}

func (r *Relay) defaults() {
	if r.Batch <= 0 {
		r.Batch = DefaultBatch
	}
	if r.MinIdle <= 0 {
		r.MinIdle = DefaultMinIdle
	}
	if r.Block <= 0 {
		r.Block = DefaultBlock
	}
	if r.Retry <= 0 {
		r.Retry = DefaultRetry
	}
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	r.defaults()
	for ctx.Err() == nil {
		_, err := r.round(ctx, r.Block)
		if err == nil || ctx.Err() != nil {
			continue
		}
		if r.Log != nil {
			r.Log.Warn("outbox relay failed", "consumer", r.Consumer, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(r.Retry):
		}
	}
}

// Drain relays what is in the queue now, without waiting for more, and
// returns how many messages it handled.
func (r *Relay) Drain(ctx context.Context) (int, error) {
	r.defaults()
	total := 0
	for {
		n, err := r.round(ctx, 0)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// round fetches one batch and handles it, stopping at the first failure.
func (r *Relay) round(ctx context.Context, block time.Duration) (int, error) {
	msgs, err := r.Queue.Fetch(ctx, r.Consumer, r.Batch, r.MinIdle, block)
	if err != nil {
		return 0, fmt.Errorf("outbox fetch: %w", err)
	}
	for i, m := range msgs {
		if err := r.Handle(ctx, m); err != nil {
			return i, fmt.Errorf("outbox message %s (%s): %w", m.ID, m.Kind, err)
		}
		if err := r.Queue.Ack(ctx, m.ID); err != nil {
			return i, fmt.Errorf("outbox ack %s: %w", m.ID, err)
		}
	}
	return len(msgs), nil
}

// ErrUnknownKind is what a handler returns for a message of a kind it does
// not know (a newer producer): the message stays pending for a consumer
// that does.
var ErrUnknownKind = errors.New("outbox: unknown message kind")
