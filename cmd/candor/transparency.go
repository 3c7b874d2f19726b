package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/transparency-dev/tessera/storage/posix"

	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/transparency"
	"github.com/candor-en/candor/transparency/datause"
)

// TransparencyConfig is the transparency log's part of Config.
type TransparencyConfig struct {
	// TlogOrigin names the log in its checkpoints; empty keeps the stored
	// origin, or makes "<host>/candor/data-use/v1" for a new log (host of
	// --public-url, else localhost).
	TlogOrigin string
	// TlogBatchMaxAge, TlogBatchMaxSize and TlogCheckpointInterval tune how
	// entries are written and checkpoints published.
	TlogBatchMaxAge        time.Duration
	TlogBatchMaxSize       uint
	TlogCheckpointInterval time.Duration
	// TlogSyncInterval is how often realms, authorities and signing keys
	// are compared with the log, and changes not logged yet are logged.
	TlogSyncInterval time.Duration
}

// Defaults of TransparencyConfig.
const (
	DefaultTlogSyncInterval = time.Minute
	// LogDirName is the log's directory in the data directory.
	LogDirName = "log"
)

func (c *TransparencyConfig) transparencyFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.TlogOrigin, "tlog-origin", "", "origin of the transparency log's checkpoints; fixed when the log is created (default <host>/candor/data-use/v1, host of --public-url, else localhost)")
	fs.DurationVar(&c.TlogBatchMaxAge, "tlog-batch-max-age", transparency.DefaultBatchMaxAge, "how long a log entry waits to be written with others")
	fs.UintVar(&c.TlogBatchMaxSize, "tlog-batch-max-size", transparency.DefaultBatchMaxSize, "most log entries written together")
	fs.DurationVar(&c.TlogCheckpointInterval, "tlog-checkpoint-interval", transparency.DefaultCheckpointInterval, "how often a new log checkpoint may be published while the log grows (at least 100ms)")
	fs.DurationVar(&c.TlogSyncInterval, "tlog-sync-interval", DefaultTlogSyncInterval, "how often realms, authorities and signing keys are compared with the log and changes logged")
}

// transparencyParts are the transparency log's pieces of Main.
type transparencyParts struct {
	// DataLog is the public log of data use.
	DataLog *transparency.Log
	// DataUse records the other roles' data use in DataLog.
	DataUse *datause.Recorder
	// DataUseStats gives the daily per-realm aggregates logged as
	// stats.daily; when nil, the verification service's counts are used if
	// it runs.
	DataUseStats transparency.StatsSource

	dataLogHandler *transparency.Handler
}

// openTransparency opens the data-use log in <data>/log, its key sealed in
// the store.
func (m *Main) openTransparency(ctx context.Context) error {
	cfg := &m.Config
	// The origin is public and permanent: never this machine's name.
	host := "localhost"
	if u, err := url.Parse(cfg.PublicURL); err == nil && cfg.PublicURL != "" {
		host = u.Hostname()
	}
	_, kerr := m.DB.LoadKeyset(ctx, transparency.DefaultKeyName)
	m.newLog = errors.Is(kerr, keyset.ErrNotFound)
	dir := filepath.Join(cfg.DataDir, LogDirName)
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return fmt.Errorf("transparency: open %s: %w", dir, err)
	}
	l, err := transparency.Open(ctx, transparency.Options{
		Dir:                dir,
		Driver:             driver,
		Origin:             cfg.TlogOrigin,
		Host:               host,
		Keys:               m.DB,
		Master:             m.Master,
		BatchMaxAge:        cfg.TlogBatchMaxAge,
		BatchMaxSize:       cfg.TlogBatchMaxSize,
		CheckpointInterval: cfg.TlogCheckpointInterval,
		Now:                cfg.now,
		Log:                m.Log,
	})
	if err != nil {
		return err
	}
	h, err := transparency.NewHandler(l)
	if err != nil {
		_ = l.Close(ctx)
		return err
	}
	m.DataLog, m.dataLogHandler = l, h
	m.DataUse = datause.New(l, cfg.Retention, cfg.now)
	return nil
}

// registerTransparency adds the /log/ and /transparency routes.
func (m *Main) registerTransparency(e *echo.Echo) {
	m.dataLogHandler.Register(e)
}

// transparencyBackground logs the software start, then keeps the log in
// step: realms, authorities and signing keys every TlogSyncInterval, the
// finished days' statistics every hour.
func (m *Main) transparencyBackground(ctx context.Context) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.DataUse.RecordSoftwareStarted(ctx); err != nil && ctx.Err() == nil {
			m.Log.Warn("transparency: software start not logged", "err", err)
		}
	}()
	interval := m.Config.TlogSyncInterval
	if interval <= 0 {
		interval = DefaultTlogSyncInterval
	}
	m.every(ctx, interval, "transparency sync", func(ctx context.Context) error {
		return m.DataUse.Sync(ctx, m.dataUseSources())
	})
	m.every(ctx, time.Hour, "transparency daily stats", func(ctx context.Context) error {
		src := m.DataUseStats
		if src == nil && m.Verification != nil {
			src = datause.VerificationStats{Service: m.Verification}
		}
		if src == nil {
			return nil
		}
		return m.DataUse.RecordDailyStats(ctx, src)
	})
}

// closeTransparency waits until a published checkpoint covers every entry,
// then closes the log. Main.Close should call it before closing the store.
func (m *Main) closeTransparency(ctx context.Context) error {
	if m.DataLog == nil {
		return nil
	}
	err := m.DataLog.Close(ctx)
	if m.dataLogHandler != nil {
		err = errors.Join(err, m.dataLogHandler.Close())
	}
	m.DataLog, m.DataUse, m.dataLogHandler = nil, nil, nil
	return err
}

// dataUseSources are what the log's sync compares with the log: export
// keys when this process exports, realms when it has a verification
// service.
func (m *Main) dataUseSources() datause.Sources {
	src := datause.Sources{Configs: m.DB, Authorities: m.DB}
	if m.Exporter != nil && m.ExportKeys != nil {
		src.ExportKeys = m.ExportKeys
	}
	if m.Verification != nil {
		src.Realms = m.Verification
	}
	return src
}
