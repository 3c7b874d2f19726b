package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/api/logentry"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/transparency"
	"github.com/candor-en/candor/verification"
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
	// DataLog is the public log of data use. Roles record events with
	// Main.recordDataUse.
	DataLog *transparency.Log
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
	l, err := transparency.Open(ctx, transparency.Options{
		Dir:                filepath.Join(cfg.DataDir, LogDirName),
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
		if err := m.recordSoftwareStarted(ctx); err != nil && ctx.Err() == nil {
			m.Log.Warn("transparency: software start not logged", "err", err)
		}
	}()
	interval := m.Config.TlogSyncInterval
	if interval <= 0 {
		interval = DefaultTlogSyncInterval
	}
	m.every(ctx, interval, "transparency sync", m.syncDataUse)
	m.every(ctx, time.Hour, "transparency daily stats", func(ctx context.Context) error {
		src := m.DataUseStats
		if src == nil && m.Verification != nil {
			src = tlogVerificationStats{m.Verification}
		}
		if src == nil {
			return nil
		}
		_, err := m.DataLog.RecordDailyStats(ctx, src, m.Config.now(), 0)
		return err
	})
}

// recordDataUse logs body as an entry recorded now and returns once it is
// durable. Recording an event already logged (the same export file, the
// same retention cutoff, …) changes nothing, so callers retry freely.
func (m *Main) recordDataUse(ctx context.Context, body logentry.Body) error {
	if m.DataLog == nil {
		return errors.New("transparency log is not open")
	}
	_, err := m.DataLog.Record(ctx, body)
	return err
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
	m.DataLog, m.dataLogHandler = nil, nil
	return err
}

func (m *Main) recordSoftwareStarted(ctx context.Context) error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("no build information in the binary")
	}
	return m.recordDataUse(ctx, logentry.SoftwareFromBuildInfo(bi))
}

// exportEvents are the exporter's hooks into the log (exporter.Options.Events):
// each published file becomes an export.published entry, preceded by a
// signing_key.added entry for any key that signed it and is not logged yet;
// each retention run a retention.deleted entry; each root added to
// roots.txt an export_root.added entry. keys gives the public keys.
func (m *Main) exportEvents(keys exporter.Keys) exporter.Events {
	return exporter.Events{
		OnFilePublished: func(ctx context.Context, f exporter.FilePublished) error {
			refs := make([]logentry.KeyRef, len(f.SigningKeys))
			for i, s := range f.SigningKeys {
				refs[i] = logentry.KeyRef{KeyID: s.KeyID, KeyVersion: s.KeyVersion}
				if err := m.ensureExportKeyLogged(ctx, keys, s); err != nil {
					return err
				}
			}
			return m.recordDataUse(ctx, tlogExportPublished(f, refs))
		},
		OnRetention: func(ctx context.Context, r exporter.RetentionResult) error {
			return m.recordDataUse(ctx, logentry.RetentionDeleted{
				Cutoff:       r.Cutoff,
				KeysDeleted:  logentry.NewCount(int64(r.KeysRemoved)),
				FilesDeleted: r.FilesRemoved,
				Files:        r.Files,
			})
		},
		OnRootAdded: func(ctx context.Context, r exporter.RootAdded) error {
			return m.recordDataUse(ctx, logentry.ExportRootAdded{Root: r.Root, Region: r.Region})
		},
	}
}

func tlogExportPublished(f exporter.FilePublished, refs []logentry.KeyRef) logentry.ExportPublished {
	return logentry.ExportPublished{
		File: f.Name, Region: f.Region, WindowStart: f.Start, WindowEnd: f.End,
		FileNum: f.FileNum, FileCount: f.FileCount,
		ZipSHA256: f.ZipSHA256.String(), BinSHA256: f.BinSHA256.String(), Size: f.Size,
		Keys: f.Keys, RevisedKeys: f.RevisedKeys, SigningKeys: refs,
	}
}

