// Package lease is the port for leases: named, owned, expiring locks in a
// store that processes share. The exporter holds one per export window, so
// that two exporters never produce the same batch; a process starting on a
// shared store holds one while it creates keysets and secrets, so that they
// are created once.
package lease

import (
	"context"
	"errors"
	"time"
)

// ErrHeld is returned by Store.AcquireLease when another owner holds an
// unexpired lease: skip the work, or wait and try again; the other owner
// is on it.
var ErrHeld = errors.New("lease held by another exporter")

// Store keeps leases. A lease that its owner did not release (a crash)
// expires after its TTL.
type Store interface {
	// AcquireLease gives the lease name to owner until now + ttl, when it is
	// free, expired or already owner's; otherwise it returns ErrHeld.
	AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) error
	// ReleaseLease frees the lease if owner holds it; otherwise it does
	// nothing.
	ReleaseLease(ctx context.Context, name, owner string) error
}
