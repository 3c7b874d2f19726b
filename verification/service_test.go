package verification_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/verification"
)

// decodeJWT returns a JWT's header and claims as raw JSON maps.
func decodeJWT(t *testing.T, tok string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	var out [2]map[string]any
	for i := range 2 {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	if sig, _ := base64.RawURLEncoding.DecodeString(parts[2]); len(sig) != 64 {
		t.Errorf("signature is %d bytes, want 64 (JWS ES256 r‖s)", len(sig))
	}
	return out[0], out[1]
}

// TestFlowCertificatePassesKeyServer runs issue → verify → certificate and
// hands the certificate to the real key server's publish path.
func TestFlowCertificatePassesKeyServer(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	is := f.issue(api.IssueCodeRequest{TestType: "likely", SymptomDate: f.day(3), TestDate: f.day(2)})
	if len(is.Code) != 8 || len(is.LongCode) != 16 || is.LongCodeLink != "https://verify.example/v?c="+is.LongCode ||
		!is.ExpiresAt.Equal(now.Add(15*time.Minute)) || !is.LongExpiresAt.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("issued %+v", is)
	}
	v := f.mustVerify(is.Code)
	if v.TestType != "likely" || v.SymptomDate != f.day(3) || v.TestDate != f.day(2) {
		t.Fatalf("verified %+v", v)
	}

	// The token: ES256, kid, iss = aud = the token issuer (a string), sub, jti, 24 h.
	h, c := decodeJWT(t, v.Token)
	if h["alg"] != "ES256" || h["kid"] != "v1" {
		t.Errorf("token header %v", h)
	}
	if c["iss"] != "candor/wa/token" || c["aud"] != "candor/wa/token" || c["sub"] != "likely."+f.day(3)+"."+f.day(2) ||
		c["jti"] == "" || c["exp"].(float64)-c["iat"].(float64) != 24*3600 {
		t.Errorf("token claims %v", c)
	}

	keys, secret, mac := f.tekmac(14)
	cert, err := f.certificate(v.Token, mac)
	if err != nil {
		t.Fatal(err)
	}
	h, c = decodeJWT(t, cert)
	if h["alg"] != "ES256" || h["kid"] != "v1" || h["typ"] != "JWT" {
		t.Errorf("certificate header %v", h)
	}
	onset := float64(time.Date(now.Year(), now.Month(), now.Day()-3, 0, 0, 0, 0, time.UTC).Unix() / 600)
	if _, isString := c["aud"].(string); !isString || c["aud"] != verification.DefaultCertificateAudience || c["iss"] != "candor/wa" ||
		c["reportType"] != "likely" || c["tekmac"] != mac || c["symptomOnsetInterval"] != onset ||
		c["iat"] != float64(now.Unix()-5) || c["nbf"] != float64(now.Unix()-5) || c["exp"] != float64(now.Add(15*time.Minute).Unix()) {
		t.Errorf("certificate claims %v", c)
	}

	// The key server of this repository accepts it for these keys.
	pub := keyServerTrusting(t, f, f.realm)
	res, err := pub.Publish(f.ctx, &api.Publish{Keys: keys, HealthAuthorityID: f.realm.AppID, VerificationPayload: cert, HMACKey: base64.StdEncoding.EncodeToString(secret)})
	if err != nil {
		t.Fatalf("key server refused the certificate: %v", err)
	}
	if res.Inserted != 14 {
		t.Errorf("inserted %d", res.Inserted)
	}
	// …and refuses it for other keys.
	other, _, _ := f.tekmac(2)
	if _, err := pub.Publish(f.ctx, &api.Publish{Keys: other, HealthAuthorityID: f.realm.AppID, VerificationPayload: cert, HMACKey: base64.StdEncoding.EncodeToString(secret)}); keyserver.ErrorCode(err) != api.CodeCertificateInvalid {
		t.Errorf("other keys: %v", err)
	}

	// The long code works the same way; no symptom date → no onset claim.
	is2 := f.issue(api.IssueCodeRequest{TestType: "confirmed", TestDate: f.day(1)})
	v2 := f.mustVerify(strings.ToUpper(is2.LongCode))
	_, mac2 := func() ([]api.ExposureKey, string) { k, _, m := f.tekmac(1); return k, m }()
	cert2, err := f.certificate(v2.Token, mac2)
	if err != nil {
		t.Fatal(err)
	}
	if _, c := decodeJWT(t, cert2); c["reportType"] != "confirmed" || c["symptomOnsetInterval"] != nil {
		t.Errorf("long-code certificate claims %v", c)
	}
}

