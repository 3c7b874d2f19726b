package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/storage/internal/record"
)

var (
	// export_configs: root → JSON exporter.Config.
	bucketExportConfigs = []byte("export_configs")
	// export_batches: root ‖ 0 ‖ window start (8 bytes, Unix seconds, big
	// endian) → JSON exporter.Batch without Padding and Revised.
	bucketExportBatches = []byte("export_batches")
	// export_batch_keys: same key → padding and revised keys (see
	// record.EncodeBatchKeys), read only when a file is regenerated.
	bucketExportBatchKeys = []byte("export_batch_keys")
	// export_leases: lease name → JSON lease.
	bucketExportLeases = []byte("export_leases")
	// export_events: sequence (8 bytes, big endian) → JSON exporter.Event.
	bucketExportEvents = []byte("export_events")
)

var _ exporter.Store = (*DB)(nil)

// ExportConfigs implements exporter.ConfigStore.
func (d *DB) ExportConfigs(ctx context.Context) ([]*exporter.Config, error) {
	out, err := listJSON[exporter.Config](d, bucketExportConfigs)
	if err != nil {
		return nil, fmt.Errorf("export configs: %w", err)
	}
	return out, nil // bbolt iterates in key (root) order
}

// ExportConfig implements exporter.ConfigStore.
func (d *DB) ExportConfig(ctx context.Context, root string) (*exporter.Config, error) {
	c, err := readJSON[exporter.Config](d, bucketExportConfigs, root, exporter.ErrNotFound)
	if err != nil {
		return nil, fmt.Errorf("export config %q: %w", root, err)
	}
	return c, nil
}

// UpdateExportConfig implements exporter.ConfigStore.
func (d *DB) UpdateExportConfig(ctx context.Context, root string, fn func(*exporter.Config) (*exporter.Config, error)) (*exporter.Config, error) {
	var out *exporter.Config
	err := d.w.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketExportConfigs)
		var cur *exporter.Config
		if v := b.Get([]byte(root)); v != nil {
			cur = new(exporter.Config)
			if err := json.Unmarshal(v, cur); err != nil {
				return fmt.Errorf("decode: %w", err)
			}
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		if next.Root != root {
			return fmt.Errorf("update changed the root to %q", next.Root)
		}
		v, err := json.Marshal(next)
		if err != nil {
			return err
		}
		out = next
		return b.Put([]byte(root), v)
	})
	if err != nil {
		return nil, fmt.Errorf("export config %q: %w", root, err)
	}
	return out, nil
}

// lease is the stored form of a lease.
type lease struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// AcquireLease implements lease.Store.
func (d *DB) AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) error {
	err := d.w.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketExportLeases)
		if v := b.Get([]byte(name)); v != nil {
			var cur lease
			if err := json.Unmarshal(v, &cur); err == nil && cur.Owner != owner && now.Before(cur.Expires) {
				return fmt.Errorf("%w (%s until %s)", exporter.ErrLeaseHeld, cur.Owner, cur.Expires.Format(time.RFC3339))
			}
		}
		v, err := json.Marshal(lease{Owner: owner, Expires: now.Add(ttl).UTC()})
		if err != nil {
			return err
		}
		return b.Put([]byte(name), v)
	})
	if err != nil {
		return fmt.Errorf("lease %s: %w", name, err)
	}
	return nil
}

// ReleaseLease implements lease.Store.
func (d *DB) ReleaseLease(ctx context.Context, name, owner string) error {
	err := d.w.update(func(tx *bbolt.Tx) error { return releaseLease(tx, name, owner) })
	if err != nil {
		return fmt.Errorf("lease %s: %w", name, err)
	}
	return nil
}

func releaseLease(tx *bbolt.Tx, name, owner string) error {
	b := tx.Bucket(bucketExportLeases)
	v := b.Get([]byte(name))
	if v == nil {
		return nil
	}
	var cur lease
	if err := json.Unmarshal(v, &cur); err == nil && cur.Owner != owner {
		return nil
	}
	return b.Delete([]byte(name))
}

func batchKey(root string, start time.Time) []byte {
	k := make([]byte, 0, len(root)+9)
	k = append(k, root...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(start.Unix()))
}

