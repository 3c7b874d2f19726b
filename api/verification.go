package api

// Paths of the verification service. The device API (verify, certificate)
// takes a device API key, the admin API (issue, batch-issue,
// checkcodestatus, expirecode) an admin API key, both in APIKeyHeader.
const (
	VerifyPath          = "/api/verify"
	CertificatePath     = "/api/certificate"
	IssuePath           = "/api/issue"
	BatchIssuePath      = "/api/batch-issue"
	CheckCodeStatusPath = "/api/checkcodestatus"
	ExpireCodePath      = "/api/expirecode"
	// JWKSPathPrefix and a realm name are the URL of the realm's
	// certificate public keys (a JWKS): /jwks/{realm}.
	JWKSPathPrefix = "/jwks/"
	// LongCodeLinkPath is the target of the long-code link /v?c=<long code>.
	LongCodeLinkPath = "/v"
	// APIKeyHeader carries the device or admin API key.
	APIKeyHeader = "X-API-Key"
	// ChaffHeader marks a decoy request (any non-empty value).
	ChaffHeader = "X-Chaff"
)

// Test types: what a verification code attests and what a certificate's
// reportType claim says.
const (
	TestTypeConfirmed  = ReportTypeConfirmed
	TestTypeLikely     = ReportTypeLikely
	TestTypeNegative   = ReportTypeNegative
	TestTypeUserReport = ReportTypeUserReport
)

// Error codes of the verification device and admin APIs (the "errorCode"
// field of every response). Each comment gives the HTTP status.
const (
	// ErrUnparsableRequest: the body is not one JSON object of the right
	// shape, a field is malformed, or the content type is not JSON (400; 413
	// for a body over 64,000 bytes).
	ErrUnparsableRequest = "unparsable_request"
	// ErrInternal: the server failed; retry later (500).
	ErrInternal = "internal_server_error"
	// ErrUnauthorized: the X-API-Key header is missing, unknown, revoked or
	// of the wrong kind for the endpoint (401).
	ErrUnauthorized = "unauthorized"
	// ErrRateLimited: too many failed code redemptions with this API key;
	// retry after the Retry-After header's seconds (429).
	ErrRateLimited = "rate_limited"

	// ErrVerifyCodeInvalid: the code is unknown, already used, or removed
	// after expiry (400).
	ErrVerifyCodeInvalid = "code_invalid"
	// ErrVerifyCodeExpired: the code is known but expired (400).
	ErrVerifyCodeExpired = "code_expired"
	// ErrVerifyCodeNotFound: no code with this UUID in the realm (404).
	ErrVerifyCodeNotFound = "code_not_found"
	// ErrUnsupportedTestType: the code's test type is not among those the
	// app accepts, or (issue) the realm does not issue this test type (412).
	ErrUnsupportedTestType = "unsupported_test_type"
	// ErrInvalidTestType: a test type name is not one of confirmed, likely,
	// negative, user-report (400).
	ErrInvalidTestType = "invalid_test_type"
	// ErrMissingDate: the realm requires a symptom or test date (400).
	ErrMissingDate = "missing_date"
	// ErrInvalidDate: a date is in the future or too old for the issuer's
	// local day (400).
	ErrInvalidDate = "invalid_date"
	// ErrUUIDAlreadyExists: a code with this client UUID was already issued (409).
	ErrUUIDAlreadyExists = "uuid_already_exists"
	// ErrMaintenanceMode: the realm is in maintenance and answers nothing (429).
	ErrMaintenanceMode = "maintenance_mode"
	// ErrQuotaExceeded: the realm issued its daily quota of codes (429).
	ErrQuotaExceeded = "quota_exceeded"

	// ErrTokenInvalid: the token is malformed, forged, or from another realm (400).
	ErrTokenInvalid = "token_invalid"
	// ErrTokenExpired: the token expired or was already used (400).
	ErrTokenExpired = "token_expired"
	// ErrHMACInvalid: ekeyhmac is not standard base64 of 32 bytes (400).
	ErrHMACInvalid = "hmac_invalid"
)

// VerifyCodeRequest is the body of POST /api/verify: a short or long code to
// exchange for a verification token. Accept lists the test types the app can
// handle; empty accepts every type (including future ones). Nonce is
// accepted and ignored (it belongs to the reference's user-report flow).
type VerifyCodeRequest struct {
	VerificationCode string   `json:"code"`
	AcceptTestTypes  []string `json:"accept"`
	Padding          string   `json:"padding,omitempty"`
	Nonce            string   `json:"nonce,omitempty"`
}

// VerifyCodeResponse is the answer to POST /api/verify. Dates are
// YYYY-MM-DD; Token is the verification token (an ES256 JWT).
type VerifyCodeResponse struct {
	TestType          string `json:"testtype,omitempty"`
	SymptomDate       string `json:"symptomDate,omitempty"`
	TestDate          string `json:"testDate,omitempty"`
	VerificationToken string `json:"token,omitempty"`
	Error             string `json:"error,omitempty"`
	ErrorCode         string `json:"errorCode,omitempty"`
	Padding           string `json:"padding,omitempty"`
}

