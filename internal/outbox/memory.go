package outbox

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// MemoryQueue is a Queue in one process's memory: durable only as long as
// the process lives. Its clock is injectable for the idle times.
type MemoryQueue struct {
	now func() time.Time

	mu      sync.Mutex
	next    int64
	msgs    []*memoryMsg // unacknowledged, in ID order
	arrived chan struct{}
}

type memoryMsg struct {
	Message
	n         int64
	consumer  string // "" until handed out
	deliverAt time.Time
}

// NewMemoryQueue returns an empty queue; now is its clock (time.Now when
// nil).
func NewMemoryQueue(now func() time.Time) *MemoryQueue {
	if now == nil {
		now = time.Now
	}
	return &MemoryQueue{now: now, arrived: make(chan struct{})}
}

// Append implements Queue.
func (q *MemoryQueue) Append(_ context.Context, kind string, body []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.next++
	q.msgs = append(q.msgs, &memoryMsg{Message: Message{ID: strconv.FormatInt(q.next, 10), Kind: kind, Body: append([]byte(nil), body...)}, n: q.next})
	close(q.arrived)
	q.arrived = make(chan struct{})
	return nil
}

// Fetch implements Queue.
func (q *MemoryQueue) Fetch(ctx context.Context, consumer string, n int, minIdle, block time.Duration) ([]Message, error) {
	deadline := time.Now().Add(block)
	for {
		q.mu.Lock()
		now := q.now()
		var out []Message
		take := func(pred func(*memoryMsg) bool) {
			for _, m := range q.msgs {
				if len(out) >= n {
					return
				}
				if pred(m) {
					m.consumer, m.deliverAt = consumer, now
					out = append(out, m.Message)
				}
			}
		}
		take(func(m *memoryMsg) bool { return m.consumer == consumer })
		take(func(m *memoryMsg) bool {
			return m.consumer != "" && m.consumer != consumer && now.Sub(m.deliverAt) >= minIdle
		})
		take(func(m *memoryMsg) bool { return m.consumer == "" })
		arrived := q.arrived
		q.mu.Unlock()
		// A consumer's own pending messages come back at once; wait only
		// when there is nothing at all.
		if len(out) > 0 || block <= 0 || !time.Now().Before(deadline) {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-arrived:
		case <-time.After(time.Until(deadline)):
		}
	}
}

// Ack implements Queue.
func (q *MemoryQueue) Ack(_ context.Context, ids ...string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	drop := map[string]bool{}
	for _, id := range ids {
		drop[id] = true
	}
	kept := q.msgs[:0]
	for _, m := range q.msgs {
		if !drop[m.ID] {
			kept = append(kept, m)
		}
	}
	q.msgs = kept
	return nil
}

// Len implements Queue.
func (q *MemoryQueue) Len(context.Context) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int64(len(q.msgs)), nil
}
