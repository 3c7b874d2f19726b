package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-en/candor/internal/outbox"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/storage/redis"
	"github.com/candor-en/candor/transparency/datause"
	"github.com/candor-en/candor/verification"
)

// Data-use events of a process without the log role go through the
// data-use outbox to the process that runs the log (transparency/datause
// says how).

// dataUseOutbox names the outbox of data-use events.
const dataUseOutbox = "data-use"

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
		return m.DataUse.ExportEvents(m.ExportKeys)
	}
	if m.dataUse != nil {
		return datause.QueueEvents(m.dataUse)
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
	relay := &outbox.Relay{Queue: m.dataUse, Consumer: host + ":" + dir, Handle: m.DataUse.Handler(m.ExportKeys), Log: m.Log}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		relay.Run(ctx)
	}()
}
