package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/keyserver"
)

var (
	// exposures: key bytes → record.
	bucketExposures = []byte("exposures")
	// exposures_created: created (8 bytes, Unix seconds, big endian) ‖ key → empty; the exporter's scan order.
	bucketExposuresCreated = []byte("exposures_created")
	// exposures_revised: revised at ‖ key → empty.
	bucketExposuresRevised = []byte("exposures_revised")
)

// Publish implements keyserver.ExposureStore. Concurrent publishes share one
// transaction and one fsync (bbolt's Batch).
func (d *DB) Publish(ctx context.Context, keys [][keyserver.KeyLength]byte, plan func(map[[keyserver.KeyLength]byte]*keyserver.Exposure) (*keyserver.Change, error)) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	err := d.db.Batch(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketExposures)
		existing := make(map[[keyserver.KeyLength]byte]*keyserver.Exposure)
		for _, k := range keys {
			v := b.Get(k[:])
			if v == nil {
				continue
			}
			e, err := decodeExposure(k[:], v)
			if err != nil {
				return fmt.Errorf("exposure %x: %w", k[:4], err)
			}
			existing[k] = e
		}
		ch, err := plan(existing)
		if err != nil {
			return err
		}
		created := tx.Bucket(bucketExposuresCreated)
		revised := tx.Bucket(bucketExposuresRevised)
		for _, e := range ch.Insert {
			if err := b.Put(e.Key[:], encodeExposure(e)); err != nil {
				return err
			}
			if err := created.Put(timeKey(e.CreatedAt, e.Key[:]), nil); err != nil {
				return err
			}
		}
		for _, e := range ch.Revise {
			if err := b.Put(e.Key[:], encodeExposure(e)); err != nil {
				return err
			}
			if err := revised.Put(timeKey(e.RevisedAt, e.Key[:]), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		var perr *keyserver.Error
		if errors.As(err, &perr) {
			return err
		}
		return fmt.Errorf("publish %d keys: %w", len(keys), err)
	}
	return nil
}

// Exposure returns one stored exposure.
func (d *DB) Exposure(ctx context.Context, key [keyserver.KeyLength]byte) (*keyserver.Exposure, error) {
	var e *keyserver.Exposure
	err := d.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketExposures).Get(key[:])
		if v == nil {
			return keyserver.ErrNotFound
		}
		var err error
		e, err = decodeExposure(key[:], v)
		return err
	})
	return e, err
}

// ExposuresCreated calls fn for every exposure created in [from, to), in
// creation order. It stops at fn's first error.
func (d *DB) ExposuresCreated(ctx context.Context, from, to time.Time, fn func(*keyserver.Exposure) error) error {
	return d.scan(ctx, bucketExposuresCreated, from, to, fn)
}

// ExposuresRevised calls fn for every exposure revised in [from, to).
func (d *DB) ExposuresRevised(ctx context.Context, from, to time.Time, fn func(*keyserver.Exposure) error) error {
	return d.scan(ctx, bucketExposuresRevised, from, to, fn)
}

