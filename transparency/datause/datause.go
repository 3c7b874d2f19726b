// Package datause holds the rules of what the transparency log records of
// the other services' data use: each export file published (after the keys
// that signed it), each retention run, each export root, the realms and
// health authorities with their policies and keys, the daily statistics
// and the software's starts.
//
// A [Recorder] turns the exporter's events and the services' state into
// log entries. It reads the services through small interfaces ([Configs],
// [ExportKeys], [Realms], [Authorities], [RealmStats]) so that tests give it
// anything that answers them. Recording is idempotent: an event delivered
// twice, or state that did not change since it was last logged, adds
// nothing, so callers retry freely.
package datause

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/api/logentry"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/transparency"
)

// Recorder records data-use events and state in a transparency log.
type Recorder struct {
	log       *transparency.Log
	retention time.Duration
	now       func() time.Time
}

// New returns a Recorder writing to l. retention is the key retention the
// realm and authority entries state; now is the clock (time.Now when nil).
func New(l *transparency.Log, retention time.Duration, now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{log: l, retention: retention, now: now}
}

// Log returns the log the Recorder writes to.
func (r *Recorder) Log() *transparency.Log { return r.log }

// Record logs body as an entry recorded now and returns once it is
// durable. Recording an event already logged (the same export file, the
// same retention cutoff, …) changes nothing.
func (r *Recorder) Record(ctx context.Context, body logentry.Body) error {
	if r == nil || r.log == nil {
		return errors.New("transparency log is not open")
	}
	_, err := r.log.Record(ctx, body)
	return err
}

// RecordSoftwareStarted logs the start of this binary, with its build
// information.
func (r *Recorder) RecordSoftwareStarted(ctx context.Context) error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("no build information in the binary")
	}
	return r.Record(ctx, logentry.SoftwareFromBuildInfo(bi))
}

// ExportKeys gives the public keys of the export signing keysets;
// *exporter.Keysets implements it.
type ExportKeys interface {
	Signer(ctx context.Context, keyset string) (export.DataSigner, keyset.PublicKey, error)
}

// ExportEvents are the exporter's hooks into the log
// (exporter.Options.Events): each published file becomes an
// export.published entry, preceded by a signing_key.added entry for any key
// that signed it and is not logged yet; each retention run a
// retention.deleted entry; each root added to roots.txt an
// export_root.added entry. keys gives the public keys.
func (r *Recorder) ExportEvents(keys ExportKeys) exporter.Events {
	return exporter.Events{
		OnFilePublished: func(ctx context.Context, f exporter.FilePublished) error {
			refs := make([]logentry.KeyRef, len(f.SigningKeys))
			for i, s := range f.SigningKeys {
				refs[i] = logentry.KeyRef{KeyID: s.KeyID, KeyVersion: s.KeyVersion}
				if err := r.ensureExportKeyLogged(ctx, keys, s); err != nil {
					return err
				}
			}
			return r.Record(ctx, exportPublished(f, refs))
		},
		OnRetention: func(ctx context.Context, res exporter.RetentionResult) error {
			return r.Record(ctx, logentry.RetentionDeleted{
				Cutoff:       res.Cutoff,
				KeysDeleted:  logentry.NewCount(int64(res.KeysRemoved)),
				FilesDeleted: res.FilesRemoved,
				Files:        res.Files,
			})
		},
		OnRootAdded: func(ctx context.Context, root exporter.RootAdded) error {
			return r.Record(ctx, logentry.ExportRootAdded{Root: root.Root, Region: root.Region})
		},
	}
}

func exportPublished(f exporter.FilePublished, refs []logentry.KeyRef) logentry.ExportPublished {
	return logentry.ExportPublished{
		File: f.Name, Region: f.Region, WindowStart: f.Start, WindowEnd: f.End,
		FileNum: f.FileNum, FileCount: f.FileCount,
		ZipSHA256: f.ZipSHA256.String(), BinSHA256: f.BinSHA256.String(), Size: f.Size,
		Keys: f.Keys, RevisedKeys: f.RevisedKeys, SigningKeys: refs,
	}
}

// ensureExportKeyLogged logs the export signing key s unless it is logged:
// auditors verify a file only with keys logged before it.
func (r *Recorder) ensureExportKeyLogged(ctx context.Context, keys ExportKeys, s export.SignatureInfo) error {
	if _, ok := r.log.SigningKey(logentry.PurposeExport, s.KeyID, s.KeyVersion); ok {
		return nil
	}
	_, pub, err := keys.Signer(ctx, exporter.KeysetName(s.KeyID, s.KeyVersion))
	if err != nil {
		return fmt.Errorf("export key %s: %w", s, err)
	}
	return r.Record(ctx, logentry.SigningKeyAdded{SigningKey: exportKey(s.KeyID, s.KeyVersion, pub)})
}

func exportKey(id, version string, pub keyset.PublicKey) logentry.SigningKey {
	return logentry.SigningKey{
		Purpose: logentry.PurposeExport, KeyID: id, KeyVersion: version,
		Algorithm: logentry.AlgorithmECDSAP256, PublicKeyPEM: string(pub.PEM),
	}
}
