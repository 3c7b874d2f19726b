package loadgen

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/internal/operator"
	"github.com/candor-en/candor/keyserver"
)

// Operator runs an operator operation on the server under load, as
// `candor admin` does (through its socket, or on its store): op names the
// operation, req is its JSON request and resp receives its JSON answer.
type Operator func(ctx context.Context, op string, req, resp any) error

// The authority and app the publish load registers.
const (
	loadIssuer   = "loadtest.candor.invalid"
	loadAudience = "loadtest.keyserver"
	loadApp      = "loadtest.app"
	loadRegion   = "LOAD"
)

// publisher builds publish requests as a verification server and a phone
// would: a certificate signed by an authority the load test registers.
type publisher struct {
	url  string
	priv *ecdsa.PrivateKey
	kid  string
	app  string
}

// newPublisher registers the load test's authority and an app of it, app
// in region, and returns the builder of its publish requests.
func newPublisher(ctx context.Context, op Operator, url, app, region string) (*publisher, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pemText, err := api.MarshalPublicKeyPEM(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	version := "load-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var ar operator.AuthorityAddResponse
	authority := operator.AuthorityAddRequest{Issuer: loadIssuer, Audience: loadAudience, KeyVersion: version, PublicKeyPEM: pemText}
	if err := op(ctx, "authority.add", authority, &ar); err != nil {
		return nil, fmt.Errorf("register load-test authority: %w", err)
	}
	var added json.RawMessage
	if err := op(ctx, "app.add", operator.AppAddRequest{ID: app, Authority: loadIssuer, Region: region}, &added); err != nil {
		return nil, fmt.Errorf("register load-test app: %w", err)
	}
	return &publisher{url: strings.TrimSuffix(url, "/"), priv: priv, kid: version, app: app}, nil
}

// requests builds n publish requests of keysPer keys each.
func (p *publisher) requests(n, keysPer int) ([]*Request, error) {
	now := time.Now()
	today := keyserver.IntervalNumber(now)
	today -= today % keyserver.IntervalsPerDay
	header := http.Header{"Content-Type": {"application/json"}}
	out := make([]*Request, n)
	raw := make([]byte, 16*keysPer)
	secret := make([]byte, 32)
	for i := range out {
		rand.Read(raw)
		rand.Read(secret)
		keys := make([]api.ExposureKey, keysPer)
		for j := range keys {
			keys[j] = api.ExposureKey{
				Key:              base64.StdEncoding.EncodeToString(raw[16*j : 16*j+16]),
				IntervalNumber:   today - int32(keysPer-1-j)*keyserver.IntervalsPerDay,
				IntervalCount:    keyserver.IntervalsPerDay,
				TransmissionRisk: 1 + j%8,
			}
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
			"reportType": api.ReportTypeConfirmed,
			"tekmac":     base64.StdEncoding.EncodeToString(api.TEKMAC(secret, keys, true)),
			"iss":        loadIssuer,
			"aud":        loadAudience,
			"iat":        now.Add(-5 * time.Second).Unix(),
			"nbf":        now.Add(-5 * time.Second).Unix(),
			"exp":        now.Add(15 * time.Minute).Unix(),
		})
		tok.Header["kid"] = p.kid
		cert, err := tok.SignedString(p.priv)
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(api.Publish{
			Keys: keys, HealthAuthorityID: p.app, VerificationPayload: cert,
			HMACKey: base64.StdEncoding.EncodeToString(secret),
		})
		if err != nil {
			return nil, err
		}
		out[i] = &Request{Method: http.MethodPost, URL: p.url + api.PublishPath, Header: header, Body: body}
	}
	return out, nil
}