// keyServerTrusting returns a key server Publisher over the fixture's store
// that trusts realm r, fed from the realm's JWKS as a key server would be.
func keyServerTrusting(t *testing.T, f *fixture, r *verification.Realm) *keyserver.Publisher {
	t.Helper()
	set, err := f.svc.JWKS(f.ctx, r.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		pubKey, err := k.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		pemText, _ := api.MarshalPublicKeyPEM(pubKey)
		if _, _, err := keyserver.AddAuthority(f.ctx, f.db, keyserver.HealthAuthority{Issuer: r.CertificateIssuer, Audience: r.CertificateAudience},
			&keyserver.AuthorityKey{Version: k.KeyID, PEM: pemText}, f.clock.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := keyserver.AddApp(f.ctx, f.db, r.AppID, r.CertificateIssuer, r.Region); err != nil {
		t.Fatal(err)
	}
	rev, err := keyset.Open(f.ctx, f.db, f.master, "test/revision", keyset.PurposeAEAD, keyset.Options{Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return keyserver.NewPublisher(f.db, f.db, rev, keyserver.PublishOptions{Now: f.clock.Now})
}

// TestConcurrentRedemptionsOneWins: many goroutines redeem one code at once,
// half with the short and half with the long code: exactly one gets a token.
func TestConcurrentRedemptionsOneWins(t *testing.T) {
	f := newFixture(t, func(o *verification.Options) { o.Limiter = verification.NewAttemptLimiter(1000, time.Second, o.Now) })
	for round := range 3 {
		is := f.issue(api.IssueCodeRequest{TestType: "confirmed"})
		const n = 64
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, invalid := 0, 0
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code := is.Code
				if i%2 == 1 {
					code = is.LongCode
				}
				<-start
				_, err := f.verify(code)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case verification.ErrorCode(err) == api.ErrVerifyCodeInvalid:
					invalid++
				default:
					t.Errorf("verify: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins != 1 || invalid != n-1 {
			t.Fatalf("round %d: %d wins, %d code_invalid; want exactly one winner", round, wins, invalid)
		}
	}
}

// TestConcurrentCertificatesOneWins: one token exchanged by many goroutines
// at once yields exactly one certificate.
func TestConcurrentCertificatesOneWins(t *testing.T) {
	f := newFixture(t)
	v := f.mustVerify(f.issue(api.IssueCodeRequest{TestType: "confirmed"}).Code)
	_, _, mac := f.tekmac(3)
	const n = 64
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, used := 0, 0
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := f.certificate(v.Token, mac)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case verification.ErrorCode(err) == api.ErrTokenExpired:
				used++
			default:
				t.Errorf("certificate: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins != 1 || used != n-1 {
		t.Fatalf("%d certificates, %d token_expired; want exactly one", wins, used)
	}
}

// TestCertificateRefusals: every bad token or HMAC is refused with its code
// and leaves the store as it was, so the good token still works after.
func TestCertificateRefusals(t *testing.T) {
	f := newFixture(t)
	v := f.mustVerify(f.issue(api.IssueCodeRequest{TestType: "confirmed", SymptomDate: f.day(1)}).Code)
	_, _, mac := f.tekmac(2)

	// Another realm's token.
	f.addRealm(verification.Realm{Name: "or", Region: "US-OR"})
	orAdmin, orDevice := f.apiKey("or", verification.AdminKey), f.apiKey("or", verification.DeviceKey)
	orIssued, err := f.svc.Issue(f.ctx, f.caller(orAdmin, verification.AdminKey), &api.IssueCodeRequest{TestType: "confirmed"})
	if err != nil {
		t.Fatal(err)
	}
	orToken, err := f.svc.Verify(f.ctx, f.caller(orDevice, verification.DeviceKey), &api.VerifyCodeRequest{VerificationCode: orIssued.Code})
	if err != nil {
		t.Fatal(err)
	}

	// A forgery: the right claims and kid, signed by an attacker's key.
	_, claims := decodeJWT(t, v.Token)
	forger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(claims))
	forged.Header["kid"] = "v1"
	forgedToken, _ := forged.SignedString(forger)
	// alg none and HS256 with the public key's bytes.
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(claims))
	noneToken, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims))
	hs.Header["kid"] = "v1"
	hsToken, _ := hs.SignedString([]byte("guess"))
	parts := strings.Split(v.Token, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(mustB64(t, parts[1]), "confirmed", "negative", 1))) + "." + parts[2]

	tests := []struct {
		name, token, mac, code string
	}{
		{"empty token", "", mac, api.ErrTokenInvalid},
		{"garbage token", "not.a.jwt", mac, api.ErrTokenInvalid},
		{"forged", forgedToken, mac, api.ErrTokenInvalid},
		{"alg none", noneToken, mac, api.ErrTokenInvalid},
		{"HS256", hsToken, mac, api.ErrTokenInvalid},
		{"tampered subject", tampered, mac, api.ErrTokenInvalid},
		{"another realm's token", orToken.Token, mac, api.ErrTokenInvalid},
		{"hmac not base64", v.Token, "%%%", api.ErrHMACInvalid},
		{"hmac URL alphabet", v.Token, strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32))), api.ErrHMACInvalid},
		{"hmac unpadded", v.Token, strings.TrimRight(base64.StdEncoding.EncodeToString(make([]byte, 32)), "="), api.ErrHMACInvalid},
		{"hmac 31 bytes", v.Token, base64.StdEncoding.EncodeToString(make([]byte, 31)), api.ErrHMACInvalid},
		{"hmac 33 bytes", v.Token, base64.StdEncoding.EncodeToString(make([]byte, 33)), api.ErrHMACInvalid},
		{"hmac empty", v.Token, "", api.ErrHMACInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.digest()
			_, err := f.certificate(tc.token, tc.mac)
			wantCode(t, err, tc.code)
			if f.digest() != before {
				t.Error("a refused request changed the store")
			}
		})
	}
	if _, err := f.certificate(v.Token, mac); err != nil {
		t.Fatalf("the good token after the refusals: %v", err)
	}
	before := f.digest()
	_, err = f.certificate(v.Token, mac)
	wantCode(t, err, api.ErrTokenExpired) // reused
	if f.digest() != before {
		t.Error("a reused token changed the store")
	}

	// Expired: a fresh token, 24 h and a second later.
	v2 := f.mustVerify(f.issue(api.IssueCodeRequest{TestType: "confirmed"}).Code)
	f.clock.Add(24*time.Hour + time.Second)
	_, err = f.certificate(v2.Token, mac)
	wantCode(t, err, api.ErrTokenExpired)
}

