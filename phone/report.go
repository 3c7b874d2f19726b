package phone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/client"
	"github.com/candor-en/candor/gaen"
)

// ReportOptions are the inputs of one upload.
type ReportOptions struct {
	// Code is the verification code, short or long, from the health
	// authority.
	Code string
	// Accept lists the test types the app accepts (api.TestType*); nil
	// accepts every type.
	Accept []string
	// Now is the phone's clock.
	Now time.Time
	// Rand draws the HMAC secret; crypto/rand when nil.
	Rand io.Reader
}

// ReportResult is what an upload did.
type ReportResult struct {
	// TestType, SymptomDate and TestDate are what the code attests.
	TestType    string
	SymptomDate string
	TestDate    string
	// Keys is the number of keys sent; Inserted the number the server
	// stored as new (a revision stores none).
	Keys     int
	Inserted int
	// Revision reports whether the upload carried the revision token of an
	// earlier one.
	Revision bool
	// PartialFailure, when not empty, says why the server dropped some keys.
	PartialFailure string
	Warnings       []string
}

// UploadKeys returns the phone's keys as it uploads them: every key of the
// last KeepDays days that has started by now (today's included; the server
// holds it back until it expires), transmission risk left to the server.
func (st *State) UploadKeys(now time.Time) []api.ExposureKey {
	current := gaen.IntervalNumber(now)
	var keys []api.ExposureKey
	for _, k := range st.Keys {
		if k.RollingStart > current {
			continue
		}
		keys = append(keys, api.ExposureKey{
			Key:            k.TEK.String(),
			IntervalNumber: int32(k.RollingStart),
			IntervalCount:  int32(k.RollingPeriod),
		})
	}
	return keys
}

// Report uploads the phone's keys as the app does after a positive test:
// it verifies the code (device API key st.App.APIKey), gets a certificate
// for the HMAC of its keys, and publishes them under
// st.App.HealthAuthorityID. When the phone uploaded before, the upload
// carries that upload's revision token, so a new code revises the earlier
// report (likely → confirmed). On success the new revision token and the
// report are kept in st; on failure st is unchanged, but a code that
// verified is spent.
//
// Server refusals are *client.APIError (errors.As) whose message says what
// to do; the error also names the step that failed.
func (st *State) Report(ctx context.Context, c *client.Client, opts ReportOptions) (*ReportResult, error) {
	switch {
	case opts.Code == "":
		return nil, errors.New("report: a verification code is required")
	case st.App.APIKey == "":
		return nil, errors.New("report: the app has no device API key")
	case st.App.HealthAuthorityID == "":
		return nil, errors.New("report: the app has no health authority ID")
	}
	keys := st.UploadKeys(opts.Now)
	if len(keys) == 0 {
		return nil, errors.New("report: the phone has no keys (run keys first)")
	}
	v, err := c.Verify(ctx, st.App.APIKey, opts.Code, opts.Accept)
	if err != nil {
		return nil, fmt.Errorf("report: step 1 of 3: %w", err)
	}
	up, err := client.PreparePublish(keys, opts.Rand)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	cert, err := c.Certificate(ctx, st.App.APIKey, v.VerificationToken, up.EKeyHMAC)
	if err != nil {
		return nil, fmt.Errorf("report: step 2 of 3: %w", err)
	}
	req := up.Request(st.App.HealthAuthorityID, cert.Certificate, st.RevisionToken)
	resp, err := c.Publish(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("report: step 3 of 3: %w", err)
	}
	res := &ReportResult{
		TestType: v.TestType, SymptomDate: v.SymptomDate, TestDate: v.TestDate,
		Keys: len(keys), Inserted: resp.InsertedExposures, Revision: st.RevisionToken != "",
		Warnings: resp.Warnings,
	}
	if resp.Code == api.CodePartialFailure {
		res.PartialFailure = resp.ErrorMessage
	}
	if resp.RevisionToken != "" {
		st.RevisionToken = resp.RevisionToken
	}
	st.Reports = append(st.Reports, Report{
		Day: opts.Now.UTC().Format(time.DateOnly), TestType: v.TestType, SymptomDate: v.SymptomDate, TestDate: v.TestDate,
		Keys: len(keys), Inserted: resp.InsertedExposures, Revision: res.Revision,
	})
	return res, nil
}
