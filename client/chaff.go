package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/candor-en/candor/api"
)

// Chaff sends a decoy upload journey: /api/verify, /api/certificate and
// /v1/publish requests marked with the X-Chaff header and shaped like real
// ones (random code, token, HMAC and 14 keys). The servers do nothing with
// them but answer as they would a real upload, so that an observer of the
// network cannot tell which phones report a diagnosis. Apps send chaff at
// random times; apiKey is the app's device API key and healthAuthorityID
// its ID at the key server, as in a real upload.
func (c *Client) Chaff(ctx context.Context, apiKey, healthAuthorityID string) error {
	code := fmt.Sprintf("%08d", mrand.IntN(100_000_000))
	var v api.VerifyCodeResponse
	req := &api.VerifyCodeRequest{VerificationCode: code, Padding: padding()}
	if err := c.post(ctx, api.VerifyPath, apiKey, true, req, &v); err != nil {
		return fmt.Errorf("chaff verify: %w", err)
	}
	mac := make([]byte, 32)
	rand.Read(mac)
	var cert api.VerificationCertificateResponse
	creq := &api.VerificationCertificateRequest{VerificationToken: v.VerificationToken, ExposureKeyHMAC: base64.StdEncoding.EncodeToString(mac), Padding: padding()}
	if err := c.post(ctx, api.CertificatePath, apiKey, true, creq, &cert); err != nil {
		return fmt.Errorf("chaff certificate: %w", err)
	}
	today := int32(time.Now().Unix() / 600 / 144 * 144)
	keys := make([]api.ExposureKey, 14)
	for i := range keys {
		k := make([]byte, 16)
		rand.Read(k)
		keys[i] = api.ExposureKey{Key: base64.StdEncoding.EncodeToString(k), IntervalNumber: today - int32(13-i)*144, IntervalCount: 144}
	}
	secret := make([]byte, HMACSecretSize)
	rand.Read(secret)
	preq := &api.Publish{Keys: keys, HealthAuthorityID: healthAuthorityID, VerificationPayload: cert.Certificate,
		HMACKey: base64.StdEncoding.EncodeToString(secret), Padding: padding()}
	var resp api.PublishResponse
	if err := c.post(ctx, api.PublishPath, "", true, preq, &resp); err != nil {
		return fmt.Errorf("chaff publish: %w", err)
	}
	return nil
}
