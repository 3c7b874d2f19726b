package client

import (
	"context"
	"fmt"

	"github.com/candor-en/candor/api"
)

// The admin API is for a health authority's own systems (a lab's result
// pipeline, a call centre's tool): each call takes a realm's admin API key.

// Issue issues a verification code for one person (POST /api/issue). Set
// TestType and at least the dates the realm requires (YYYY-MM-DD in the
// issuer's calendar, TZOffset minutes east of UTC); set UUID to make
// retries safe. The answer holds the short code to tell the person, and the
// long code and link to send by SMS.
//
// Refusals are *APIError with code api.ErrInvalidTestType,
// api.ErrUnsupportedTestType, api.ErrMissingDate, api.ErrInvalidDate,
// api.ErrUUIDAlreadyExists, api.ErrQuotaExceeded, api.ErrMaintenanceMode,
// api.ErrUnauthorized or api.ErrUnparsableRequest.
func (c *Client) Issue(ctx context.Context, adminKey string, req *api.IssueCodeRequest) (*api.IssueCodeResponse, error) {
	var resp api.IssueCodeResponse
	if err := c.postJSON(ctx, api.IssuePath, adminKey, req, &resp); err != nil {
		return nil, fmt.Errorf("issue code: %w", err)
	}
	return &resp, nil
}

// BatchIssue issues up to api.MaxBatchIssue codes at once (POST
// /api/batch-issue). When some fail, it returns the answer, whose Codes
// hold one result per request in order (each with its own ErrorCode), and
// an *APIError for the first failure.
func (c *Client) BatchIssue(ctx context.Context, adminKey string, reqs []*api.IssueCodeRequest) (*api.BatchIssueCodeResponse, error) {
	var resp api.BatchIssueCodeResponse
	if err := c.postJSON(ctx, api.BatchIssuePath, adminKey, &api.BatchIssueCodeRequest{Codes: reqs}, &resp); err != nil {
		if len(resp.Codes) > 0 {
			return &resp, fmt.Errorf("batch issue codes: %w", err)
		}
		return nil, fmt.Errorf("batch issue codes: %w", err)
	}
	return &resp, nil
}

// CheckCodeStatus reports whether the code issued with uuid was claimed
// (POST /api/checkcodestatus). An unknown UUID is an *APIError with code
// api.ErrVerifyCodeNotFound.
func (c *Client) CheckCodeStatus(ctx context.Context, adminKey, uuid string) (*api.CheckCodeStatusResponse, error) {
	var resp api.CheckCodeStatusResponse
	if err := c.postJSON(ctx, api.CheckCodeStatusPath, adminKey, &api.CheckCodeStatusRequest{UUID: uuid}, &resp); err != nil {
		return nil, fmt.Errorf("check code status: %w", err)
	}
	return &resp, nil
}

// ExpireCode expires the code issued with uuid at once (POST
// /api/expirecode), e.g. when it was given to the wrong person. An unknown
// UUID is an *APIError with code api.ErrVerifyCodeNotFound.
func (c *Client) ExpireCode(ctx context.Context, adminKey, uuid string) (*api.ExpireCodeResponse, error) {
	var resp api.ExpireCodeResponse
	if err := c.postJSON(ctx, api.ExpireCodePath, adminKey, &api.ExpireCodeRequest{UUID: uuid}, &resp); err != nil {
		return nil, fmt.Errorf("expire code: %w", err)
	}
	return &resp, nil
}
