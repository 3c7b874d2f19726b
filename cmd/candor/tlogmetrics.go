package main

import (
	"context"

	"github.com/candor-en/candor/transparency"
)

// watchCheckpoint registers the log's checkpoint metrics and keeps them
// current; the log role calls it.
func (m *Main) watchCheckpoint(ctx context.Context) {
	if m.DataLog == nil {
		return
	}
	w := transparency.NewCheckpointWatch(m.DataLog, m.Config.now)
	if err := w.Register(m.Registry); err != nil {
		m.Log.Warn("transparency metrics", "err", err)
		return
	}
	m.every(ctx, transparency.CheckpointWatchInterval, "transparency checkpoint watch", w.Refresh)
}