// Batch implements exporter.BatchStore.
func (d *DB) Batch(ctx context.Context, root string, start time.Time) (*exporter.Batch, error) {
	var out *exporter.Batch
	err := d.db.View(func(tx *bbolt.Tx) error {
		k := batchKey(root, start)
		v := tx.Bucket(bucketExportBatches).Get(k)
		if v == nil {
			return exporter.ErrNotFound
		}
		out = new(exporter.Batch)
		if err := json.Unmarshal(v, out); err != nil {
			return err
		}
		if kv := tx.Bucket(bucketExportBatchKeys).Get(k); kv != nil {
			return record.DecodeBatchKeys(kv, out)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("export batch %s/%d: %w", root, start.Unix(), err)
	}
	return out, nil
}

// Batches implements exporter.BatchStore.
func (d *DB) Batches(ctx context.Context, root string) ([]*exporter.Batch, error) {
	var out []*exporter.Batch
	prefix := append([]byte(root), 0)
	err := d.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketExportBatches).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			b := new(exporter.Batch)
			if err := json.Unmarshal(v, b); err != nil {
				return fmt.Errorf("batch %x: %w", k[len(prefix):], err)
			}
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("export batches of %s: %w", root, err)
	}
	return out, nil
}

// CompleteBatch implements exporter.BatchStore.
func (d *DB) CompleteBatch(ctx context.Context, b *exporter.Batch, leaseName, owner string, events []exporter.Event) error {
	summary := *b
	summary.Padding, summary.Revised = nil, nil
	v, err := json.Marshal(&summary)
	if err != nil {
		return fmt.Errorf("export batch: %w", err)
	}
	err = d.w.update(func(tx *bbolt.Tx) error {
		if lv := tx.Bucket(bucketExportLeases).Get([]byte(leaseName)); lv != nil {
			var cur lease
			if err := json.Unmarshal(lv, &cur); err != nil || cur.Owner != owner {
				return exporter.ErrLeaseLost
			}
		}
		// An absent lease (expired and released by nobody else) is still
		// ours: nobody else took it.
		k := batchKey(b.Root, b.Start)
		if tx.Bucket(bucketExportBatches).Get(k) != nil {
			return exporter.ErrLeaseLost // another exporter recorded it
		}
		if err := tx.Bucket(bucketExportBatches).Put(k, v); err != nil {
			return err
		}
		if err := tx.Bucket(bucketExportBatchKeys).Put(k, record.EncodeBatchKeys(b)); err != nil {
			return err
		}
		if err := appendEvents(tx, events); err != nil {
			return err
		}
		return releaseLease(tx, leaseName, owner)
	})
	if err != nil {
		return fmt.Errorf("complete export batch %s/%d: %w", b.Root, b.Start.Unix(), err)
	}
	return nil
}

// DeleteBatches implements exporter.BatchStore.
func (d *DB) DeleteBatches(ctx context.Context, root string, cutoff time.Time) ([]*exporter.Batch, error) {
	var out []*exporter.Batch
	prefix := append([]byte(root), 0)
	err := d.w.update(func(tx *bbolt.Tx) error {
		out = nil
		keys := tx.Bucket(bucketExportBatchKeys)
		c := tx.Bucket(bucketExportBatches).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
			b := new(exporter.Batch)
			if err := json.Unmarshal(v, b); err != nil {
				return fmt.Errorf("batch %x: %w", k[len(prefix):], err)
			}
			if b.End.After(cutoff) {
				k, v = c.Next()
				continue
			}
			k = bytes.Clone(k)
			if err := keys.Delete(k); err != nil {
				return err
			}
			if err := c.Delete(); err != nil {
				return err
			}
			out = append(out, b)
			// Seek again: Next after Delete may skip an item.
			k, v = c.Seek(k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delete export batches of %s: %w", root, err)
	}
	return out, nil
}

func appendEvents(tx *bbolt.Tx, events []exporter.Event) error {
	b := tx.Bucket(bucketExportEvents)
	for _, ev := range events {
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		ev.ID = id
		v, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(nil, id), v); err != nil {
			return err
		}
	}
	return nil
}

// AppendEvents implements exporter.BatchStore.
func (d *DB) AppendEvents(ctx context.Context, events []exporter.Event) error {
	if err := d.w.update(func(tx *bbolt.Tx) error { return appendEvents(tx, events) }); err != nil {
		return fmt.Errorf("export events: %w", err)
	}
	return nil
}

// PendingEvents implements exporter.BatchStore.
func (d *DB) PendingEvents(ctx context.Context, limit int) ([]exporter.Event, error) {
	var out []exporter.Event
	err := d.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketExportEvents).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			var ev exporter.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("event %x: %w", k, err)
			}
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("export events: %w", err)
	}
	return out, nil
}

// AckEvent implements exporter.BatchStore.
func (d *DB) AckEvent(ctx context.Context, id uint64) error {
	err := d.w.update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketExportEvents).Delete(binary.BigEndian.AppendUint64(nil, id))
	})
	if err != nil {
		return fmt.Errorf("export event %d: %w", id, err)
	}
	return nil
}

