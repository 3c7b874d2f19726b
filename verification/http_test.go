package verification_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/internal/web"
	"github.com/candor-en/candor/verification"
)

// httpFixture serves a fixture's service through the real handler.
type httpFixture struct {
	*fixture
	srv *httptest.Server
	// from, when set, is the client requests go out with (another address).
	from *http.Client
}

// clientFrom is an HTTP client whose connections leave from ip, a loopback
// address: another client address.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func newHTTPFixture(t *testing.T, opts ...fixtureOption) *httpFixture {
	f := newFixture(t, opts...)
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := verification.NewHandler(f.svc, log, reg, verification.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := web.NewEcho(log, web.NewMetrics(reg))
	e.IPExtractor = echo.ExtractIPDirect() // as candor serve without --trusted-proxies
	h.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &httpFixture{fixture: f, srv: srv}
}

type httpResult struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (h *httpFixture) do(method, path, key, contentType string, body []byte, extra ...string) httpResult {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set(api.APIKeyHeader, key)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	cl := http.DefaultClient
	if h.from != nil {
		cl = h.from
	}
	resp, err := cl.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := httpResult{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (h *httpFixture) post(path, key string, body any) httpResult {
	h.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.do(http.MethodPost, path, key, "application/json", b)
}

func jsonBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestHTTPRefusals: every bad request to every endpoint answers its
// documented status and error code, padded and uncached, and changes
// nothing in the store.
func TestHTTPRefusals(t *testing.T) {
	h := newHTTPFixture(t)
	admin, device := h.adminKey, h.deviceKey
	likely := h.issue(api.IssueCodeRequest{TestType: "likely"})
	claimed := h.issue(api.IssueCodeRequest{TestType: "confirmed"})
	tok := h.mustVerify(claimed.Code).Token
	expired := h.issue(api.IssueCodeRequest{TestType: "confirmed"})
	if _, err := h.svc.ExpireCode(h.ctx, h.caller(admin, verification.AdminKey), expired.UUID); err != nil {
		t.Fatal(err)
	}
	_, _, mac := h.tekmac(1)
	revoked, revokedKey, err := h.svc.CreateAPIKey(h.ctx, "wa", verification.DeviceKey, "old app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.RevokeAPIKey(h.ctx, "wa", revokedKey.ID); err != nil {
		t.Fatal(err)
	}

	// Realms for quota, required dates and maintenance.
	h.addRealm(verification.Realm{Name: "quota", Region: "Q", DailyQuota: 1})
	quotaAdmin, quotaDevice := h.apiKey("quota", verification.AdminKey), h.apiKey("quota", verification.DeviceKey)
	if _, err := h.svc.Issue(h.ctx, h.caller(quotaAdmin, verification.AdminKey), &api.IssueCodeRequest{TestType: "confirmed"}); err != nil {
		t.Fatal(err)
	}
	h.addRealm(verification.Realm{Name: "dated", Region: "D", RequireDate: true})
	datedAdmin := h.apiKey("dated", verification.AdminKey)
	h.addRealm(verification.Realm{Name: "down", Region: "M"})
	downAdmin, downDevice := h.apiKey("down", verification.AdminKey), h.apiKey("down", verification.DeviceKey)
	if _, err := h.svc.UpdateRealm(h.ctx, "down", func(r *verification.Realm) error { r.Maintenance = true; return nil }); err != nil {
		t.Fatal(err)
	}

	const ct = "application/json"
	big := []byte(`{"code":"` + strings.Repeat("1", web.MaxBodyBytes) + `"}`)
	issue := func(r api.IssueCodeRequest) []byte { return jsonBody(r) }
	day := h.day
	tests := []struct {
		name        string
		method      string
		path        string
		key         string
		contentType string
		body        []byte
		status      int
		code        string
	}{
		// Authentication (every /api route).
		{"verify without key", "POST", api.VerifyPath, "", ct, jsonBody(api.VerifyCodeRequest{VerificationCode: likely.Code}), 401, api.ErrUnauthorized},
		{"verify with admin key", "POST", api.VerifyPath, admin, ct, jsonBody(api.VerifyCodeRequest{VerificationCode: likely.Code}), 401, api.ErrUnauthorized},
		{"verify with revoked key", "POST", api.VerifyPath, revoked, ct, jsonBody(api.VerifyCodeRequest{VerificationCode: likely.Code}), 401, api.ErrUnauthorized},
		{"verify with unknown key", "POST", api.VerifyPath, "cd_x", ct, jsonBody(api.VerifyCodeRequest{VerificationCode: likely.Code}), 401, api.ErrUnauthorized},
		{"certificate with admin key", "POST", api.CertificatePath, admin, ct, jsonBody(api.VerificationCertificateRequest{VerificationToken: tok, ExposureKeyHMAC: mac}), 401, api.ErrUnauthorized},
		{"issue with device key", "POST", api.IssuePath, device, ct, issue(api.IssueCodeRequest{TestType: "confirmed"}), 401, api.ErrUnauthorized},
		{"issue without key", "POST", api.IssuePath, "", ct, issue(api.IssueCodeRequest{TestType: "confirmed"}), 401, api.ErrUnauthorized},
		{"batch with device key", "POST", api.BatchIssuePath, device, ct, jsonBody(api.BatchIssueCodeRequest{Codes: []*api.IssueCodeRequest{{TestType: "confirmed"}}}), 401, api.ErrUnauthorized},
		{"status with device key", "POST", api.CheckCodeStatusPath, device, ct, jsonBody(api.CheckCodeStatusRequest{UUID: likely.UUID}), 401, api.ErrUnauthorized},
		{"expire with device key", "POST", api.ExpireCodePath, device, ct, jsonBody(api.ExpireCodeRequest{UUID: likely.UUID}), 401, api.ErrUnauthorized},
		{"expire with revoked key", "POST", api.ExpireCodePath, revoked, ct, jsonBody(api.ExpireCodeRequest{UUID: likely.UUID}), 401, api.ErrUnauthorized},

		// Decoding.
		{"verify text/plain", "POST", api.VerifyPath, device, "text/plain", jsonBody(api.VerifyCodeRequest{VerificationCode: likely.Code}), 400, api.ErrUnparsableRequest},
		{"verify no content type", "POST", api.VerifyPath, device, "", jsonBody(api.VerifyCodeRequest{VerificationCode: likely.Code}), 400, api.ErrUnparsableRequest},
		{"verify application/jsonx", "POST", api.VerifyPath, device, "application/jsonx", jsonBody(api.VerifyCodeRequest{VerificationCode: likely.Code}), 400, api.ErrUnparsableRequest},
		{"verify JSON in another charset", "POST", api.VerifyPath, device, "application/json; charset=utf-16", jsonBody(api.VerifyCodeRequest{VerificationCode: likely.Code}), 400, api.ErrUnparsableRequest},
		{"certificate application/jsonp", "POST", api.CertificatePath, device, "application/jsonp", jsonBody(api.VerificationCertificateRequest{VerificationToken: tok, ExposureKeyHMAC: mac}), 400, api.ErrUnparsableRequest},
		{"issue application/json-patch+json", "POST", api.IssuePath, admin, "application/json-patch+json", issue(api.IssueCodeRequest{TestType: "confirmed"}), 400, api.ErrUnparsableRequest},
		{"verify malformed", "POST", api.VerifyPath, device, ct, []byte(`{"code":`), 400, api.ErrUnparsableRequest},
		{"verify empty body", "POST", api.VerifyPath, device, ct, nil, 400, api.ErrUnparsableRequest},
		{"verify unknown field", "POST", api.VerifyPath, device, ct, []byte(`{"code":"` + likely.Code + `","extra":1}`), 400, api.ErrUnparsableRequest},
		{"verify two objects", "POST", api.VerifyPath, device, ct, []byte(`{"code":"1"}{"code":"2"}`), 400, api.ErrUnparsableRequest},
		{"verify code as number", "POST", api.VerifyPath, device, ct, []byte(`{"code":12345678}`), 400, api.ErrUnparsableRequest},
		{"verify array", "POST", api.VerifyPath, device, ct, []byte(`[]`), 400, api.ErrUnparsableRequest},
		{"verify too large", "POST", api.VerifyPath, device, ct, big, 413, api.ErrUnparsableRequest},
		{"certificate unknown field", "POST", api.CertificatePath, device, ct, []byte(`{"token":"x","hmac":"y"}`), 400, api.ErrUnparsableRequest},
		{"issue malformed", "POST", api.IssuePath, admin, ct, []byte(`{"testType":"confirmed"`), 400, api.ErrUnparsableRequest},
		{"issue tzOffset as string", "POST", api.IssuePath, admin, ct, []byte(`{"testType":"confirmed","tzOffset":"60"}`), 400, api.ErrUnparsableRequest},
		{"batch unknown field", "POST", api.BatchIssuePath, admin, ct, []byte(`{"codes":[],"x":1}`), 400, api.ErrUnparsableRequest},
		{"status unknown field", "POST", api.CheckCodeStatusPath, admin, ct, []byte(`{"uuid":"x","code":"1"}`), 400, api.ErrUnparsableRequest},

		// Verify.
		{"unknown code", "POST", api.VerifyPath, device, ct, jsonBody(api.VerifyCodeRequest{VerificationCode: "00000000"}), 400, api.ErrVerifyCodeInvalid},
		{"used code", "POST", api.VerifyPath, device, ct, jsonBody(api.VerifyCodeRequest{VerificationCode: claimed.Code}), 400, api.ErrVerifyCodeInvalid},
		{"used long code", "POST", api.VerifyPath, device, ct, jsonBody(api.VerifyCodeRequest{VerificationCode: claimed.LongCode}), 400, api.ErrVerifyCodeInvalid},
		{"expired code", "POST", api.VerifyPath, device, ct, jsonBody(api.VerifyCodeRequest{VerificationCode: expired.Code}), 400, api.ErrVerifyCodeExpired},
		{"expired long code", "POST", api.VerifyPath, device, ct, jsonBody(api.VerifyCodeRequest{VerificationCode: expired.LongCode}), 400, api.ErrVerifyCodeExpired},
		{"wrong-type code", "POST", api.VerifyPath, device, ct, jsonBody(api.VerifyCodeRequest{VerificationCode: likely.Code, AcceptTestTypes: []string{"confirmed"}}), 412, api.ErrUnsupportedTestType},
		{"unknown accept type", "POST", api.VerifyPath, device, ct, jsonBody(api.VerifyCodeRequest{VerificationCode: likely.Code, AcceptTestTypes: []string{"covid"}}), 400, api.ErrInvalidTestType},
		{"verify in maintenance", "POST", api.VerifyPath, downDevice, ct, jsonBody(api.VerifyCodeRequest{VerificationCode: "00000000"}), 429, api.ErrMaintenanceMode},

		// Certificate.
		{"forged token", "POST", api.CertificatePath, device, ct, jsonBody(api.VerificationCertificateRequest{VerificationToken: tok[:len(tok)-4] + "AAAA", ExposureKeyHMAC: mac}), 400, api.ErrTokenInvalid},
		{"garbage token", "POST", api.CertificatePath, device, ct, jsonBody(api.VerificationCertificateRequest{VerificationToken: "x", ExposureKeyHMAC: mac}), 400, api.ErrTokenInvalid},
		{"token of another realm", "POST", api.CertificatePath, quotaDevice, ct, jsonBody(api.VerificationCertificateRequest{VerificationToken: tok, ExposureKeyHMAC: mac}), 400, api.ErrTokenInvalid},
		{"certificate in maintenance", "POST", api.CertificatePath, downDevice, ct, jsonBody(api.VerificationCertificateRequest{VerificationToken: tok, ExposureKeyHMAC: mac}), 429, api.ErrMaintenanceMode},
		{"hmac not base64", "POST", api.CertificatePath, device, ct, jsonBody(api.VerificationCertificateRequest{VerificationToken: tok, ExposureKeyHMAC: "!!"}), 400, api.ErrHMACInvalid},
		{"hmac 16 bytes", "POST", api.CertificatePath, device, ct, jsonBody(api.VerificationCertificateRequest{VerificationToken: tok, ExposureKeyHMAC: base64.StdEncoding.EncodeToString(make([]byte, 16))}), 400, api.ErrHMACInvalid},

		// Issue.
		{"invalid test type", "POST", api.IssuePath, admin, ct, issue(api.IssueCodeRequest{TestType: "positive"}), 400, api.ErrInvalidTestType},
		{"empty test type", "POST", api.IssuePath, admin, ct, issue(api.IssueCodeRequest{}), 400, api.ErrInvalidTestType},
		{"test type the realm does not issue", "POST", api.IssuePath, admin, ct, issue(api.IssueCodeRequest{TestType: "user-report"}), 412, api.ErrUnsupportedTestType},
		{"future date", "POST", api.IssuePath, admin, ct, issue(api.IssueCodeRequest{TestType: "confirmed", TestDate: day(-1)}), 400, api.ErrInvalidDate},
		{"future date even at UTC+14", "POST", api.IssuePath, admin, ct, issue(api.IssueCodeRequest{TestType: "confirmed", TestDate: day(-2), TZOffset: 840}), 400, api.ErrInvalidDate},
		{"too old even at UTC-12", "POST", api.IssuePath, admin, ct, issue(api.IssueCodeRequest{TestType: "confirmed", TestDate: day(29), TZOffset: -720}), 400, api.ErrInvalidDate},
		{"too old", "POST", api.IssuePath, admin, ct, issue(api.IssueCodeRequest{TestType: "confirmed", SymptomDate: day(29)}), 400, api.ErrInvalidDate},
		{"malformed date", "POST", api.IssuePath, admin, ct, issue(api.IssueCodeRequest{TestType: "confirmed", SymptomDate: "20/11/2026"}), 400, api.ErrUnparsableRequest},
		{"tzOffset out of range", "POST", api.IssuePath, admin, ct, issue(api.IssueCodeRequest{TestType: "confirmed", TZOffset: -1000}), 400, api.ErrUnparsableRequest},
		{"bad uuid", "POST", api.IssuePath, admin, ct, issue(api.IssueCodeRequest{TestType: "confirmed", UUID: "abc"}), 400, api.ErrUnparsableRequest},
		{"uuid exists", "POST", api.IssuePath, admin, ct, issue(api.IssueCodeRequest{TestType: "confirmed", UUID: likely.UUID}), 409, api.ErrUUIDAlreadyExists},
		{"missing date", "POST", api.IssuePath, datedAdmin, ct, issue(api.IssueCodeRequest{TestType: "confirmed"}), 400, api.ErrMissingDate},
		{"quota exhausted", "POST", api.IssuePath, quotaAdmin, ct, issue(api.IssueCodeRequest{TestType: "confirmed"}), 429, api.ErrQuotaExceeded},
		{"issue in maintenance", "POST", api.IssuePath, downAdmin, ct, issue(api.IssueCodeRequest{TestType: "confirmed"}), 429, api.ErrMaintenanceMode},

		// Batch issue.
		{"batch of 11", "POST", api.BatchIssuePath, admin, ct, jsonBody(api.BatchIssueCodeRequest{Codes: make([]*api.IssueCodeRequest, 11)}), 400, api.ErrUnparsableRequest},
		{"empty batch", "POST", api.BatchIssuePath, admin, ct, jsonBody(api.BatchIssueCodeRequest{}), 400, api.ErrUnparsableRequest},
		{"batch all bad", "POST", api.BatchIssuePath, admin, ct, jsonBody(api.BatchIssueCodeRequest{Codes: []*api.IssueCodeRequest{{TestType: "x"}, {TestType: "confirmed", UUID: likely.UUID}}}), 400, api.ErrInvalidTestType},
		{"batch over quota", "POST", api.BatchIssuePath, quotaAdmin, ct, jsonBody(api.BatchIssueCodeRequest{Codes: []*api.IssueCodeRequest{{TestType: "confirmed"}}}), 429, api.ErrQuotaExceeded},

		// Code status and expiry.
		{"status unknown uuid", "POST", api.CheckCodeStatusPath, admin, ct, jsonBody(api.CheckCodeStatusRequest{UUID: "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}), 404, api.ErrVerifyCodeNotFound},
		{"status malformed uuid", "POST", api.CheckCodeStatusPath, admin, ct, jsonBody(api.CheckCodeStatusRequest{UUID: "nope"}), 404, api.ErrVerifyCodeNotFound},
		{"status without uuid", "POST", api.CheckCodeStatusPath, admin, ct, jsonBody(api.CheckCodeStatusRequest{}), 400, api.ErrUnparsableRequest},
		{"status of another realm's code", "POST", api.CheckCodeStatusPath, quotaAdmin, ct, jsonBody(api.CheckCodeStatusRequest{UUID: likely.UUID}), 404, api.ErrVerifyCodeNotFound},
		{"expire unknown", "POST", api.ExpireCodePath, admin, ct, jsonBody(api.ExpireCodeRequest{UUID: "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}), 404, api.ErrVerifyCodeNotFound},
		{"expire claimed", "POST", api.ExpireCodePath, admin, ct, jsonBody(api.ExpireCodeRequest{UUID: claimed.UUID}), 400, api.ErrVerifyCodeInvalid},
		{"expire expired", "POST", api.ExpireCodePath, admin, ct, jsonBody(api.ExpireCodeRequest{UUID: expired.UUID}), 400, api.ErrVerifyCodeExpired},
		{"expire another realm's code", "POST", api.ExpireCodePath, quotaAdmin, ct, jsonBody(api.ExpireCodeRequest{UUID: likely.UUID}), 404, api.ErrVerifyCodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.digest()
			r := h.do(tc.method, tc.path, tc.key, tc.contentType, tc.body)
			if r.status != tc.status || r.body["errorCode"] != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
			if msg, _ := r.body["error"].(string); msg == "" {
				t.Error("no error message")
			}
			if n := len(r.raw); n < web.PaddedSizeMin || n > web.PaddedSizeMax {
				t.Errorf("answer of %d bytes, want it padded to [%d, %d]", n, web.PaddedSizeMin, web.PaddedSizeMax)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
			}
			if h.digest() != before {
				t.Error("the refused request changed the store")
			}
		})
	}
	// After all that, the codes involved still work as before (and the media
	// type is case-insensitive and may carry a UTF-8 charset).
	if r := h.do("POST", api.VerifyPath, device, "Application/JSON; charset=UTF-8", jsonBody(api.VerifyCodeRequest{VerificationCode: likely.Code})); r.status != 200 {
		t.Errorf("the likely code after the refusals: %d %s", r.status, r.raw)
	}
	if r := h.post(api.CertificatePath, device, api.VerificationCertificateRequest{VerificationToken: tok, ExposureKeyHMAC: mac}); r.status != 200 {
		t.Errorf("the token after the refusals: %d %s", r.status, r.raw)
	}
}

// TestHTTPFlow: the whole admin and device API over HTTP.
func TestHTTPFlow(t *testing.T) {
	h := newHTTPFixture(t)
	r := h.post(api.IssuePath, h.adminKey, api.IssueCodeRequest{TestType: "confirmed", SymptomDate: h.day(2), TZOffset: 60, Phone: "+1 206 555 0123", ExternalIssuerID: "x"})
	var issued api.IssueCodeResponse
	json.Unmarshal(r.raw, &issued)
	if r.status != 200 || issued.UUID == "" || len(issued.VerificationCode) != 8 || issued.LongCodeLink != "https://verify.example/v?c="+issued.LongCode ||
		issued.ExpiresAtTimestamp != h.clock.Now().Add(15*time.Minute).Unix() || issued.ExpiresAt != h.clock.Now().Add(15*time.Minute).Format(time.RFC1123) ||
		issued.LongExpiresAtTimestamp != h.clock.Now().Add(24*time.Hour).Unix() || len(issued.Padding) < 1024 {
		t.Fatalf("issue: %d %s", r.status, r.raw)
	}
	r = h.post(api.CheckCodeStatusPath, h.adminKey, api.CheckCodeStatusRequest{UUID: issued.UUID})
	if r.status != 200 || r.body["claimed"] != false || r.body["expiresAtTimestamp"] != float64(issued.ExpiresAtTimestamp) {
		t.Fatalf("status: %d %s", r.status, r.raw)
	}
	r = h.post(api.VerifyPath, h.deviceKey, api.VerifyCodeRequest{VerificationCode: issued.VerificationCode, AcceptTestTypes: []string{"likely"}, Nonce: "ignored"})
	if r.status != 200 || r.body["testtype"] != "confirmed" || r.body["symptomDate"] != h.day(2) || r.body["token"] == nil {
		t.Fatalf("verify: %d %s", r.status, r.raw)
	}
	_, _, mac := h.tekmac(5)
	r = h.post(api.CertificatePath, h.deviceKey, api.VerificationCertificateRequest{VerificationToken: r.body["token"].(string), ExposureKeyHMAC: mac})
	if r.status != 200 || r.body["certificate"] == nil {
		t.Fatalf("certificate: %d %s", r.status, r.raw)
	}
	r = h.post(api.CheckCodeStatusPath, h.adminKey, api.CheckCodeStatusRequest{UUID: issued.UUID})
	if r.status != 200 || r.body["claimed"] != true {
		t.Fatalf("status after claim: %d %s", r.status, r.raw)
	}

	// At 15:37 UTC an issuer at UTC+14 is already in tomorrow (UTC): that
	// date is their today and valid.
	if r := h.post(api.IssuePath, h.adminKey, api.IssueCodeRequest{TestType: "confirmed", TestDate: h.day(-1), TZOffset: 840}); r.status != 200 {
		t.Fatalf("issuer's today at UTC+14: %d %s", r.status, r.raw)
	}

	// Expire an unclaimed code.
	other := h.issue(api.IssueCodeRequest{TestType: "negative"})
	r = h.post(api.ExpireCodePath, h.adminKey, api.ExpireCodeRequest{UUID: other.UUID})
	if r.status != 200 || r.body["expiresAtTimestamp"] != float64(h.clock.Now().Unix()) {
		t.Fatalf("expire: %d %s", r.status, r.raw)
	}

	// Batch: one good, one bad → the first failure's status and code, the good one issued.
	r = h.post(api.BatchIssuePath, h.adminKey, api.BatchIssueCodeRequest{Codes: []*api.IssueCodeRequest{{TestType: "likely"}, {TestType: "bogus"}, {TestType: "confirmed", TestDate: h.day(-3)}}})
	var batch api.BatchIssueCodeResponse
	json.Unmarshal(r.raw, &batch)
	if r.status != 400 || batch.ErrorCode != api.ErrInvalidTestType || len(batch.Codes) != 3 || batch.Codes[0].VerificationCode == "" ||
		batch.Codes[1].ErrorCode != api.ErrInvalidTestType || batch.Codes[2].ErrorCode != api.ErrInvalidDate {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	r = h.post(api.BatchIssuePath, h.adminKey, api.BatchIssueCodeRequest{Codes: []*api.IssueCodeRequest{{TestType: "likely"}, {TestType: "confirmed"}}})
	if r.status != 200 || len(r.body["codes"].([]any)) != 2 {
		t.Fatalf("batch ok: %d %s", r.status, r.raw)
	}

	// JWKS.
	r = h.do("GET", "/jwks/wa", "", "", nil)
	keys, _ := r.body["keys"].([]any)
	if r.status != 200 || len(keys) != 1 || keys[0].(map[string]any)["kid"] != "v1" || keys[0].(map[string]any)["crv"] != "P-256" {
		t.Fatalf("jwks: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", "/jwks/nope", "", "", nil); r.status != 404 {
		t.Errorf("jwks of an unknown realm: %d", r.status)
	}
	// Non-POST on the API.
	if r := h.do("GET", api.VerifyPath, h.deviceKey, "", nil); r.status != 405 {
		t.Errorf("GET /api/verify: %d", r.status)
	}
}

// TestHTTPChaff: decoys answer like successes, change nothing, and need no key.
func TestHTTPChaff(t *testing.T) {
	h := newHTTPFixture(t)
	is := h.issue(api.IssueCodeRequest{TestType: "confirmed"})
	before := h.digest()
	for _, path := range []string{api.VerifyPath, api.CertificatePath} {
		for _, key := range []string{h.deviceKey, ""} {
			r := h.do("POST", path, key, "application/json", jsonBody(api.VerifyCodeRequest{VerificationCode: is.Code}), api.ChaffHeader, "1")
			if r.status != 200 || r.body["errorCode"] != nil || len(r.body["padding"].(string)) < 1024 || r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("chaff %s: %d %s", path, r.status, r.raw)
			}
			field := "token"
			if path == api.CertificatePath {
				field = "certificate"
			}
			if s, _ := r.body[field].(string); strings.Count(s, ".") != 2 || len(s) < 200 {
				t.Errorf("chaff %s: %s is %q", path, field, s)
			}
		}
	}
	if h.digest() != before {
		t.Error("chaff changed the store")
	}
	h.mustVerify(is.Code) // the code was not touched
}

// TestHTTPLongCodeLink: /v redirects phones to the app and shows others a page.
func TestHTTPLongCodeLink(t *testing.T) {
	h := newHTTPFixture(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(q, ua string) *http.Response {
		req, _ := http.NewRequest("GET", h.srv.URL+"/v"+q, nil)
		req.Header.Set("User-Agent", ua)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	const code = "abcdefgh12345678"
	for _, ua := range []string{"Mozilla/5.0 (Linux; Android 14)", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"} {
		resp := get("?c="+strings.ToUpper(code), ua)
		if resp.StatusCode != 303 || resp.Header.Get("Location") != "ens://v?c="+code || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %s", ua, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp := get("?c="+code, "Mozilla/5.0 (X11; Linux x86_64)"); resp.StatusCode != 200 {
		t.Errorf("desktop: %d", resp.StatusCode)
	}
	for _, q := range []string{"", "?c=short", "?c=" + code + "%22%3E", "?c=" + strings.Repeat("a", 65)} {
		if resp := get(q, "Android"); resp.StatusCode != 400 {
			t.Errorf("/v%s: %d", q, resp.StatusCode)
		}
	}
}

// TestHTTPFailureBudgetPerClient: the device API key is public, so its
// holder burns only its own address's budget of failed redemptions: a phone
// on another address still redeems its code; and all addresses together are
// bounded by the API key's ceiling.
func TestHTTPFailureBudgetPerClient(t *testing.T) {
	h := newHTTPFixture(t, func(o *verification.Options) {
		o.Limiter = verification.NewAttemptLimiter(3, time.Hour, o.Now)
		o.KeyLimiter = verification.NewAttemptLimiter(7, time.Hour, o.Now)
	})
	wrong := api.VerifyCodeRequest{VerificationCode: "00000000"}
	for _, tc := range []struct {
		name string
		from string
		code func() string
		want int
	}{
		{"attacker's 1st guess", "127.0.0.2", nil, 400},
		{"attacker's 2nd guess", "127.0.0.2", nil, 400},
		{"attacker's 3rd guess", "127.0.0.2", nil, 400},
		{"attacker's budget spent", "127.0.0.2", nil, 429},
		{"attacker with a valid code", "127.0.0.2", func() string { return h.issue(api.IssueCodeRequest{TestType: "confirmed"}).Code }, 429},
		{"phone on another address", "127.0.0.3", func() string { return h.issue(api.IssueCodeRequest{TestType: "confirmed"}).Code }, 200},
		{"2nd address, 1st guess", "127.0.0.4", nil, 400},
		{"2nd address, 2nd guess", "127.0.0.4", nil, 400},
		{"2nd address, 3rd guess", "127.0.0.4", nil, 400},
		{"3rd address, 1st guess: the ceiling's 7th", "127.0.0.5", nil, 400},
		{"3rd address, 2nd guess: over the ceiling", "127.0.0.5", nil, 429},
		{"a phone on a fresh address, over the ceiling", "127.0.0.6", func() string { return h.issue(api.IssueCodeRequest{TestType: "confirmed"}).Code }, 429},
	} {
		h.from = clientFrom(tc.from)
		req := wrong
		if tc.code != nil {
			req.VerificationCode = tc.code()
		}
		if r := h.post(api.VerifyPath, h.deviceKey, req); r.status != tc.want {
			t.Fatalf("%s: %d %s, want %d", tc.name, r.status, r.raw, tc.want)
		}
	}
}

// TestHTTPRateLimited: the 429 carries Retry-After.
func TestHTTPRateLimited(t *testing.T) {
	h := newHTTPFixture(t, func(o *verification.Options) { o.Limiter = verification.NewAttemptLimiter(2, time.Minute, o.Now) })
	for range 2 {
		h.post(api.VerifyPath, h.deviceKey, api.VerifyCodeRequest{VerificationCode: "00000000"})
	}
	r := h.post(api.VerifyPath, h.deviceKey, api.VerifyCodeRequest{VerificationCode: "00000000"})
	if r.status != 429 || r.body["errorCode"] != api.ErrRateLimited || r.header.Get("Retry-After") == "" {
		t.Fatalf("%d %v %s", r.status, r.header, r.raw)
	}
}
