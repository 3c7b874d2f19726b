package transparency

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CheckpointWatch follows the log's published checkpoint for the metrics
// the alert on checkpoint age needs (deploy/prometheus/alerts.yml): how
// many entries wait for a checkpoint, and for how long the published
// checkpoint has not grown.
type CheckpointWatch struct {
	log *Log
	now func() time.Time

	mu      sync.Mutex
	size    uint64 // of the last published checkpoint seen
	changed time.Time
	pending uint64
}

// CheckpointWatchInterval is how often a CheckpointWatch should be
// refreshed.
const CheckpointWatchInterval = 10 * time.Second

// NewCheckpointWatch returns a watch of l; now is the clock (time.Now when
// nil).
func NewCheckpointWatch(l *Log, now func() time.Time) *CheckpointWatch {
	if now == nil {
		now = time.Now
	}
	return &CheckpointWatch{log: l, now: now, changed: now()}
}

// Register registers the gauges candor_tlog_checkpoint_age_seconds and
// candor_tlog_pending_entries with reg.
func (w *CheckpointWatch) Register(reg prometheus.Registerer) error {
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "candor_tlog_checkpoint_age_seconds",
		Help: "Seconds since the published checkpoint of the transparency log last grew (alert when entries wait: candor_tlog_pending_entries > 0).",
	}, func() float64 {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.now().Sub(w.changed).Seconds()
	})
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "candor_tlog_pending_entries",
		Help: "Entries of the transparency log not yet covered by a published checkpoint.",
	}, func() float64 {
		w.mu.Lock()
		defer w.mu.Unlock()
		return float64(w.pending)
	})
	if err := reg.Register(age); err != nil {
		return err
	}
	return reg.Register(pending)
}

// Refresh reads the published checkpoint and updates the gauges.
func (w *CheckpointWatch) Refresh(ctx context.Context) error {
	if w.log == nil {
		return errors.New("transparency log is not open")
	}
	cp, err := w.log.Checkpoint(ctx)
	if err != nil {
		return err
	}
	size := w.log.Size()
	w.mu.Lock()
	defer w.mu.Unlock()
	if cp.Size != w.size {
		w.size, w.changed = cp.Size, w.now()
	}
	w.pending = 0
	if size > cp.Size {
		w.pending = size - cp.Size
	}
	return nil
}