// ScanExportExposures implements exporter.ExposureSource. It counts the
// records it skips because they do not decode (a truncated record, a key of
// the wrong length), so the exporter can report them. The *Exposure passed
// to fn is reused: a scan of a million keys allocates next to nothing.
func (d *DB) ScanExportExposures(ctx context.Context, revised bool, from, to time.Time, fn func(*keyserver.Exposure) error) (int, error) {
	skipped := 0
	var dec exposureDecoder
	err := d.db.View(func(tx *bbolt.Tx) error {
		records := tx.Bucket(bucketExposures)
		index := records
		if revised {
			index = tx.Bucket(bucketExposuresRevised)
		}
		c := index.Cursor()
		end := timeKey(to, nil)
		n := 0
		for k, v := c.Seek(timeKey(from, nil)); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if revised {
				// exposures_revised: revised at ‖ location → empty.
				if len(k) != 8+locLen {
					skipped++
					continue
				}
				if v = records.Get(k[8:]); v == nil {
					continue // deleted by retention
				}
			}
			e, err := dec.decode(v)
			if err != nil {
				skipped++
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
	return skipped, err
}

// exposureDecoder decodes exposure records into one reused Exposure, with
// the region and app id strings interned, so a scan does not allocate per
// record. It reads the layout of record.EncodeExposure (versions 2 and 3,
// which adds the upload tag); any other record goes through decodeExposure,
// the reference decoder, so a new layout is slower here but never misread.
type exposureDecoder struct {
	e            keyserver.Exposure
	region, haID string
}

func (d *exposureDecoder) decode(b []byte) (*keyserver.Exposure, error) {
	const fixed = 1 + keyserver.KeyLength + 4 + 4 + 4 + 1 + 4 + 1 + 8 + 1 + 4 + 4 + 8
	if len(b) < fixed+2 || b[0] != 2 && b[0] != 3 {
		return decodeExposure(b)
	}
	e := &d.e
	copy(e.Key[:], b[1:])
	p := b[1+keyserver.KeyLength:]
	e.IntervalNumber = int32(binary.BigEndian.Uint32(p))
	e.IntervalCount = int32(binary.BigEndian.Uint32(p[4:]))
	e.TransmissionRisk = int32(binary.BigEndian.Uint32(p[8:]))
	e.ReportType = keyserver.ReportType(p[12])
	e.DaysSinceOnset = int32(binary.BigEndian.Uint32(p[13:]))
	f := p[17]
	e.HasDaysSinceOnset, e.Traveler, e.Revised = f&1 != 0, f&2 != 0, f&4 != 0
	e.CreatedAt = time.Unix(int64(binary.BigEndian.Uint64(p[18:])), 0).UTC()
	e.RevisedReportType = keyserver.ReportType(p[26])
	e.RevisedTransmissionRisk = int32(binary.BigEndian.Uint32(p[27:]))
	e.RevisedDaysSinceOnset = int32(binary.BigEndian.Uint32(p[31:]))
	e.RevisedAt = time.Time{}
	if at := int64(binary.BigEndian.Uint64(p[35:])); e.Revised {
		e.RevisedAt = time.Unix(at, 0).UTC()
	}
	p = p[43:]
	var ok bool
	if p, ok = internString(p, &d.region); !ok {
		return nil, ErrBadRecord
	}
	if p, ok = internString(p, &d.haID); !ok {
		return nil, ErrBadRecord
	}
	e.Region, e.HealthAuthorityID = d.region, d.haID
	e.UploadTag = [keyserver.UploadTagLength]byte{}
	if b[0] == 3 {
		if len(p) < keyserver.UploadTagLength {
			return nil, ErrBadRecord
		}
		copy(e.UploadTag[:], p)
	}
	return e, nil
}

// internString reads a length-prefixed string from p into *s, reusing *s
// when it already holds the same bytes, and returns the rest of p.
func internString(p []byte, s *string) ([]byte, bool) {
	if len(p) < 1 || len(p) < 1+int(p[0]) {
		return nil, false
	}
	n := int(p[0])
	if string(p[1:1+n]) != *s { // compiles to a comparison, no allocation
		*s = string(p[1 : 1+n])
	}
	return p[1+n:], true
}

// CountExportExposures implements exporter.ExposureSource: it walks the
// keys of the range without reading the records.
func (d *DB) CountExportExposures(ctx context.Context, revised bool, from, to time.Time) (int, error) {
	bucket := bucketExposures
	if revised {
		bucket = bucketExposuresRevised
	}
	n := 0
	err := d.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		end := timeKey(to, nil)
		for k, _ := c.Seek(timeKey(from, nil)); k != nil && bytes.Compare(k, end) < 0; k, _ = c.Next() {
			if n++; n%65536 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return n, err
}
