// Package queuetest is the conformance suite of outbox.Queue: the memory
// queue and the Redis stream run the same tests.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/internal/outbox"
)

// Run runs the conformance tests; open returns a fresh, empty queue.
func Run(t *testing.T, open func(t *testing.T) outbox.Queue) {
	ctx := context.Background()

	t.Run("messages wait for the consumer and come in order", func(t *testing.T) {
		q := open(t)
		for i := range 5 {
			if err := q.Append(ctx, "k", []byte(fmt.Sprint("m", i))); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := q.Len(ctx); err != nil || n != 5 {
			t.Fatalf("Len = %d, %v", n, err)
		}
		msgs, err := q.Fetch(ctx, "c1", 3, time.Minute, 0)
		if err != nil || len(msgs) != 3 {
			t.Fatalf("fetch: %d, %v", len(msgs), err)
		}
		for i, m := range msgs {
			if m.Kind != "k" || string(m.Body) != fmt.Sprint("m", i) || m.ID == "" {
				t.Errorf("message %d: %+v", i, m)
			}
		}
		if err := q.Ack(ctx, msgs[0].ID, msgs[1].ID, msgs[2].ID); err != nil {
			t.Fatal(err)
		}
		rest, err := q.Fetch(ctx, "c1", 10, time.Minute, 0)
		if err != nil || len(rest) != 2 || string(rest[0].Body) != "m3" {
			t.Fatalf("rest: %+v, %v", rest, err)
		}
		q.Ack(ctx, rest[0].ID, rest[1].ID)
		if n, _ := q.Len(ctx); n != 0 {
			t.Errorf("Len after acking all = %d", n)
		}
		none, err := q.Fetch(ctx, "c1", 10, time.Minute, 0)
		if err != nil || len(none) != 0 {
			t.Errorf("empty queue gave %+v, %v", none, err)
		}
	})

	t.Run("unacknowledged messages come back", func(t *testing.T) {
		q := open(t)
		q.Append(ctx, "k", []byte("a"))
		q.Append(ctx, "k", []byte("b"))
		first, _ := q.Fetch(ctx, "c1", 1, time.Hour, 0)
		if len(first) != 1 || string(first[0].Body) != "a" {
			t.Fatalf("first: %+v", first)
		}
		// c1 "crashes" and restarts: its pending message comes first.
		again, _ := q.Fetch(ctx, "c1", 10, time.Hour, 0)
		if len(again) == 0 || again[0].ID != first[0].ID {
			t.Fatalf("after restart: %+v", again)
		}
		// Another consumer does not get c1's recent pending message.
		other, _ := q.Fetch(ctx, "c2", 10, time.Hour, 0)
		for _, m := range other {
			if m.ID == first[0].ID {
				t.Fatalf("c2 got c1's fresh pending message")
			}
		}
	})

	t.Run("an idle consumer's messages are claimed", func(t *testing.T) {
		q := open(t)
		q.Append(ctx, "k", []byte("a"))
		taken, _ := q.Fetch(ctx, "dead", 1, time.Hour, 0)
		if len(taken) != 1 {
			t.Fatal("nothing fetched")
		}
		time.Sleep(20 * time.Millisecond)
		got, err := q.Fetch(ctx, "alive", 10, 10*time.Millisecond, 0)
		if err != nil || len(got) != 1 || got[0].ID != taken[0].ID {
			t.Fatalf("claim: %+v, %v", got, err)
		}
	})

	t.Run("fetch waits for new messages", func(t *testing.T) {
		q := open(t)
		q.Fetch(ctx, "c", 1, time.Hour, 0) // creates what the queue needs
		go func() {
			time.Sleep(50 * time.Millisecond)
			q.Append(ctx, "k", []byte("late"))
		}()
		start := time.Now()
		got, err := q.Fetch(ctx, "c", 1, time.Hour, 5*time.Second)
		if err != nil || len(got) != 1 || string(got[0].Body) != "late" {
			t.Fatalf("blocking fetch: %+v, %v", got, err)
		}
		if time.Since(start) > 4*time.Second {
			t.Error("fetch waited for its whole block time")
		}
	})

	t.Run("relay: exactly once through an idempotent handler, across a crash", func(t *testing.T) {
		q := open(t)
		const n = 50
		for i := range n {
			q.Append(ctx, "event", []byte(fmt.Sprint(i)))
		}
		var mu sync.Mutex
		logged := map[string]int{}
		record := func(_ context.Context, m outbox.Message) error {
			mu.Lock()
			defer mu.Unlock()
			if m.Kind != "event" {
				return outbox.ErrUnknownKind
			}
			logged[string(m.Body)]++
			return nil
		}
		// The first log writer handles some messages, then dies between
		// handling one and acknowledging it.
		crash := errors.New("crash")
		handled := 0
		r1 := &outbox.Relay{Queue: q, Consumer: "log-a", Batch: 8, Handle: func(ctx context.Context, m outbox.Message) error {
			if handled == 20 {
				record(ctx, m) // written, not acknowledged
				return crash
			}
			handled++
			return record(ctx, m)
		}}
		if _, err := r1.Drain(ctx); !errors.Is(err, crash) {
			t.Fatalf("first relay: %v", err)
		}
		// A second writer takes over once the first has been idle.
		time.Sleep(20 * time.Millisecond)
		r2 := &outbox.Relay{Queue: q, Consumer: "log-b", MinIdle: 10 * time.Millisecond, Handle: func(ctx context.Context, m outbox.Message) error {
			mu.Lock()
			seen := logged[string(m.Body)] > 0
			mu.Unlock()
			if seen { // the log ignores what it has
				return nil
			}
			return record(ctx, m)
		}}
		if _, err := r2.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		if len(logged) != n {
			t.Fatalf("%d of %d events logged", len(logged), n)
		}
		for k, c := range logged {
			if c != 1 {
				t.Errorf("event %s logged %d times", k, c)
			}
		}
		if l, _ := q.Len(ctx); l != 0 {
			t.Errorf("%d messages left", l)
		}
	})
}
