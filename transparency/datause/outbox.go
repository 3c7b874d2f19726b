package datause

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/candor-en/candor/internal/outbox"
	"github.com/candor-en/candor/keyserver/exporter"
)

// Data-use events reach the transparency log in the process that runs the
// log. On a shared store, a process without the log appends the exporter's
// events to a queue (QueueEvents); the log process relays them into the
// log (Recorder.Handle). Delivery is at least once and recording is
// idempotent, so each event is logged once, and none is lost while the log
// process is down: the exporter acknowledges an event in its own outbox
// only once it is in the queue, and the relay acknowledges it there only
// once it is logged.

// Kinds of queued data-use messages.
const (
	KindFilePublished = "export.file_published"
	KindRetention     = "export.retention"
	KindRootAdded     = "export.root_added"
)

// QueueEvents are exporter hooks that append each event to q, for the
// process that runs the log.
func QueueEvents(q outbox.Queue) exporter.Events {
	appendJSON := func(ctx context.Context, kind string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return q.Append(ctx, kind, b)
	}
	return exporter.Events{
		OnFilePublished: func(ctx context.Context, f exporter.FilePublished) error {
			return appendJSON(ctx, KindFilePublished, f)
		},
		OnRetention: func(ctx context.Context, r exporter.RetentionResult) error {
			return appendJSON(ctx, KindRetention, r)
		},
		OnRootAdded: func(ctx context.Context, r exporter.RootAdded) error {
			return appendJSON(ctx, KindRootAdded, r)
		},
	}
}

// Handler returns an outbox.Relay handler that records each queued event
// in the log, as ExportEvents(keys) would have.
func (r *Recorder) Handler(keys ExportKeys) func(context.Context, outbox.Message) error {
	hooks := r.ExportEvents(keys)
	return func(ctx context.Context, msg outbox.Message) error {
		switch msg.Kind {
		case KindFilePublished:
			var f exporter.FilePublished
			if err := json.Unmarshal(msg.Body, &f); err != nil {
				return fmt.Errorf("%s: %w", msg.Kind, err)
			}
			return hooks.OnFilePublished(ctx, f)
		case KindRetention:
			var res exporter.RetentionResult
			if err := json.Unmarshal(msg.Body, &res); err != nil {
				return fmt.Errorf("%s: %w", msg.Kind, err)
			}
			return hooks.OnRetention(ctx, res)
		case KindRootAdded:
			var root exporter.RootAdded
			if err := json.Unmarshal(msg.Body, &root); err != nil {
				return fmt.Errorf("%s: %w", msg.Kind, err)
			}
			return hooks.OnRootAdded(ctx, root)
		}
		return fmt.Errorf("%w %q", outbox.ErrUnknownKind, msg.Kind)
	}
}
