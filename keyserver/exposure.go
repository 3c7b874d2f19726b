package keyserver

import (
	"fmt"
	"time"

	"github.com/candor-en/candor/api"
)

// KeyLength is the length of a temporary exposure key in bytes.
const KeyLength = 16

// UploadTagLength is the length of an Exposure's UploadTag in bytes.
const UploadTagLength = 16

// IntervalsPerDay is the number of 10-minute intervals in a UTC day, the
// largest rolling period a key may have.
const IntervalsPerDay = 144

// ReportType is the diagnosis behind an upload. It comes only from the
// verification certificate, never from the phone.
type ReportType uint8

// Report types, in the numbering of the export format's ReportType
// (api/export): confirmed → CONFIRMED_TEST, likely → CONFIRMED_CLINICAL_DIAGNOSIS,
// user-report → SELF_REPORT, negative → REVOKED.
const (
	ReportUnknown    ReportType = 0
	ReportConfirmed  ReportType = 1
	ReportLikely     ReportType = 2
	ReportUserReport ReportType = 3
	ReportNegative   ReportType = 5
)

// ParseReportType maps a certificate's reportType claim to a ReportType.
func ParseReportType(s string) (ReportType, error) {
	switch s {
	case api.ReportTypeConfirmed:
		return ReportConfirmed, nil
	case api.ReportTypeLikely:
		return ReportLikely, nil
	case api.ReportTypeUserReport:
		return ReportUserReport, nil
	case api.ReportTypeNegative:
		return ReportNegative, nil
	}
	return ReportUnknown, fmt.Errorf("unknown report type %q", s)
}

// String returns the certificate name of the report type.
func (r ReportType) String() string {
	switch r {
	case ReportConfirmed:
		return api.ReportTypeConfirmed
	case ReportLikely:
		return api.ReportTypeLikely
	case ReportUserReport:
		return api.ReportTypeUserReport
	case ReportNegative:
		return api.ReportTypeNegative
	}
	return "unknown"
}

// defaultTransmissionRisk is the risk stored when the phone sent 0.
func (r ReportType) defaultTransmissionRisk() int32 {
	switch r {
	case ReportConfirmed:
		return 2
	case ReportLikely:
		return 4
	case ReportNegative:
		return 6
	}
	return 0
}

// CanReviseTo reports whether an exposure of type r may be revised to next:
// likely → confirmed or negative; user-report → confirmed, likely or negative.
func (r ReportType) CanReviseTo(next ReportType) bool {
	switch r {
	case ReportLikely:
		return next == ReportConfirmed || next == ReportNegative
	case ReportUserReport:
		return next == ReportConfirmed || next == ReportLikely || next == ReportNegative
	}
	return false
}

// Exposure is one stored diagnosis key. Times are coarse: truncated to the
// publish window so that they say nothing finer about when a phone uploaded.
type Exposure struct {
	Key              [KeyLength]byte
	IntervalNumber   int32
	IntervalCount    int32
	TransmissionRisk int32
	ReportType       ReportType
	// DaysSinceOnset is relative to the symptom onset; valid when HasDaysSinceOnset.
	DaysSinceOnset    int32
	HasDaysSinceOnset bool
	Traveler          bool
	// Region is the region of the app that uploaded the key.
	Region            string
	HealthAuthorityID string
	// CreatedAt is when the key becomes exportable: the publish window of the
	// upload, or of the key's expiry for a key still valid at upload (embargo).
	CreatedAt time.Time
	// UploadTag marks the key as stored by one upload, so that an exact retry
	// of that upload is recognised; see uploadTags. Zero in records written
	// before tags existed.
	UploadTag [UploadTagLength]byte

	// Revision: set once, when a later upload changed the report type.
	Revised                 bool
	RevisedReportType       ReportType
	RevisedTransmissionRisk int32
	RevisedDaysSinceOnset   int32
	RevisedAt               time.Time
}

// EndInterval is the first interval after the key's validity.
func (e *Exposure) EndInterval() int32 { return e.IntervalNumber + e.IntervalCount }

// IntervalNumber returns the 10-minute interval number of t (Unix seconds / 600).
func IntervalNumber(t time.Time) int32 { return int32(t.Unix() / 600) }

// TimeForInterval returns the start time of interval n.
func TimeForInterval(n int32) time.Time { return time.Unix(int64(n)*600, 0).UTC() }