// ensureExportKeyLogged logs the export signing key s unless it is logged:
// auditors verify a file only with keys logged before it.
func (m *Main) ensureExportKeyLogged(ctx context.Context, keys exporter.Keys, s export.SignatureInfo) error {
	if _, ok := m.DataLog.SigningKey(logentry.PurposeExport, s.KeyID, s.KeyVersion); ok {
		return nil
	}
	_, pub, err := keys.Signer(ctx, exporter.KeysetName(s.KeyID, s.KeyVersion))
	if err != nil {
		return fmt.Errorf("export key %s: %w", s, err)
	}
	return m.recordDataUse(ctx, logentry.SigningKeyAdded{SigningKey: tlogExportKey(s.KeyID, s.KeyVersion, pub)})
}

func tlogExportKey(id, version string, pub keyset.PublicKey) logentry.SigningKey {
	return logentry.SigningKey{
		Purpose: logentry.PurposeExport, KeyID: id, KeyVersion: version,
		Algorithm: logentry.AlgorithmECDSAP256, PublicKeyPEM: string(pub.PEM),
	}
}

// syncDataUse logs what changed in the realms, health authorities, export
// roots and signing keys since the log last recorded them. Roles that
// record their changes as they happen make this find nothing; it catches
// changes made without a hook (or before the log existed).
func (m *Main) syncDataUse(ctx context.Context) error {
	var errs []error
	if m.Exporter != nil && m.ExportKeys != nil {
		errs = append(errs, m.syncExportKeys(ctx))
	}
	errs = append(errs, m.syncExportRoots(ctx))
	if m.Verification != nil {
		errs = append(errs, m.syncRealms(ctx))
	}
	errs = append(errs, m.syncAuthorities(ctx))
	return errors.Join(errs...)
}

