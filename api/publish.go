package api

// PublishPath is the key server's upload endpoint.
const PublishPath = "/v1/publish"

// Publish is the body of POST /v1/publish: a phone's diagnosis keys plus the
// verification certificate that proves a health authority approved the upload.
type Publish struct {
	Keys                 []ExposureKey `json:"temporaryExposureKeys"`
	HealthAuthorityID    string        `json:"healthAuthorityID"`
	VerificationPayload  string        `json:"verificationPayload,omitempty"`
	HMACKey              string        `json:"hmacKey,omitempty"`
	SymptomOnsetInterval int32         `json:"symptomOnsetInterval,omitempty"`
	Traveler             bool          `json:"traveler,omitempty"`
	RevisionToken        string        `json:"revisionToken,omitempty"`
	Padding              string        `json:"padding,omitempty"`
}

// ExposureKey is one temporary exposure key (TEK) as the phone uploads it.
// Key is the base64 of the 16 key bytes; the other fields count 10-minute
// intervals.
type ExposureKey struct {
	Key              string `json:"key"`
	IntervalNumber   int32  `json:"rollingStartNumber"`
	IntervalCount    int32  `json:"rollingPeriod"`
	TransmissionRisk int    `json:"transmissionRisk,omitempty"`
}

// PublishResponse is the answer to POST /v1/publish. Every field is optional:
// a success carries RevisionToken and InsertedExposures, a failure ErrorMessage
// and Code; a partial failure carries both.
type PublishResponse struct {
	RevisionToken     string   `json:"revisionToken,omitempty"`
	InsertedExposures int      `json:"insertedExposures,omitempty"`
	ErrorMessage      string   `json:"error,omitempty"`
	Code              string   `json:"code,omitempty"`
	Padding           string   `json:"padding,omitempty"`
	Warnings          []string `json:"warnings,omitempty"`
}

// Error codes of the publish API (the "code" field of PublishResponse).
const (
	// CodeUnknownHealthAuthorityID: the healthAuthorityID names no app known to this server (401).
	CodeUnknownHealthAuthorityID = "unknown_health_authority_id"
	// CodeUnableToLoadHealthAuthority: the server could not load the app's configuration; retry later (500).
	CodeUnableToLoadHealthAuthority = "unable_to_load_health_authority"
	// CodeCertificateInvalid: the verification certificate or its TEK HMAC did not verify (401).
	CodeCertificateInvalid = "health_authority_verification_certificate_invalid"
	// CodeBadRequest: the request could not be parsed or no key in it was valid (400, or 413/415).
	CodeBadRequest = "bad_request"
	// CodeInternalError: the server failed; the request may be retried (500).
	CodeInternalError = "internal_error"
	// CodeMissingRevisionToken: a key was uploaded before and no revision token came with it (400).
	CodeMissingRevisionToken = "missing_revision_token"
	// CodeInvalidRevisionToken: the revision token is damaged, expired or does not list the key (400).
	CodeInvalidRevisionToken = "invalid_revision_token"
	// CodeKeyAlreadyRevised: a key was revised before and cannot be revised again (400).
	CodeKeyAlreadyRevised = "key_already_revised"
	// CodeInvalidReportTypeTransition: the new report type may not replace the old one (400).
	CodeInvalidReportTypeTransition = "invalid_report_type_transition"
	// CodePartialFailure: some keys were invalid and dropped, the others were stored (200).
	CodePartialFailure = "partial_failure"
)

// Report types as verification certificates name them.
const (
	ReportTypeConfirmed  = "confirmed"
	ReportTypeLikely     = "likely"
	ReportTypeNegative   = "negative"
	ReportTypeUserReport = "user-report"
)
