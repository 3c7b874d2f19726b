package main

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// tlogWatch follows the log's published checkpoint for the metrics the
// alert on checkpoint age needs (deploy/prometheus/alerts.yml): how many
// entries wait for a checkpoint, and for how long the published checkpoint
// has not grown.
type tlogWatch struct {
	mu      sync.Mutex
	size    uint64 // of the last published checkpoint seen
	changed time.Time
	pending uint64
}

// tlogWatchInterval is how often the checkpoint is read.
const tlogWatchInterval = 10 * time.Second

// watchCheckpoint registers the metrics and starts following the
// checkpoint; the log role calls it.
func (m *Main) watchCheckpoint(ctx context.Context) {
	if m.DataLog == nil {
		return
	}
	w := &tlogWatch{changed: m.Config.now()}
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "candor_tlog_checkpoint_age_seconds",
		Help: "Seconds since the published checkpoint of the transparency log last grew (alert when entries wait: candor_tlog_pending_entries > 0).",
	}, func() float64 {
		w.mu.Lock()
		defer w.mu.Unlock()
		return m.Config.now().Sub(w.changed).Seconds()
	})
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "candor_tlog_pending_entries",
		Help: "Entries of the transparency log not yet covered by a published checkpoint.",
	}, func() float64 {
		w.mu.Lock()
		defer w.mu.Unlock()
		return float64(w.pending)
	})
	if err := m.Registry.Register(age); err != nil {
		m.Log.Warn("transparency metrics", "err", err)
		return
	}
	if err := m.Registry.Register(pending); err != nil {
		m.Log.Warn("transparency metrics", "err", err)
		return
	}
	m.every(ctx, tlogWatchInterval, "transparency checkpoint watch", func(ctx context.Context) error {
		cp, err := m.DataLog.Checkpoint(ctx)
		if err != nil {
			return err
		}
		size := m.DataLog.Size()
		w.mu.Lock()
		defer w.mu.Unlock()
		if cp.Size != w.size {
			w.size, w.changed = cp.Size, m.Config.now()
		}
		w.pending = 0
		if size > cp.Size {
			w.pending = size - cp.Size
		}
		return nil
	})
}