// VerificationCertificateRequest is the body of POST /api/certificate: a
// verification token and the HMAC of the keys the phone will upload
// (standard base64 of 32 bytes, see docs/KEYSERVER.md, "TEK HMAC").
type VerificationCertificateRequest struct {
	VerificationToken string `json:"token"`
	ExposureKeyHMAC   string `json:"ekeyhmac"`
	Padding           string `json:"padding,omitempty"`
}

// VerificationCertificateResponse is the answer to POST /api/certificate.
type VerificationCertificateResponse struct {
	Certificate string `json:"certificate,omitempty"`
	Error       string `json:"error,omitempty"`
	ErrorCode   string `json:"errorCode,omitempty"`
	Padding     string `json:"padding,omitempty"`
}

// IssueCodeRequest is the body of POST /api/issue (and one element of a
// batch). Dates are YYYY-MM-DD in the issuer's local calendar. TZOffset is
// the issuer's offset from UTC in minutes east (UTC+2 is 120, UTC−5 is
// −300); it is a number, as in the reference, and a fraction is ignored.
// Phone is accepted but neither stored nor used: Candor sends no SMS.
// UUID, when given, makes retries safe: a second code with the same UUID is
// refused. ExternalIssuerID is accepted and ignored.
type IssueCodeRequest struct {
	SymptomDate      string  `json:"symptomDate"`
	TestDate         string  `json:"testDate"`
	TestType         string  `json:"testType"`
	TZOffset         float64 `json:"tzOffset"`
	Phone            string  `json:"phone,omitempty"`
	Padding          string  `json:"padding,omitempty"`
	UUID             string  `json:"uuid,omitempty"`
	ExternalIssuerID string  `json:"externalIssuerID,omitempty"`
}

// IssueCodeResponse is the answer to POST /api/issue. Times are RFC 1123 in
// UTC and Unix seconds. LongCode and LongCodeLink are Candor additions: the
// long code and the link https://<host>/v?c=<long code> to send to the person.
type IssueCodeResponse struct {
	UUID                   string `json:"uuid"`
	VerificationCode       string `json:"code"`
	ExpiresAt              string `json:"expiresAt"`
	ExpiresAtTimestamp     int64  `json:"expiresAtTimestamp"`
	LongExpiresAt          string `json:"longExpiresAt,omitempty"`
	LongExpiresAtTimestamp int64  `json:"longExpiresAtTimestamp,omitempty"`
	LongCode               string `json:"longCode,omitempty"`
	LongCodeLink           string `json:"longCodeLink,omitempty"`
	Error                  string `json:"error,omitempty"`
	ErrorCode              string `json:"errorCode,omitempty"`
	Padding                string `json:"padding,omitempty"`
}

// MaxBatchIssue is the most codes one POST /api/batch-issue may ask for.
const MaxBatchIssue = 10

// BatchIssueCodeRequest is the body of POST /api/batch-issue.
type BatchIssueCodeRequest struct {
	Codes   []*IssueCodeRequest `json:"codes"`
	Padding string              `json:"padding,omitempty"`
}

// BatchIssueCodeResponse is the answer to POST /api/batch-issue: one
// response per requested code, in order. When any failed, the HTTP status
// and ErrorCode are those of the first failure and Error summarises.
type BatchIssueCodeResponse struct {
	Codes     []*IssueCodeResponse `json:"codes,omitempty"`
	Error     string               `json:"error,omitempty"`
	ErrorCode string               `json:"errorCode,omitempty"`
	Padding   string               `json:"padding,omitempty"`
}

// CheckCodeStatusRequest is the body of POST /api/checkcodestatus.
type CheckCodeStatusRequest struct {
	UUID    string `json:"uuid"`
	Padding string `json:"padding,omitempty"`
}

// CheckCodeStatusResponse is the answer to POST /api/checkcodestatus.
type CheckCodeStatusResponse struct {
	Claimed                bool   `json:"claimed"`
	ExpiresAtTimestamp     int64  `json:"expiresAtTimestamp"`
	LongExpiresAtTimestamp int64  `json:"longExpiresAtTimestamp,omitempty"`
	Error                  string `json:"error,omitempty"`
	ErrorCode              string `json:"errorCode,omitempty"`
	Padding                string `json:"padding,omitempty"`
}

// ExpireCodeRequest is the body of POST /api/expirecode.
type ExpireCodeRequest struct {
	UUID    string `json:"uuid"`
	Padding string `json:"padding,omitempty"`
}

// ExpireCodeResponse is the answer to POST /api/expirecode: the new (past)
// expiry times.
type ExpireCodeResponse struct {
	ExpiresAtTimestamp     int64  `json:"expiresAtTimestamp"`
	LongExpiresAtTimestamp int64  `json:"longExpiresAtTimestamp,omitempty"`
	Error                  string `json:"error,omitempty"`
	ErrorCode              string `json:"errorCode,omitempty"`
	Padding                string `json:"padding,omitempty"`
}

// ErrorResponse is the body of an /api/* error that has no specific
// response type (authentication, rate limiting).
type ErrorResponse struct {
	Error     string `json:"error,omitempty"`
	ErrorCode string `json:"errorCode,omitempty"`
	Padding   string `json:"padding,omitempty"`
}