func mustB64(t *testing.T, s string) string {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestVerifyRefusals covers the verify errors; each leaves the code as it was.
func TestVerifyRefusals(t *testing.T) {
	f := newFixture(t)
	likely := f.issue(api.IssueCodeRequest{TestType: "likely"})

	tests := []struct {
		name   string
		code   string
		accept []string
		want   string
	}{
		{"unknown code", "12345678", nil, api.ErrVerifyCodeInvalid},
		{"empty code", "", nil, api.ErrVerifyCodeInvalid},
		{"huge code", strings.Repeat("1", 1000), nil, api.ErrVerifyCodeInvalid},
		{"unknown accept", likely.Code, []string{"positive"}, api.ErrInvalidTestType},
		{"not accepted", likely.Code, []string{"confirmed"}, api.ErrUnsupportedTestType},
		{"not accepted (user-report)", likely.Code, []string{"user-report"}, api.ErrUnsupportedTestType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.digest()
			_, err := f.verify(tc.code, tc.accept...)
			wantCode(t, err, tc.want)
			if f.digest() != before {
				t.Error("a refused request changed the store")
			}
		})
	}
	// Still redeemable with an accept list that covers it.
	if _, err := f.verify(likely.Code, "likely"); err != nil {
		t.Fatal(err)
	}
	_, err := f.verify(likely.Code)
	wantCode(t, err, api.ErrVerifyCodeInvalid) // used
	_, err = f.verify(likely.LongCode)
	wantCode(t, err, api.ErrVerifyCodeInvalid) // the long code went with it

	// Expiry: the short code after 15 minutes, the long code still works.
	is := f.issue(api.IssueCodeRequest{TestType: "confirmed"})
	f.clock.Add(15 * time.Minute)
	before := f.digest()
	_, err = f.verify(is.Code)
	wantCode(t, err, api.ErrVerifyCodeExpired)
	if f.digest() != before {
		t.Error("an expired redemption changed the store")
	}
	f.mustVerify(is.LongCode)

	// Maintenance.
	if _, err := f.svc.UpdateRealm(f.ctx, "wa", func(r *verification.Realm) error { r.Maintenance = true; return nil }); err != nil {
		t.Fatal(err)
	}
	_, err = f.verify("12345678")
	wantCode(t, err, api.ErrMaintenanceMode)
}

