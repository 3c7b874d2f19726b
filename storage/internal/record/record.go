// Package record is the binary encoding of stored exposures, shared by the
// storage backends so that their records are identical.
package record

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/candor-en/candor/keyserver"
)

// ErrBadRecord marks a stored exposure that cannot be decoded.
var ErrBadRecord = errors.New("bad exposure record")

// Record versions: 3 appends the upload tag to version 2, whose records
// (written before tags existed) still decode, with a zero tag.
const (
	exposureRecordV2      = 2
	exposureRecordVersion = 3
)

// EncodeExposure encodes e in the binary record format shared by the
// storage backends.
func EncodeExposure(e *keyserver.Exposure) []byte {
	b := make([]byte, 0, 96+len(e.Region)+len(e.HealthAuthorityID))
	b = append(b, exposureRecordVersion)
	b = append(b, e.Key[:]...)
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
	return append(b, e.UploadTag[:]...)
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

// DecodeExposure decodes a record written by EncodeExposure.
func DecodeExposure(b []byte) (*keyserver.Exposure, error) {
	const fixed = 1 + keyserver.KeyLength + 4 + 4 + 4 + 1 + 4 + 1 + 8 + 1 + 4 + 4 + 8
	if len(b) < fixed+2 || b[0] != exposureRecordVersion && b[0] != exposureRecordV2 {
		return nil, ErrBadRecord
	}
	e := &keyserver.Exposure{}
	copy(e.Key[:], b[1:])
	p := b[1+keyserver.KeyLength:]
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
		return nil, ErrBadRecord
	}
	if b[0] == exposureRecordVersion {
		if len(p) < keyserver.UploadTagLength {
			return nil, ErrBadRecord
		}
		copy(e.UploadTag[:], p)
	}
	return e, nil
}
