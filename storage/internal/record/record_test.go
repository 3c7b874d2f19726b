package record

import (
	"errors"
	"testing"
	"time"

	"github.com/candor-en/candor/keyserver"
)

func TestExposureRecordRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
	e := &keyserver.Exposure{
		Key: [16]byte{1, 2, 3}, IntervalNumber: 2_941_632, IntervalCount: 144, TransmissionRisk: 4,
		ReportType: keyserver.ReportLikely, DaysSinceOnset: -3, HasDaysSinceOnset: true, Traveler: true,
		Region: "US-WA", HealthAuthorityID: "gov.example.app", CreatedAt: at,
		UploadTag: [16]byte{0xAA, 15: 0x55},
		Revised:   true, RevisedReportType: keyserver.ReportConfirmed, RevisedTransmissionRisk: 2, RevisedDaysSinceOnset: -3, RevisedAt: at.Add(time.Hour),
	}
	b := EncodeExposure(e)
	tests := []struct {
		name   string
		record []byte
		want   *keyserver.Exposure // nil: the record is refused
	}{
		{"current version", b, e},
		{"cut inside the upload tag", b[:len(b)-1], nil},
		{"cut before the upload tag", b[:len(b)-keyserver.UploadTagLength], nil},
		// Records written before upload tags existed: version 2, no tag.
		{"version 2", append([]byte{exposureRecordV2}, b[1:len(b)-keyserver.UploadTagLength]...), func() *keyserver.Exposure {
			old := *e
			old.UploadTag = [16]byte{}
			return &old
		}()},
		{"unknown version", append([]byte{9}, b[1:]...), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeExposure(tt.record)
			if tt.want == nil {
				if !errors.Is(err, ErrBadRecord) {
					t.Fatalf("decoded %+v (%v), want ErrBadRecord", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != *tt.want {
				t.Errorf("decoded\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}
