package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-en/candor/internal/outbox"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/storage/redis"
	"github.com/candor-en/candor/verification"
)

// Data-use events reach the transparency log in the process that runs the
// log role. When that is this process they are recorded directly. On a
// shared store, a process without the log role appends them to the
// data-use outbox (a Redis stream with a consumer group); the log process
// relays them into the log. Delivery is at least once and recording is
// idempotent, so each event is logged once, and none is lost while the log
// process is down: the exporter acknowledges an event in its own outbox
// only once it is in the data-use outbox, and the relay acknowledges it
// there only once it is logged.

// dataUseOutbox names the outbox of data-use events.
const dataUseOutbox = "data-use"

// Kinds of data-use messages.
const (
	kindFilePublished = "export.file_published"
	kindRetention     = "export.retention"
	kindRootAdded     = "export.root_added"
)

// openOutbox opens the data-use outbox on a shared store, and gives a log
// process without the exporter or verification roles what it needs to
// record their events.
func (m *Main) openOutbox(ctx context.Context) error {
	if !m.shared() {
		return nil
	}
	m.dataUse = redis.NewOutbox(m.Redis, dataUseOutbox)
	if !m.runs(RoleLog) {
		return nil
	}
	if m.ExportKeys == nil {
		m.ExportKeys = exporter.NewKeysets(m.Keysets, m.Master, m.Config.now)
	}
	if !m.runs(RoleVerification) {
		// The log records the realms, their keys and daily counts from
		// the shared store: a verification service without routes or
		// jobs reads them.
		svc, err := verification.New(ctx, m.VerificationStore, m.Keysets, m.Master, verification.Options{Now: m.Config.now})
		if err != nil {
			return fmt.Errorf("transparency: realms: %w", err)
		}
		m.Verification = svc
	}
	return m.Registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "candor_outbox_pending",
		Help: "Data-use events waiting in the outbox for the transparency log (-1: the store is unreachable).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := m.dataUse.Len(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
}

// exportLogHooks are the exporter's hooks into the transparency log:
// direct when this process runs the log, else through the outbox.
func (m *Main) exportLogHooks() exporter.Events {
	if m.runs(RoleLog) && m.DataLog != nil {
		return m.exportEvents(m.ExportKeys)
	}
	if m.dataUse != nil {
		appendJSON := func(ctx context.Context, kind string, v any) error {
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			return m.dataUse.Append(ctx, kind, b)
		}
		return exporter.Events{
			OnFilePublished: func(ctx context.Context, f exporter.FilePublished) error {
				return appendJSON(ctx, kindFilePublished, f)
			},
			OnRetention: func(ctx context.Context, r exporter.RetentionResult) error {
				return appendJSON(ctx, kindRetention, r)
			},
			OnRootAdded: func(ctx context.Context, r exporter.RootAdded) error {
				return appendJSON(ctx, kindRootAdded, r)
			},
		}
	}
	// Embedded, without the log role here: the events wait in the
	// exporter's outbox for a process of this data directory that runs
	// the log.
	noLog := errors.New("this process does not run the transparency log (--roles)")
	return exporter.Events{
		OnFilePublished: func(context.Context, exporter.FilePublished) error { return noLog },
		OnRetention:     func(context.Context, exporter.RetentionResult) error { return noLog },
		OnRootAdded:     func(context.Context, exporter.RootAdded) error { return noLog },
	}
}

// handleDataUse records one outbox message in the log.
func (m *Main) handleDataUse(ctx context.Context, msg outbox.Message) error {
	hooks := m.exportEvents(m.ExportKeys)
	switch msg.Kind {
	case kindFilePublished:
		var f exporter.FilePublished
		if err := json.Unmarshal(msg.Body, &f); err != nil {
			return fmt.Errorf("%s: %w", msg.Kind, err)
		}
		return hooks.OnFilePublished(ctx, f)
	case kindRetention:
		var r exporter.RetentionResult
		if err := json.Unmarshal(msg.Body, &r); err != nil {
			return fmt.Errorf("%s: %w", msg.Kind, err)
		}
		return hooks.OnRetention(ctx, r)
	case kindRootAdded:
		var r exporter.RootAdded
		if err := json.Unmarshal(msg.Body, &r); err != nil {
			return fmt.Errorf("%s: %w", msg.Kind, err)
		}
		return hooks.OnRootAdded(ctx, r)
	}
	return fmt.Errorf("%w %q", outbox.ErrUnknownKind, msg.Kind)
}

// outboxBackground relays the data-use outbox into the log, in the process
// that runs the log role on a shared store. The consumer is named after the
// host and data directory, so a restarted log process first finishes what
// it had taken.
func (m *Main) outboxBackground(ctx context.Context) {
	if m.dataUse == nil || !m.runs(RoleLog) || m.DataLog == nil {
		return
	}
	host, _ := os.Hostname()
	dir, _ := filepath.Abs(m.Config.DataDir)
	relay := &outbox.Relay{Queue: m.dataUse, Consumer: host + ":" + dir, Handle: m.handleDataUse, Log: m.Log}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		relay.Run(ctx)
	}()
}