func (d *DB) scan(ctx context.Context, index []byte, from, to time.Time, fn func(*keyserver.Exposure) error) error {
	return d.db.View(func(tx *bbolt.Tx) error {
		records := tx.Bucket(bucketExposures)
		c := tx.Bucket(index).Cursor()
		end := timeKey(to, nil)
		for k, _ := c.Seek(timeKey(from, nil)); k != nil && bytes.Compare(k, end) < 0; k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			key := k[8:]
			v := records.Get(key)
			if v == nil {
				continue // deleted by retention
			}
			e, err := decodeExposure(key, v)
			if err != nil {
				return fmt.Errorf("exposure %x: %w", key, err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteExposuresCreatedBefore removes every exposure created before cutoff
// and returns how many went. It works in bounded transactions so a large
// deletion does not block publishing for long.
func (d *DB) DeleteExposuresCreatedBefore(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	end := timeKey(cutoff, nil)
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := 0
		err := d.db.Update(func(tx *bbolt.Tx) error {
			records := tx.Bucket(bucketExposures)
			created := tx.Bucket(bucketExposuresCreated)
			revised := tx.Bucket(bucketExposuresRevised)
			c := created.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k, end) < 0 && n < 10000; k, _ = c.First() {
				key := append([]byte(nil), k[8:]...)
				if v := records.Get(key); v != nil {
					if e, err := decodeExposure(key, v); err == nil && e.Revised {
						if err := revised.Delete(timeKey(e.RevisedAt, key)); err != nil {
							return err
						}
					}
					if err := records.Delete(key); err != nil {
						return err
					}
				}
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("delete exposures before %s: %w", cutoff.Format(time.RFC3339), err)
		}
		if n < 10000 {
			return total, nil
		}
	}
}

func timeKey(t time.Time, key []byte) []byte {
	b := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(b, uint64(t.Unix()))
	return append(b, key...)
}

const exposureRecordVersion = 1

func encodeExposure(e *keyserver.Exposure) []byte {
	b := make([]byte, 0, 64+len(e.Region)+len(e.HealthAuthorityID))
	b = append(b, exposureRecordVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(e.IntervalNumber))
	b = binary.BigEndian.AppendUint32(b, uint32(e.IntervalCount))
	b = binary.BigEndian.AppendUint32(b, uint32(e.TransmissionRisk))
	b = append(b, byte(e.ReportType))
	b = binary.BigEndian.AppendUint32(b, uint32(e.DaysSinceOnset))
	b = append(b, flags(e.HasDaysSinceOnset, e.Traveler, e.Revised))
	b = binary.BigEndian.AppendUint64(b, uint64(e.CreatedAt.Unix()))
	b = append(b, byte(e.RevisedReportType))
	b = binary.BigEndian.AppendUint32(b, uint32(e.RevisedTransmissionRisk))
	b = binary.BigEndian.AppendUint32(b, uint32(e.RevisedDaysSinceOnset))
	var revisedAt int64
	if e.Revised {
		revisedAt = e.RevisedAt.Unix()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(revisedAt))
	b = appendString(b, e.Region)
	b = appendString(b, e.HealthAuthorityID)
	return b
}

func flags(bits ...bool) byte {
	var f byte
	for i, v := range bits {
		if v {
			f |= 1 << i
		}
	}
	return f
}

func appendString(b []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

var errBadRecord = errors.New("bad exposure record")

func decodeExposure(key, b []byte) (*keyserver.Exposure, error) {
	const fixed = 1 + 4 + 4 + 4 + 1 + 4 + 1 + 8 + 1 + 4 + 4 + 8
	if len(key) != keyserver.KeyLength || len(b) < fixed+2 || b[0] != exposureRecordVersion {
		return nil, errBadRecord
	}
	e := &keyserver.Exposure{}
	copy(e.Key[:], key)
	p := b[1:]
	u32 := func() uint32 { v := binary.BigEndian.Uint32(p); p = p[4:]; return v }
	u64 := func() uint64 { v := binary.BigEndian.Uint64(p); p = p[8:]; return v }
	u8 := func() byte { v := p[0]; p = p[1:]; return v }
	e.IntervalNumber = int32(u32())
	e.IntervalCount = int32(u32())
	e.TransmissionRisk = int32(u32())
	e.ReportType = keyserver.ReportType(u8())
	e.DaysSinceOnset = int32(u32())
	f := u8()
	e.HasDaysSinceOnset, e.Traveler, e.Revised = f&1 != 0, f&2 != 0, f&4 != 0
	e.CreatedAt = time.Unix(int64(u64()), 0).UTC()
	e.RevisedReportType = keyserver.ReportType(u8())
	e.RevisedTransmissionRisk = int32(u32())
	e.RevisedDaysSinceOnset = int32(u32())
	if at := int64(u64()); e.Revised {
		e.RevisedAt = time.Unix(at, 0).UTC()
	}
	str := func() (string, bool) {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return "", false
		}
		n := int(p[0])
		s := string(p[1 : 1+n])
		p = p[1+n:]
		return s, true
	}
	var ok1, ok2 bool
	e.Region, ok1 = str()
	e.HealthAuthorityID, ok2 = str()
	if !ok1 || !ok2 {
		return nil, errBadRecord
	}
	return e, nil
}
