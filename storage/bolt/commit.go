package bolt

import (
	"errors"
	"fmt"
	"sync"

	bbolt "go.etcd.io/bbolt"
)

// maxGroupCommit bounds the writes in one group commit.
const maxGroupCommit = 1024

// errClosed is returned by writes to a store that is closed or read-only.
var errClosed = errors.New("store is closed or read-only")

// committer is the one writer of a DB: every write transaction goes through
// it. It runs write functions in shared transactions, one fsync for many
// writes, without waiting for a timer (bbolt's Batch waits 10 ms by default
// on every write), so the batch size follows the load. A write joins the
// queue; if no commit is running its caller leads: it commits everything
// queued in one transaction; writes that queued meanwhile go into the next
// commit, led by the first of them. Within a transaction the functions run
// one after another and see each other's writes, so check-and-mark stays
// atomic. Each caller returns once its write is durable.
type committer struct {
	db *bbolt.DB
	// begin, if set, is called at the start of every write transaction,
	// before its writes, to reset state kept for one transaction.
	begin func(*bbolt.Tx)

	mu     sync.Mutex
	queue  []*groupWrite
	active bool // a leader is committing

	closeMu sync.RWMutex // held for reading by every write in progress
	closed  bool
}

type groupWrite struct {
	fn   func(*bbolt.Tx) error
	err  error
	lead bool          // set under mu before done is signalled
	done chan struct{} // signalled once: committed, or promoted to lead
}

// close waits for the writes in progress and refuses later ones.
func (g *committer) close() {
	g.closeMu.Lock()
	g.closed = true
	g.closeMu.Unlock()
}

// update runs fn in a write transaction shared with concurrent writes and
// returns once it is durable. fn may run more than once (when another write
// of its group fails, each is retried alone) and must be idempotent: it
// must not keep state from one run to the next. fn must not call update.
func (g *committer) update(fn func(*bbolt.Tx) error) error {
	g.closeMu.RLock()
	defer g.closeMu.RUnlock()
	if g.closed || g.db.IsReadOnly() {
		return errClosed
	}
	w := &groupWrite{fn: fn, done: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	lead := !g.active
	g.active = true
	g.mu.Unlock()
	if !lead {
		<-w.done
		g.mu.Lock()
		lead = w.lead
		g.mu.Unlock()
		if !lead {
			return w.err
		}
	}
	g.mu.Lock()
	n := min(len(g.queue), maxGroupCommit)
	batch := g.queue[:n:n]
	g.queue = append([]*groupWrite(nil), g.queue[n:]...)
	g.mu.Unlock()

	// Hand over and release the batch even if a write panics, so that no
	// writer waits forever.
	defer func() {
		if p := recover(); p != nil {
			for _, b := range batch {
				b.err = fmt.Errorf("store: a write panicked: %v", p)
			}
			g.finish(batch, w)
			panic(p)
		}
	}()
	g.commit(batch)
	g.finish(batch, w)
	return w.err
}

// finish passes the lead to the first queued write (or ends the run) and
// releases the writes of the batch other than its leader.
func (g *committer) finish(batch []*groupWrite, leader *groupWrite) {
	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		next.lead = true
		next.done <- struct{}{}
	} else {
		g.active = false
	}
	g.mu.Unlock()
	for _, b := range batch {
		if b != leader {
			b.done <- struct{}{}
		}
	}
}

// commit runs the batch in one transaction; if it fails, each write is
// retried alone so that one failure fails only its own caller.
func (g *committer) commit(batch []*groupWrite) {
	err := g.db.Update(func(tx *bbolt.Tx) error {
		g.start(tx)
		for _, w := range batch {
			if err := w.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(batch) == 1 {
		for _, w := range batch {
			w.err = err
		}
		return
	}
	for _, w := range batch {
		w.err = g.db.Update(func(tx *bbolt.Tx) error {
			g.start(tx)
			return w.fn(tx)
		})
	}
}

func (g *committer) start(tx *bbolt.Tx) {
	if g.begin != nil {
		g.begin(tx)
	}
}