// TestExpiredCodesRemoved: after expiry (plus the grace period) a code's
// hashes are gone — code_invalid instead of code_expired — and after the
// retention its record is gone too; the statistics count it as expired.
func TestExpiredCodesRemoved(t *testing.T) {
	f := newFixture(t)
	is := f.issue(api.IssueCodeRequest{TestType: "confirmed"})
	claimed := f.issue(api.IssueCodeRequest{TestType: "confirmed"})
	v := f.mustVerify(claimed.Code)
	_, _, mac := f.tekmac(1)
	if _, err := f.certificate(v.Token, mac); err != nil {
		t.Fatal(err)
	}
	admin := f.caller(f.adminKey, verification.AdminKey)

	f.clock.Add(24 * time.Hour) // both codes of `is` expired, within the grace
	res, err := f.svc.Cleanup(f.ctx)
	if err != nil || res.CodeHashes != 1 { // the short hash (expired 23h45m ago); the long just now
		t.Fatalf("cleanup at +24h: %+v %v", res, err)
	}
	_, err = f.verify(is.LongCode)
	wantCode(t, err, api.ErrVerifyCodeExpired)
	_, err = f.verify(is.Code)
	wantCode(t, err, api.ErrVerifyCodeInvalid)

	f.clock.Add(verification.DefaultExpiredCodeGrace + time.Second)
	res, err = f.svc.Cleanup(f.ctx)
	if err != nil || res.CodeHashes != 1 || res.Tokens != 1 {
		t.Fatalf("cleanup after the grace: %+v %v", res, err)
	}
	_, err = f.verify(is.LongCode)
	wantCode(t, err, api.ErrVerifyCodeInvalid)
	if st, err := f.svc.CodeStatus(f.ctx, admin, is.UUID); err != nil || st.Claimed || st.Hashed() {
		t.Fatalf("status after hash removal: %+v %v", st, err)
	}

	f.clock.Add(verification.DefaultCodeStatusRetention)
	res, err = f.svc.Cleanup(f.ctx)
	if err != nil || res.CodeRecords != 2 {
		t.Fatalf("cleanup after retention: %+v %v", res, err)
	}
	_, err = f.svc.CodeStatus(f.ctx, admin, is.UUID)
	wantCode(t, err, api.ErrVerifyCodeNotFound)

	st, err := f.svc.Stats(f.ctx, "wa", f.clock.Now().AddDate(0, 0, -5), f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	var total verification.Stats
	for _, d := range st {
		total.Add(d.Stats)
	}
	want := verification.Stats{CodesIssued: 2, CodesClaimed: 1, CodesExpired: 1, InvalidAttempts: 3, CertificatesIssued: 1}
	if total != want {
		t.Errorf("stats %+v, want %+v (per day %+v)", total, want, st)
	}
}

// TestIssueRules covers quota, UUID idempotency, dates and test types.
func TestIssueRules(t *testing.T) {
	f := newFixture(t)
	admin := f.caller(f.adminKey, verification.AdminKey)
	issue := func(req api.IssueCodeRequest) error {
		_, err := f.svc.Issue(f.ctx, admin, &req)
		return err
	}

	// UUID: the client's is kept (in lower case); a repeat is refused.
	const u = "1B4E28BA-2FA1-11D2-883F-0016D3CCA427"
	is := f.issue(api.IssueCodeRequest{TestType: "confirmed", UUID: u})
	if is.UUID != strings.ToLower(u) {
		t.Errorf("uuid %s", is.UUID)
	}
	before := f.digest()
	wantCode(t, issue(api.IssueCodeRequest{TestType: "likely", UUID: strings.ToLower(u)}), api.ErrUUIDAlreadyExists)
	if f.digest() != before {
		t.Error("a refused issue changed the store")
	}

	// Quota: 3 a day (one is issued above).
	if _, err := f.svc.UpdateRealm(f.ctx, "wa", func(r *verification.Realm) error { r.DailyQuota = 3; return nil }); err != nil {
		t.Fatal(err)
	}
	admin = f.caller(f.adminKey, verification.AdminKey)
	for i := range 2 {
		if err := issue(api.IssueCodeRequest{TestType: "confirmed"}); err != nil {
			t.Fatalf("code %d within quota: %v", i+2, err)
		}
	}
	before = f.digest()
	wantCode(t, issue(api.IssueCodeRequest{TestType: "confirmed"}), api.ErrQuotaExceeded)
	if f.digest() != before {
		t.Error("a refused issue changed the store")
	}
	f.clock.Add(24 * time.Hour)
	if err := issue(api.IssueCodeRequest{TestType: "confirmed"}); err != nil {
		t.Fatalf("next UTC day: %v", err)
	}

	// Test types: unknown, and one the realm does not issue.
	wantCode(t, issue(api.IssueCodeRequest{TestType: "positive"}), api.ErrInvalidTestType)
	wantCode(t, issue(api.IssueCodeRequest{TestType: "user-report"}), api.ErrUnsupportedTestType)
	// Dates.
	wantCode(t, issue(api.IssueCodeRequest{TestType: "confirmed", TestDate: f.day(-1)}), api.ErrInvalidDate)
	wantCode(t, issue(api.IssueCodeRequest{TestType: "confirmed", SymptomDate: f.day(29)}), api.ErrInvalidDate)
	wantCode(t, issue(api.IssueCodeRequest{TestType: "confirmed", SymptomDate: "yesterday"}), api.ErrUnparsableRequest)
	wantCode(t, issue(api.IssueCodeRequest{TestType: "confirmed", TZOffset: 900}), api.ErrUnparsableRequest)
	wantCode(t, issue(api.IssueCodeRequest{TestType: "confirmed", UUID: "not-a-uuid"}), api.ErrUnparsableRequest)
	// Required date.
	if _, err := f.svc.UpdateRealm(f.ctx, "wa", func(r *verification.Realm) error { r.RequireDate = true; return nil }); err != nil {
		t.Fatal(err)
	}
	admin = f.caller(f.adminKey, verification.AdminKey)
	wantCode(t, issue(api.IssueCodeRequest{TestType: "confirmed"}), api.ErrMissingDate)
	if err := issue(api.IssueCodeRequest{TestType: "confirmed", TestDate: f.day(0)}); err != nil {
		t.Fatal(err)
	}
}

// TestExpireCode: an admin expires a code; claimed and expired codes refuse.
func TestExpireCode(t *testing.T) {
	f := newFixture(t)
	admin := f.caller(f.adminKey, verification.AdminKey)
	is := f.issue(api.IssueCodeRequest{TestType: "confirmed"})
	code, err := f.svc.ExpireCode(f.ctx, admin, is.UUID)
	if err != nil || !code.ExpiresAt.Equal(f.clock.Now()) || !code.LongExpiresAt.Equal(f.clock.Now()) {
		t.Fatalf("expire: %+v %v", code, err)
	}
	_, err = f.verify(is.Code)
	wantCode(t, err, api.ErrVerifyCodeExpired)
	_, err = f.verify(is.LongCode)
	wantCode(t, err, api.ErrVerifyCodeExpired)
	_, err = f.svc.ExpireCode(f.ctx, admin, is.UUID)
	wantCode(t, err, api.ErrVerifyCodeExpired)

	claimed := f.issue(api.IssueCodeRequest{TestType: "confirmed"})
	f.mustVerify(claimed.LongCode)
	_, err = f.svc.ExpireCode(f.ctx, admin, claimed.UUID)
	wantCode(t, err, api.ErrVerifyCodeInvalid)
	if st, _ := f.svc.CodeStatus(f.ctx, admin, claimed.UUID); !st.Claimed {
		t.Error("status: not claimed")
	}
	_, err = f.svc.ExpireCode(f.ctx, admin, "1b4e28ba-2fa1-11d2-883f-0016d3cca427")
	wantCode(t, err, api.ErrVerifyCodeNotFound)

	// Another realm's admin cannot see or expire the code.
	f.addRealm(verification.Realm{Name: "or", Region: "US-OR"})
	orAdmin := f.caller(f.apiKey("or", verification.AdminKey), verification.AdminKey)
	_, err = f.svc.CodeStatus(f.ctx, orAdmin, claimed.UUID)
	wantCode(t, err, api.ErrVerifyCodeNotFound)
}

// TestRateLimit: failed redemptions per API key are bounded; when the bound
// is reached even the right code is refused; other keys are not affected;
// successful redemptions cost nothing.
func TestRateLimit(t *testing.T) {
	var lim *verification.AttemptLimiter
	f := newFixture(t, func(o *verification.Options) {
		lim = verification.NewAttemptLimiter(5, time.Minute, o.Now)
		o.Limiter = lim
	})
	for range 10 {
		f.mustVerify(f.issue(api.IssueCodeRequest{TestType: "confirmed"}).Code)
	}
	for i := range 5 {
		_, err := f.verify(fmt.Sprintf("%08d", i))
		wantCode(t, err, api.ErrVerifyCodeInvalid)
	}
	good := f.issue(api.IssueCodeRequest{TestType: "confirmed"})
	_, err := f.verify(good.Code)
	wantCode(t, err, api.ErrRateLimited)
	var e *api.Error
	if !asError(err, &e) || e.RetryAfter <= 0 {
		t.Errorf("rate limited without Retry-After: %v", err)
	}
	other := f.apiKey("wa", verification.DeviceKey)
	if _, err := f.svc.Verify(f.ctx, f.caller(other, verification.DeviceKey), &api.VerifyCodeRequest{VerificationCode: good.Code}); err != nil {
		t.Fatalf("another key: %v", err)
	}
	f.clock.Add(time.Minute)
	good = f.issue(api.IssueCodeRequest{TestType: "confirmed"})
	f.mustVerify(good.Code)
}

// TestKeyRotation: rotating the certificate key publishes both keys in the
// JWKS; old certificates still verify; the retired key is destroyed (and
// unpublished) once every certificate it signed has expired. Token keys
// rotate on their own schedule without breaking outstanding tokens.
func TestKeyRotation(t *testing.T) {
	f := newFixture(t, func(o *verification.Options) { o.TokenKeyRotation = time.Hour })
	v := f.mustVerify(f.issue(api.IssueCodeRequest{TestType: "confirmed"}).Code)
	_, _, mac := f.tekmac(1)
	old, err := f.certificate(v.Token, mac)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RotateCertificateKey(f.ctx, "wa"); err != nil {
		t.Fatal(err)
	}
	set, _ := f.svc.JWKS(f.ctx, "wa")
	if len(set.Keys) != 2 || set.Keys[0].KeyID != "v1" || set.Keys[1].KeyID != "v2" {
		t.Fatalf("JWKS after rotation: %+v", set)
	}
	v = f.mustVerify(f.issue(api.IssueCodeRequest{TestType: "confirmed"}).Code)
	fresh, err := f.certificate(v.Token, mac)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := decodeJWT(t, fresh); h["kid"] != "v2" {
		t.Errorf("new certificate kid %v", h["kid"])
	}
	for name, cert := range map[string]string{"old": old, "new": fresh} {
		h, _ := decodeJWT(t, cert)
		var key *ecdsa.PublicKey
		for _, k := range set.Keys {
			if k.KeyID == h["kid"] {
				key, _ = k.PublicKey()
			}
		}
		if _, err := jwt.Parse(cert, func(*jwt.Token) (any, error) { return key, nil }, jwt.WithTimeFunc(f.clock.Now)); err != nil {
			t.Errorf("%s certificate does not verify with the JWKS: %v", name, err)
		}
	}

	// A token issued now survives the token key's rotation an hour later.
	tok := f.mustVerify(f.issue(api.IssueCodeRequest{TestType: "confirmed"}).Code)
	f.clock.Add(time.Hour)
	if changed, err := f.svc.MaintainKeys(f.ctx); err != nil || len(changed) != 0 {
		t.Fatalf("maintain: %v %v", changed, err)
	}
	if _, err := f.certificate(tok.Token, mac); err != nil {
		t.Fatalf("token signed before the token key rotated: %v", err)
	}

	f.clock.Add(verification.MaxCertificateLifetime + time.Hour)
	changed, err := f.svc.MaintainKeys(f.ctx)
	if err != nil || len(changed) != 1 || changed[0] != "wa" {
		t.Fatalf("maintain after retention: %v %v", changed, err)
	}
	set, _ = f.svc.JWKS(f.ctx, "wa")
	if len(set.Keys) != 1 || set.Keys[0].KeyID != "v2" {
		t.Errorf("JWKS after retention: %+v", set)
	}
}

// TestAutomaticCertificateRotation: with CertificateKeyRotation set,
// MaintainKeys rotates and reports the realm.
func TestAutomaticCertificateRotation(t *testing.T) {
	f := newFixture(t, func(o *verification.Options) { o.CertificateKeyRotation = 24 * time.Hour })
	f.clock.Add(24 * time.Hour)
	changed, err := f.svc.MaintainKeys(f.ctx)
	if err != nil || len(changed) != 1 {
		t.Fatalf("maintain: %v %v", changed, err)
	}
	keys, _ := f.svc.CertificateKeys(f.ctx, "wa")
	if len(keys) != 2 || !keys[1].Primary {
		t.Errorf("keys %+v", keys)
	}
}

// TestAuthenticate: missing, unknown, wrong-kind and revoked keys are all
// unauthorized; secrets, codes and phone numbers never reach the store.
func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	for name, tc := range map[string]struct {
		secret string
		kind   verification.APIKeyKind
	}{
		"missing":             {"", verification.DeviceKey},
		"unknown":             {"cd_nope", verification.DeviceKey},
		"wrong kind":          {f.adminKey, verification.DeviceKey},
		"device key as admin": {f.deviceKey, verification.AdminKey},
		"too long":            {strings.Repeat("x", 300), verification.AdminKey},
	} {
		_, err := f.svc.Authenticate(f.ctx, tc.secret, tc.kind)
		if verification.ErrorCode(err) != api.ErrUnauthorized {
			t.Errorf("%s: %v", name, err)
		}
	}
	keys, err := f.svc.APIKeys(f.ctx, "wa")
	if err != nil || len(keys) != 2 {
		t.Fatal(keys, err)
	}
	var deviceID string
	for _, k := range keys {
		if k.Kind == verification.DeviceKey {
			deviceID = k.ID
		}
	}
	if _, err := f.svc.RevokeAPIKey(f.ctx, "wa", deviceID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(f.ctx, f.deviceKey, verification.DeviceKey); verification.ErrorCode(err) != api.ErrUnauthorized {
		t.Errorf("revoked: %v", err)
	}
	if _, err := f.svc.RevokeAPIKey(f.ctx, "or", deviceID); err == nil {
		t.Error("revoking another realm's key id")
	}

	is := f.issue(api.IssueCodeRequest{TestType: "confirmed", Phone: "+12065550123"})
	raw, err := os.ReadFile(f.db.Bolt().Path())
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range map[string]string{"admin key": f.adminKey, "device key": f.deviceKey, "long code": is.LongCode, "short code": `"` + is.Code + `"`, "phone": "2065550123"} {
		if strings.Contains(string(raw), s) {
			t.Errorf("the store holds the %s in clear", what)
		}
	}
}

func asError(err error, target **api.Error) bool {
	e, ok := err.(*api.Error)
	if ok {
		*target = e
	}
	return ok
}
