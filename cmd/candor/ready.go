package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// ReadyTimeout bounds a readiness check: a frozen store must turn /ready
// into 503 before an orchestrator's probe gives up on the answer
// (Kubernetes waits one second by default).
const ReadyTimeout = 800 * time.Millisecond

// readiness runs the checks behind /ready. One check runs at a time and
// probes that arrive meanwhile share its result, so a store that hangs
// does not pile up checks.
type readiness struct {
	mu       sync.Mutex
	inflight chan struct{} // closed when the running check ends
	err      error         // of the last check that ended
	failing  bool          // the last answer, to log changes only
}

// errNotReadyInTime is a check that outlived ReadyTimeout.
var errNotReadyInTime = errors.New("no answer within the readiness timeout")

// readyCheck checks what this process needs to serve its roles now: a
// shared store answers, and the log role's published checkpoint reads and
// verifies. The embedded store is a file this process holds open and
// locked: nothing to ask.
func (m *Main) readyCheck(ctx context.Context) error {
	if m.Redis != nil {
		if err := m.Redis.Client().Ping(ctx).Err(); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	if m.DataLog != nil {
		if _, err := m.DataLog.Checkpoint(ctx); err != nil {
			return fmt.Errorf("transparency log: %w", err)
		}
	}
	return nil
}

// isReady runs (or joins) a check and waits for it at most ReadyTimeout.
func (m *Main) isReady(ctx context.Context) error {
	r := &m.ready
	r.mu.Lock()
	done := r.inflight
	if done == nil {
		done = make(chan struct{})
		r.inflight = done
		go func() {
			// Not the probe's context: the check may outlive a probe that
			// gave up, and the next probe joins it.
			cctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
			err := m.readyCheck(cctx)
			cancel()
			r.mu.Lock()
			r.err, r.inflight = err, nil
			r.mu.Unlock()
			close(done)
		}()
	}
	r.mu.Unlock()
	t := time.NewTimer(ReadyTimeout)
	defer t.Stop()
	select {
	case <-done:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.err
	case <-t.C:
		return errNotReadyInTime
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serveReady answers readiness: 200 when the checks pass, else 503, so
// that a replica whose store is down or frozen leaves the load balancer
// while /health keeps it alive. Changes are logged, not every probe.
func (m *Main) serveReady(c echo.Context) error {
	err := m.isReady(c.Request().Context())
	r := &m.ready
	r.mu.Lock()
	changed := (err != nil) != r.failing
	r.failing = err != nil
	r.mu.Unlock()
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	if err != nil {
		if changed {
			m.Log.Warn("not ready", "err", err)
		}
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
	}
	if changed {
		m.Log.Info("ready again")
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
