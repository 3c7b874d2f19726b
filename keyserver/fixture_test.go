package keyserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/storage/memory"
)

const (
	testIssuer   = "gov.example.verification"
	testAudience = "gov.example.keyserver"
	testApp      = "gov.example.app"
	testKID      = "v1"
)

// fixture is a Publisher over an in-memory store with one authority and app,
// a certificate signing key, and a movable clock.
type fixture struct {
	t      testing.TB
	store  *memory.Store
	pub    *keyserver.Publisher
	priv   *ecdsa.PrivateKey
	now    time.Time
	revKey *keyset.Ring
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, store: memory.New(), now: time.Date(2026, 11, 20, 15, 37, 11, 0, time.UTC)}
	var err error
	f.priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemText, err := api.MarshalPublicKeyPEM(&f.priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := keyserver.AddAuthority(ctx, f.store, keyserver.HealthAuthority{Issuer: testIssuer, Audience: testAudience},
		&keyserver.AuthorityKey{Version: testKID, PEM: pemText}, f.now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := keyserver.AddApp(ctx, f.store, testApp, testIssuer, "US-WA"); err != nil {
		t.Fatal(err)
	}
	master, err := keyset.OpenMasterFile(filepath.Join(t.TempDir(), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	f.revKey, err = keyset.Open(ctx, keyset.NewMemStore(), master, "revision", keyset.PurposeAEAD, keyset.Options{Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	f.pub = keyserver.NewPublisher(f.store, f.store, f.revKey, keyserver.PublishOptions{Now: f.clock})
	return f
}

func (f *fixture) clock() time.Time { return f.now }

// dailyKeys returns n daily keys ending with today's (still valid) key.
func (f *fixture) dailyKeys(n int) []api.ExposureKey {
	today := keyserver.IntervalNumber(f.now)
	today -= today % 144
	keys := make([]api.ExposureKey, n)
	for i := range keys {
		b := make([]byte, 16)
		rand.Read(b)
		keys[i] = api.ExposureKey{
			Key:              base64.StdEncoding.EncodeToString(b),
			IntervalNumber:   today - int32(n-1-i)*144,
			IntervalCount:    144,
			TransmissionRisk: 0,
		}
	}
	return keys
}

// certOpts change one thing about a certificate.
type certOpts struct {
	method      jwt.SigningMethod
	key         any
	kid         *string
	claims      map[string]any // overrides
	dropClaims  []string
	hmacKeys    []api.ExposureKey // keys the tekmac covers, when not the request's
	reportType  string
	onset       uint32
	tekmacBytes []byte
}

// request returns a publish request for keys with a valid certificate,
// changed by opts.
func (f *fixture) request(keys []api.ExposureKey, o certOpts) *api.Publish {
	f.t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	macKeys := keys
	if o.hmacKeys != nil {
		macKeys = o.hmacKeys
	}
	mac := api.TEKMAC(secret, macKeys, true)
	if o.tekmacBytes != nil {
		mac = o.tekmacBytes
	}
	rt := o.reportType
	if rt == "" {
		rt = api.ReportTypeConfirmed
	}
	claims := jwt.MapClaims{
		"reportType": rt,
		"tekmac":     base64.StdEncoding.EncodeToString(mac),
		"iss":        testIssuer,
		"aud":        testAudience,
		"iat":        f.now.Add(-5 * time.Second).Unix(),
		"nbf":        f.now.Add(-5 * time.Second).Unix(),
		"exp":        f.now.Add(15 * time.Minute).Unix(),
	}
	if o.onset != 0 {
		claims["symptomOnsetInterval"] = o.onset
	}
	for k, v := range o.claims {
		claims[k] = v
	}
	for _, k := range o.dropClaims {
		delete(claims, k)
	}
	method := o.method
	if method == nil {
		method = jwt.SigningMethodES256
	}
	tok := jwt.NewWithClaims(method, claims)
	if o.kid != nil {
		if *o.kid != "" {
			tok.Header["kid"] = *o.kid
		}
	} else {
		tok.Header["kid"] = testKID
	}
	var key any = f.priv
	if o.key != nil {
		key = o.key
	}
	signed, err := tok.SignedString(key)
	if err != nil {
		f.t.Fatalf("sign certificate: %v", err)
	}
	return &api.Publish{
		Keys:                keys,
		HealthAuthorityID:   testApp,
		VerificationPayload: signed,
		HMACKey:             base64.StdEncoding.EncodeToString(secret),
	}
}

func (f *fixture) count() int {
	n := 0
	f.store.ScanExportExposures(context.Background(), false, time.Unix(0, 0), f.now.Add(100*24*time.Hour), func(*keyserver.Exposure) error { n++; return nil })
	return n
}

func (f *fixture) stored(t *testing.T, k api.ExposureKey) *keyserver.Exposure {
	t.Helper()
	raw, _ := base64.StdEncoding.DecodeString(k.Key)
	var key [16]byte
	copy(key[:], raw)
	e, err := f.store.Exposure(context.Background(), key)
	if err != nil {
		t.Fatalf("stored key: %v", err)
	}
	return e
}
