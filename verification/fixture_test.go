package verification_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/storage/bolt"
	"github.com/candor-en/candor/verification"
)

// clock is a movable clock safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a Service over a bbolt store in a temp dir with one realm "wa"
// (no quota), an admin and a device key, and a movable clock.
type fixture struct {
	t       testing.TB
	ctx     context.Context
	db      *bolt.DB
	store   *bolt.VerificationStore
	master  tink.AEAD
	svc     *verification.Service
	clock   *clock
	limiter *verification.AttemptLimiter

	realm               *verification.Realm
	adminKey, deviceKey string
}

type fixtureOption func(*verification.Options)

func newFixture(t testing.TB, opts ...fixtureOption) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, ctx: context.Background(), clock: &clock{t: time.Date(2026, 11, 20, 15, 37, 11, 0, time.UTC)}}
	var err error
	if f.db, err = bolt.Open(dir, bolt.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	if f.master, err = keyset.OpenMasterFile(filepath.Join(dir, "master.key")); err != nil {
		t.Fatal(err)
	}
	f.limiter = verification.NewAttemptLimiter(0, 0, f.clock.Now)
	o := verification.Options{Now: f.clock.Now, LinkBase: func() string { return "https://verify.example" }, Limiter: f.limiter}
	for _, fn := range opts {
		fn(&o)
	}
	f.store = bolt.NewVerificationStore(f.db)
	if f.svc, err = verification.New(f.ctx, f.store, f.db, f.master, o); err != nil {
		t.Fatal(err)
	}
	f.realm = f.addRealm(verification.Realm{Name: "wa", Region: "US-WA"})
	f.adminKey = f.apiKey("wa", verification.AdminKey)
	f.deviceKey = f.apiKey("wa", verification.DeviceKey)
	return f
}

func (f *fixture) addRealm(r verification.Realm) *verification.Realm {
	f.t.Helper()
	realm, err := f.svc.CreateRealm(f.ctx, r)
	if err != nil {
		f.t.Fatal(err)
	}
	return realm
}

func (f *fixture) apiKey(realm string, kind verification.APIKeyKind) string {
	f.t.Helper()
	secret, _, err := f.svc.CreateAPIKey(f.ctx, realm, kind, "test")
	if err != nil {
		f.t.Fatal(err)
	}
	return secret
}

// caller authenticates secret (fresh, so realm changes are seen).
func (f *fixture) caller(secret string, kind verification.APIKeyKind) *verification.Caller {
	f.t.Helper()
	c, err := f.svc.Authenticate(f.ctx, secret, kind)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) issue(req api.IssueCodeRequest) *verification.Issued {
	f.t.Helper()
	is, err := f.svc.Issue(f.ctx, f.caller(f.adminKey, verification.AdminKey), &req)
	if err != nil {
		f.t.Fatalf("issue %+v: %v", req, err)
	}
	return is
}

func (f *fixture) verify(code string, accept ...string) (*verification.Verified, error) {
	return f.svc.Verify(f.ctx, f.caller(f.deviceKey, verification.DeviceKey), &api.VerifyCodeRequest{VerificationCode: code, AcceptTestTypes: accept})
}

func (f *fixture) mustVerify(code string) *verification.Verified {
	f.t.Helper()
	v, err := f.verify(code)
	if err != nil {
		f.t.Fatalf("verify: %v", err)
	}
	return v
}

func (f *fixture) certificate(token, mac string) (string, error) {
	return f.svc.Certificate(f.ctx, f.caller(f.deviceKey, verification.DeviceKey), &api.VerificationCertificateRequest{VerificationToken: token, ExposureKeyHMAC: mac})
}

// day returns the clock's date days ago as YYYY-MM-DD.
func (f *fixture) day(ago int) string {
	return f.clock.Now().AddDate(0, 0, -ago).Format(verification.DateLayout)
}

// digest hashes every bucket of the store: equal digests mean nothing was written.
func (f *fixture) digest() string {
	f.t.Helper()
	h := sha256.New()
	err := f.db.Bolt().View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			h.Write(name)
			return b.ForEach(func(k, v []byte) error {
				h.Write([]byte{0})
				h.Write(k)
				h.Write([]byte{1})
				h.Write(v)
				return nil
			})
		})
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// tekmac returns keys valid before the clock's now, a random HMAC secret,
// and the base64 TEK HMAC of the keys under it.
func (f *fixture) tekmac(n int) ([]api.ExposureKey, []byte, string) {
	today := keyserver.IntervalNumber(f.clock.Now())
	today -= today % keyserver.IntervalsPerDay
	keys := make([]api.ExposureKey, n)
	for i := range keys {
		b := make([]byte, 16)
		rand.Read(b)
		keys[i] = api.ExposureKey{Key: base64.StdEncoding.EncodeToString(b), IntervalNumber: today - int32(n-i)*keyserver.IntervalsPerDay, IntervalCount: keyserver.IntervalsPerDay, TransmissionRisk: 1 + i%8}
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	return keys, secret, base64.StdEncoding.EncodeToString(api.TEKMAC(secret, keys, true))
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := verification.ErrorCode(err); err == nil || got != code {
		t.Fatalf("error %v (code %q), want %q", err, got, code)
	}
}