// syncExportKeys logs every export signing key: added (or, when another
// key already signed for the configuration, rotated), and retired.
func (m *Main) syncExportKeys(ctx context.Context) error {
	configs, err := m.DB.ExportConfigs(ctx)
	if err != nil {
		return fmt.Errorf("export configs: %w", err)
	}
	var errs []error
	for _, c := range configs {
		for _, s := range c.SignatureInfos {
			_, pub, err := m.ExportKeys.Signer(ctx, s.Keyset)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			k := tlogExportKey(s.KeyID, s.KeyVersion, pub)
			if _, ok := m.DataLog.SigningKey(k.Purpose, k.KeyID, k.KeyVersion); !ok {
				var body logentry.Body = logentry.SigningKeyAdded{SigningKey: k}
				if prev := tlogPredecessors(c, s); len(prev) > 0 {
					body = logentry.SigningKeyRotated{SigningKey: k, Replaces: prev}
				}
				if err := m.recordDataUse(ctx, body); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			if !s.Retired.IsZero() && !s.Retired.After(m.Config.now()) {
				errs = append(errs, m.recordOnce(ctx, logentry.SigningKeyRetired{SigningKey: k, RetiredAt: s.Retired}))
			}
		}
	}
	return errors.Join(errs...)
}

// syncExportRoots logs export_root.added for every configured root the log
// does not have: roots configured before the log existed, or whose event
// went astray. The exporter's hook normally logged them already.
func (m *Main) syncExportRoots(ctx context.Context) error {
	configs, err := m.DB.ExportConfigs(ctx)
	if err != nil {
		return fmt.Errorf("export configs: %w", err)
	}
	var errs []error
	for _, c := range configs {
		errs = append(errs, m.recordOnce(ctx, logentry.ExportRootAdded{Root: c.Root, Region: c.Region}))
	}
	return errors.Join(errs...)
}

// tlogPredecessors are the keys of c that were signing when s was added.
func tlogPredecessors(c *exporter.Config, s exporter.SignatureInfo) []logentry.KeyRef {
	var out []logentry.KeyRef
	for _, o := range c.SignatureInfos {
		if o.KeyID == s.KeyID && o.KeyVersion == s.KeyVersion {
			continue
		}
		// Signing when s came (its retirement, if any, not before).
		if o.Added.Before(s.Added) && (o.Retired.IsZero() || !o.Retired.Before(s.Added)) {
			out = append(out, logentry.KeyRef{KeyID: o.KeyID, KeyVersion: o.KeyVersion})
		}
	}
	return out
}

// recordOnce logs body unless an entry with its identity is logged.
func (m *Main) recordOnce(ctx context.Context, body logentry.Body) error {
	if _, ok := m.DataLog.Lookup(logentry.New(m.Config.now(), body)); ok {
		return nil
	}
	return m.recordDataUse(ctx, body)
}

// syncRealms logs realm.added for realms the log does not know and
// realm.changed when a realm's policy or certificate keys differ from the
// last logged state; and the realms' certificate keys as signing keys.
func (m *Main) syncRealms(ctx context.Context) error {
	realms, err := m.Verification.Realms(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range realms {
		keys, err := m.Verification.CertificateKeys(ctx, r.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, k := range keys {
			sk := logentry.SigningKey{
				Purpose: logentry.PurposeCertificate, Scope: r.Name, KeyID: r.CertificateIssuer, KeyVersion: k.Version,
				Algorithm: logentry.AlgorithmECDSAP256, PublicKeyPEM: string(k.PEM),
			}
			errs = append(errs, m.recordOnce(ctx, logentry.SigningKeyAdded{SigningKey: sk}))
			if !k.Retired.IsZero() {
				errs = append(errs, m.recordOnce(ctx, logentry.SigningKeyRetired{SigningKey: sk, RetiredAt: k.Retired}))
			}
		}
		policy := tlogRealm(r, keys, m.Config.Retention)
		last, found := tlogLast(m.DataLog, func(b logentry.Body) (logentry.Realm, bool) {
			switch b := b.(type) {
			case logentry.RealmAdded:
				return b.Realm, b.Name == r.Name
			case logentry.RealmChanged:
				return b.Realm, b.Name == r.Name
			}
			return logentry.Realm{}, false
		})
		switch {
		case !found:
			errs = append(errs, m.recordDataUse(ctx, logentry.RealmAdded{Realm: policy}))
		case !tlogSameState(logentry.RealmChanged{Realm: last}, logentry.RealmChanged{Realm: policy}):
			errs = append(errs, m.recordDataUse(ctx, logentry.RealmChanged{Realm: policy}))
		}
	}
	return errors.Join(errs...)
}

// tlogRealm is the public part of a realm: its code and certificate
// policy, the retention of the keys its certificates authorise, and the
// certificate keys that still verify.
func tlogRealm(r *verification.Realm, keys []keyset.PublicKey, retention time.Duration) logentry.Realm {
	p := logentry.Realm{
		Name: r.Name, Region: r.Region, TestTypes: slices.Clone(r.TestTypes),
		ShortCodeLength: r.ShortCodeLength, ShortCodeLifetime: logentry.Duration(r.ShortCodeLifetime),
		LongCodeLength: r.LongCodeLength, LongCodeLifetime: logentry.Duration(r.LongCodeLifetime),
		DailyQuota:        r.DailyQuota,
		CertificateIssuer: r.CertificateIssuer, CertificateAudience: r.CertificateAudience,
		CertificateLifetime: logentry.Duration(r.CertificateLifetime),
		Retention:           logentry.Duration(retention),
	}
	for _, k := range keys {
		p.CertificateKeys = append(p.CertificateKeys, logentry.CertificateKey{KeyVersion: k.Version, PublicKeyPEM: string(k.PEM)})
	}
	return p
}

// syncAuthorities logs authority.added for health authorities the log does
// not know and authority.changed when one differs from its last logged
// state.
func (m *Main) syncAuthorities(ctx context.Context) error {
	has, err := m.DB.HealthAuthorities(ctx)
	if err != nil {
		return fmt.Errorf("health authorities: %w", err)
	}
	var errs []error
	for _, ha := range has {
		a := tlogAuthority(ha, m.Config.now(), m.Config.Retention)
		last, found := tlogLast(m.DataLog, func(b logentry.Body) (logentry.Authority, bool) {
			switch b := b.(type) {
			case logentry.AuthorityAdded:
				return b.Authority, b.Issuer == ha.Issuer
			case logentry.AuthorityChanged:
				return b.Authority, b.Issuer == ha.Issuer
			}
			return logentry.Authority{}, false
		})
		switch {
		case !found:
			errs = append(errs, m.recordDataUse(ctx, logentry.AuthorityAdded{Authority: a}))
		case !tlogSameState(logentry.AuthorityChanged{Authority: last}, logentry.AuthorityChanged{Authority: a}):
			errs = append(errs, m.recordDataUse(ctx, logentry.AuthorityChanged{Authority: a}))
		}
	}
	return errors.Join(errs...)
}

// tlogAuthority is the public part of a health authority: who it is and
// the certificate keys valid at now.
func tlogAuthority(ha *keyserver.HealthAuthority, now time.Time, retention time.Duration) logentry.Authority {
	a := logentry.Authority{
		Issuer: ha.Issuer, Audience: ha.Audience, Name: ha.Name, JWKSURL: ha.JWKSURL,
		Retention: logentry.Duration(retention),
	}
	for _, k := range ha.Keys {
		if !k.Thru.IsZero() && !now.Before(k.Thru) {
			continue
		}
		a.Keys = append(a.Keys, logentry.CertificateKey{KeyVersion: k.Version, PublicKeyPEM: strings.TrimSpace(k.PEM) + "\n"})
	}
	return a
}

// tlogLast returns the value pick extracts from the newest entry of l it
// matches.
func tlogLast[T any](l *transparency.Log, pick func(logentry.Body) (T, bool)) (T, bool) {
	var out T
	found := false
	l.Each(l.Size(), func(r transparency.Record) bool {
		if r.DecodeErr != "" {
			return true
		}
		if v, ok := pick(r.Entry.Body); ok {
			out, found = v, true
			return false
		}
		return true
	})
	return out, found
}

// tlogSameState reports whether two bodies describe the same state: their
// normalized forms encode alike.
func tlogSameState(a, b logentry.Body) bool {
	ja, err1 := json.Marshal(logentry.Normalize(a))
	jb, err2 := json.Marshal(logentry.Normalize(b))
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// tlogVerificationStats gives the verification service's daily counts per
// realm as stats.daily bodies. Uploads and keys published per realm are not
// counted by the key server, so they are left out.
type tlogVerificationStats struct {
	svc interface {
		Realms(ctx context.Context) ([]*verification.Realm, error)
		Stats(ctx context.Context, realm string, from, to time.Time) ([]verification.DayStats, error)
	}
}

// DailyStats implements transparency.StatsSource.
func (v tlogVerificationStats) DailyStats(ctx context.Context, day time.Time) ([]logentry.StatsDaily, error) {
	realms, err := v.svc.Realms(ctx)
	if err != nil {
		return nil, err
	}
	var out []logentry.StatsDaily
	for _, r := range realms {
		days, err := v.svc.Stats(ctx, r.Name, day, day)
		if err != nil {
			return nil, err
		}
		for _, d := range days {
			if d.Day != day.Format(logentry.DayLayout) {
				continue
			}
			out = append(out, logentry.StatsDaily{
				Realm: r.Name, Day: d.Day,
				CodesIssued:        logentry.NewCount(d.CodesIssued),
				CodesClaimed:       logentry.NewCount(d.CodesClaimed),
				CertificatesIssued: logentry.NewCount(d.CertificatesIssued),
			})
		}
	}
	return out, nil
}
