package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"slices"

	"github.com/candor-en/candor/api"
)

// Verify exchanges a verification code, short or long, for a verification
// token (POST /api/verify), with the app's device API key. accept lists the
// test types the app handles (api.TestType*); nil accepts every type. The
// answer says the test type and dates the code attests; its
// VerificationToken goes to Certificate. A code works once.
//
// Refusals are *APIError with code api.ErrVerifyCodeInvalid,
// api.ErrVerifyCodeExpired, api.ErrUnsupportedTestType,
// api.ErrInvalidTestType, api.ErrRateLimited, api.ErrMaintenanceMode,
// api.ErrUnauthorized or api.ErrUnparsableRequest.
func (c *Client) Verify(ctx context.Context, apiKey, code string, accept []string) (*api.VerifyCodeResponse, error) {
	req := &api.VerifyCodeRequest{VerificationCode: code, AcceptTestTypes: accept}
	if c.padding {
		req.Padding = padding()
	}
	var resp api.VerifyCodeResponse
	if err := c.postJSON(ctx, api.VerifyPath, apiKey, req, &resp); err != nil {
		return nil, fmt.Errorf("verify code: %w", err)
	}
	if resp.VerificationToken == "" {
		return nil, fmt.Errorf("verify code: the answer holds no token")
	}
	return &resp, nil
}

// Certificate exchanges a verification token and the HMAC of the keys to
// upload (Upload.EKeyHMAC, standard base64) for a verification certificate
// (POST /api/certificate), with the app's device API key. The certificate
// is valid for minutes and only for exactly those keys. A token works once.
//
// Refusals are *APIError with code api.ErrTokenInvalid,
// api.ErrTokenExpired, api.ErrHMACInvalid, api.ErrMaintenanceMode,
// api.ErrUnauthorized or api.ErrUnparsableRequest.
func (c *Client) Certificate(ctx context.Context, apiKey, token, ekeyhmac string) (*api.VerificationCertificateResponse, error) {
	req := &api.VerificationCertificateRequest{VerificationToken: token, ExposureKeyHMAC: ekeyhmac}
	if c.padding {
		req.Padding = padding()
	}
	var resp api.VerificationCertificateResponse
	if err := c.postJSON(ctx, api.CertificatePath, apiKey, req, &resp); err != nil {
		return nil, fmt.Errorf("get certificate: %w", err)
	}
	if resp.Certificate == "" {
		return nil, fmt.Errorf("get certificate: the answer holds no certificate")
	}
	return &resp, nil
}

// HMACSecretSize is the size of the secret PreparePublish draws.
const HMACSecretSize = 32

// Upload is a key upload being prepared: the keys, a fresh HMAC secret, and
// the HMAC of the keys under it. The verification server signs the HMAC
// into the certificate without seeing the keys; the key server recomputes
// it from the uploaded keys and the secret, which binds the certificate to
// exactly these keys.
type Upload struct {
	// Keys are uploaded exactly as they are here; changing them after
	// PreparePublish invalidates the HMAC.
	Keys []api.ExposureKey
	// Secret is the HMAC secret, sent as the upload's hmacKey.
	Secret []byte
	// EKeyHMAC is the standard base64 of the HMAC, sent to Certificate.
	EKeyHMAC string
}

// PreparePublish draws an HMAC secret from random (crypto/rand when nil) and
// computes the HMAC of keys that Certificate needs (docs/KEYSERVER.md): the keys
// sorted by their base64 string, each as
// "key.rollingStartNumber.rollingPeriod.transmissionRisk", joined with ",",
// under HMAC-SHA256. keys are copied.
func PreparePublish(keys []api.ExposureKey, random io.Reader) (*Upload, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("prepare publish: no keys")
	}
	if random == nil {
		random = cryptoRand{}
	}
	secret := make([]byte, HMACSecretSize)
	if _, err := io.ReadFull(random, secret); err != nil {
		return nil, fmt.Errorf("prepare publish: hmac secret: %w", err)
	}
	u := &Upload{Keys: slices.Clone(keys), Secret: secret}
	u.EKeyHMAC = base64.StdEncoding.EncodeToString(KeyHMAC(secret, u.Keys))
	return u, nil
}

type cryptoRand struct{}

func (cryptoRand) Read(p []byte) (int, error) { return rand.Read(p) }

// KeyHMAC returns the HMAC-SHA256 under secret of the keys' cleartext, the
// form with transmission risks (api.TEKMAC), which the key server checks.
func KeyHMAC(secret []byte, keys []api.ExposureKey) []byte {
	return api.TEKMAC(secret, keys, true)
}

// Request returns the publish request of the upload: its keys and secret,
// the certificate from Certificate, the app's healthAuthorityID, and the
// revision token of an earlier upload of any of these keys ("" for a first
// upload). Set SymptomOnsetInterval or Traveler on the result as needed.
func (u *Upload) Request(healthAuthorityID, certificate, revisionToken string) *api.Publish {
	return &api.Publish{
		Keys:                slices.Clone(u.Keys),
		HealthAuthorityID:   healthAuthorityID,
		VerificationPayload: certificate,
		HMACKey:             base64.StdEncoding.EncodeToString(u.Secret),
		RevisionToken:       revisionToken,
	}
}

// Publish uploads diagnosis keys (POST /v1/publish). Keep the answer's
// RevisionToken: a later upload of any of the same keys (a revision, e.g.
// likely → confirmed) must carry it.
//
// A 200 answer returns the response and a nil error, also when its Code is
// api.CodePartialFailure (some keys were dropped, see ErrorMessage and
// Warnings; the others were stored). Refusals are *APIError with the
// api.Code* codes: api.CodeCertificateInvalid,
// api.CodeUnknownHealthAuthorityID, api.CodeBadRequest,
// api.CodeMissingRevisionToken, api.CodeInvalidRevisionToken,
// api.CodeKeyAlreadyRevised, api.CodeInvalidReportTypeTransition,
// api.CodeInternalError.
func (c *Client) Publish(ctx context.Context, req *api.Publish) (*api.PublishResponse, error) {
	r := *req
	if c.padding && r.Padding == "" {
		r.Padding = padding()
	}
	var resp api.PublishResponse
	if err := c.postJSON(ctx, api.PublishPath, "", &r, &resp); err != nil {
		return nil, fmt.Errorf("publish keys: %w", err)
	}
	return &resp, nil
}
