package client_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/client"
)

// fakeAPI serves canned answers and records what it received.
type fakeAPI struct {
	t        *testing.T
	mux      *http.ServeMux
	srv      *httptest.Server
	lastBody map[string]json.RawMessage
	lastKey  string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, mux: http.NewServeMux()}
	f.srv = httptest.NewServer(f.mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) client(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(f.srv.URL, append([]client.Option{client.WithHTTPClient(f.srv.Client())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// answer makes path decode the request into lastBody and reply status and body.
func (f *fakeAPI) answer(path string, status int, body any) {
	f.mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			f.t.Errorf("%s: Content-Type %q", path, ct)
		}
		f.lastKey = r.Header.Get(api.APIKeyHeader)
		b, _ := io.ReadAll(r.Body)
		f.lastBody = map[string]json.RawMessage{}
		if err := json.Unmarshal(b, &f.lastBody); err != nil {
			f.t.Errorf("%s: body %q: %v", path, b, err)
		}
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "30")
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
	})
}

func (f *fakeAPI) field(name string) string {
	var s string
	json.Unmarshal(f.lastBody[name], &s)
	return s
}

func TestDeviceFlow(t *testing.T) {
	f := newFakeAPI(t)
	f.answer(api.VerifyPath, 200, api.VerifyCodeResponse{TestType: "confirmed", SymptomDate: "2026-05-01", VerificationToken: "tok"})
	c := f.client(t)
	ctx := context.Background()

	v, err := c.Verify(ctx, "device-key", "12345678", []string{"likely"})
	if err != nil {
		t.Fatal(err)
	}
	if v.VerificationToken != "tok" || v.TestType != "confirmed" || v.SymptomDate != "2026-05-01" {
		t.Errorf("verify = %+v", v)
	}
	if f.lastKey != "device-key" || f.field("code") != "12345678" || string(f.lastBody["accept"]) != `["likely"]` {
		t.Errorf("verify sent key %q body %s", f.lastKey, f.lastBody)
	}
	if n := len(f.field("padding")); n < 1024 || n > 2048 {
		t.Errorf("verify padding is %d bytes, want 1–2 KiB", n)
	}

	keys := []api.ExposureKey{
		{Key: "z2Cx9hdz2SlxZ8GEgqTYpA==", IntervalNumber: 1, IntervalCount: 144, TransmissionRisk: 3},
		{Key: "dPCphLzfG4uzXneNimkPRQ==", IntervalNumber: 144, IntervalCount: 144, TransmissionRisk: 5},
	}
	up, err := client.PreparePublish(keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(up.Secret) != client.HMACSecretSize {
		t.Fatalf("secret is %d bytes", len(up.Secret))
	}
	mac, _ := base64.StdEncoding.DecodeString(up.EKeyHMAC)
	if !api.VerifyTEKMAC(up.Secret, mac, keys) {
		t.Fatal("the key server does not accept PreparePublish's HMAC")
	}

	f.answer(api.CertificatePath, 200, api.VerificationCertificateResponse{Certificate: "cert"})
	cert, err := c.Certificate(ctx, "device-key", v.VerificationToken, up.EKeyHMAC)
	if err != nil || cert.Certificate != "cert" {
		t.Fatalf("certificate = %+v, %v", cert, err)
	}
	if f.field("token") != "tok" || f.field("ekeyhmac") != up.EKeyHMAC {
		t.Errorf("certificate sent %s", f.lastBody)
	}

	f.answer(api.PublishPath, 200, api.PublishResponse{RevisionToken: "rev", InsertedExposures: 2})
	req := up.Request("gov.example.app", cert.Certificate, "old-rev")
	resp, err := c.Publish(ctx, req)
	if err != nil || resp.RevisionToken != "rev" || resp.InsertedExposures != 2 {
		t.Fatalf("publish = %+v, %v", resp, err)
	}
	var sent api.Publish
	b, _ := json.Marshal(f.lastBody)
	json.Unmarshal(b, &sent)
	secret, _ := base64.StdEncoding.DecodeString(sent.HMACKey)
	if sent.HealthAuthorityID != "gov.example.app" || sent.VerificationPayload != "cert" || sent.RevisionToken != "old-rev" ||
		!api.VerifyTEKMAC(secret, mac, sent.Keys) || f.lastKey != "" || len(sent.Padding) < 1024 {
		t.Errorf("publish sent %+v (API key %q)", sent, f.lastKey)
	}
	if req.Padding != "" {
		t.Error("Publish modified the caller's request")
	}
}

func TestPublishPartialFailure(t *testing.T) {
	f := newFakeAPI(t)
	f.answer(api.PublishPath, 200, api.PublishResponse{RevisionToken: "rev", InsertedExposures: 1, Code: api.CodePartialFailure, ErrorMessage: "key 1: bad"})
	resp, err := f.client(t).Publish(context.Background(), &api.Publish{})
	if err != nil || resp.Code != api.CodePartialFailure || resp.RevisionToken != "rev" {
		t.Fatalf("publish = %+v, %v", resp, err)
	}
}

// TestAPIErrors: every error code of every API comes back as an *APIError
// with the status, the code, the server's message and an explanation.
func TestAPIErrors(t *testing.T) {
	ctx := context.Background()
	calls := map[string]func(c *client.Client) error{
		api.VerifyPath: func(c *client.Client) error { _, err := c.Verify(ctx, "k", "code", nil); return err },
		api.CertificatePath: func(c *client.Client) error {
			_, err := c.Certificate(ctx, "k", "t", "h")
			return err
		},
		api.IssuePath: func(c *client.Client) error {
			_, err := c.Issue(ctx, "k", &api.IssueCodeRequest{TestType: "confirmed"})
			return err
		},
		api.CheckCodeStatusPath: func(c *client.Client) error { _, err := c.CheckCodeStatus(ctx, "k", "u"); return err },
		api.ExpireCodePath:      func(c *client.Client) error { _, err := c.ExpireCode(ctx, "k", "u"); return err },
	}
	verificationCodes := map[string]int{
		api.ErrUnparsableRequest: 400, api.ErrInternal: 500, api.ErrUnauthorized: 401, api.ErrRateLimited: 429,
		api.ErrVerifyCodeInvalid: 400, api.ErrVerifyCodeExpired: 400, api.ErrVerifyCodeNotFound: 404,
		api.ErrUnsupportedTestType: 412, api.ErrInvalidTestType: 400, api.ErrMissingDate: 400, api.ErrInvalidDate: 400,
		api.ErrUUIDAlreadyExists: 409, api.ErrMaintenanceMode: 429, api.ErrQuotaExceeded: 429,
		api.ErrTokenInvalid: 400, api.ErrTokenExpired: 400, api.ErrHMACInvalid: 400,
	}
	for path, call := range calls {
		for code, status := range verificationCodes {
			f := newFakeAPI(t)
			f.answer(path, status, api.ErrorResponse{Error: "server says " + code, ErrorCode: code})
			err := call(f.client(t))
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("%s %s: %v is not an *APIError", path, code, err)
			}
			if apiErr.Status != status || apiErr.Code != code || apiErr.Message != "server says "+code {
				t.Errorf("%s %s: %+v", path, code, apiErr)
			}
			if client.Explain(code) == "" || !strings.HasPrefix(apiErr.Error(), client.Explain(code)) {
				t.Errorf("%s %s: message %q does not lead with the explanation", path, code, apiErr.Error())
			}
			if status == 429 && apiErr.RetryAfter != 30*time.Second {
				t.Errorf("%s %s: RetryAfter %v", path, code, apiErr.RetryAfter)
			}
		}
	}
	publishCodes := map[string]int{
		api.CodeUnknownHealthAuthorityID: 401, api.CodeUnableToLoadHealthAuthority: 500, api.CodeCertificateInvalid: 401,
		api.CodeBadRequest: 400, api.CodeInternalError: 500, api.CodeMissingRevisionToken: 400,
		api.CodeInvalidRevisionToken: 400, api.CodeKeyAlreadyRevised: 400, api.CodeInvalidReportTypeTransition: 400,
	}
	for code, status := range publishCodes {
		f := newFakeAPI(t)
		f.answer(api.PublishPath, status, api.PublishResponse{ErrorMessage: "server says " + code, Code: code})
		_, err := f.client(t).Publish(ctx, &api.Publish{})
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != status || apiErr.Code != code || apiErr.Message != "server says "+code {
			t.Fatalf("publish %s: %v", code, err)
		}
		if client.Explain(code) == "" || !strings.HasPrefix(apiErr.Error(), client.Explain(code)) {
			t.Errorf("publish %s: message %q does not lead with the explanation", code, apiErr.Error())
		}
	}
	if got, want := len(client.ErrorCodes()), len(verificationCodes)+len(publishCodes)+1; got != want {
		t.Errorf("Explain knows %d codes, the tests %d (+ partial_failure)", got, want)
	}
}

// TestErrorCodesDocumented: every error code constant in package api has
// an explanation (the constants are read from the source, so a new code
// cannot be forgotten).
func TestErrorCodesDocumented(t *testing.T) {
	seen := 0
	for _, file := range []string{"../api/publish.go", "../api/verification.go"} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			name, value, ok := strings.Cut(line, "=")
			name, value = strings.TrimSpace(name), strings.TrimSpace(value)
			if !ok || !(strings.HasPrefix(name, "Err") || strings.HasPrefix(name, "Code")) {
				continue
			}
			code, err := strconv.Unquote(value)
			if err != nil {
				continue
			}
			seen++
			if client.Explain(code) == "" {
				t.Errorf("%s: %s = %q has no explanation in client.Explain", file, name, code)
			}
		}
		f.Close()
	}
	if seen < 20 {
		t.Errorf("found only %d error code constants in package api", seen)
	}
}

func TestErrorWithoutCode(t *testing.T) {
	f := newFakeAPI(t)
	f.mux.HandleFunc("POST "+api.VerifyPath, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream down", http.StatusBadGateway)
	})
	_, err := f.client(t).Verify(context.Background(), "k", "c", nil)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 502 || apiErr.Code != "" || apiErr.Message != "upstream down" {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "try again later") {
		t.Errorf("message %q", err)
	}
	// No server at all: a transport error, not an APIError.
	c, _ := client.New("http://127.0.0.1:1")
	if _, err := c.Verify(context.Background(), "k", "c", nil); err == nil || errors.As(err, &apiErr) {
		t.Errorf("unreachable server: %v", err)
	}
}

func TestBatchIssuePartial(t *testing.T) {
	f := newFakeAPI(t)
	f.answer(api.BatchIssuePath, 409, api.BatchIssueCodeResponse{
		Codes:     []*api.IssueCodeResponse{{UUID: "a", VerificationCode: "1"}, {ErrorCode: api.ErrUUIDAlreadyExists}},
		ErrorCode: api.ErrUUIDAlreadyExists, Error: "failed to issue 1 of 2 codes",
	})
	resp, err := f.client(t).BatchIssue(context.Background(), "admin", []*api.IssueCodeRequest{{TestType: "confirmed"}, {TestType: "confirmed", UUID: "x"}})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != api.ErrUUIDAlreadyExists || resp == nil || len(resp.Codes) != 2 || resp.Codes[0].VerificationCode != "1" {
		t.Fatalf("batch = %+v, %v", resp, err)
	}
	if f.lastKey != "admin" || !strings.Contains(string(f.lastBody["codes"]), `"uuid":"x"`) {
		t.Errorf("batch sent %s with key %q", f.lastBody, f.lastKey)
	}
}

func TestNew(t *testing.T) {
	for _, bad := range []string{"", "localhost:8080", "ftp://x", "http://"} {
		if _, err := client.New(bad); err == nil {
			t.Errorf("New(%q) succeeded", bad)
		}
	}
	c, err := client.New("https://candor.example.org/prefix/")
	if err != nil || c.BaseURL() != "https://candor.example.org/prefix" {
		t.Errorf("New = %v, %v", c, err)
	}
	if _, err := client.New("https://x", client.WithLogKey("not a key")); err == nil {
		t.Error("bad log key accepted")
	}
}

// TestKeyHMACVectors checks KeyHMAC against the shared TEK HMAC vectors.
func TestKeyHMACVectors(t *testing.T) {
	f, err := os.Open("../api/testdata/tekmac.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	rows := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if cols[2] != "4" {
			continue // the client always sends the 4-field form
		}
		secret, _ := base64.StdEncoding.DecodeString(cols[0])
		var keys []api.ExposureKey
		for _, k := range strings.Fields(cols[1]) {
			p := strings.Split(k, ":")
			rsn, _ := strconv.Atoi(p[1])
			rp, _ := strconv.Atoi(p[2])
			tr, _ := strconv.Atoi(p[3])
			keys = append(keys, api.ExposureKey{Key: p[0], IntervalNumber: int32(rsn), IntervalCount: int32(rp), TransmissionRisk: tr})
		}
		if got := base64.StdEncoding.EncodeToString(client.KeyHMAC(secret, keys)); got != cols[4] {
			t.Errorf("row %d: HMAC %s, want %s", rows, got, cols[4])
		}
		rows++
	}
	if rows == 0 {
		t.Fatal("no vectors")
	}
}

func TestChaff(t *testing.T) {
	mux := http.NewServeMux()
	seen := map[string]bool{}
	for _, path := range []string{api.VerifyPath, api.CertificatePath, api.PublishPath} {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(api.ChaffHeader) == "" {
				t.Errorf("%s: no %s header", path, api.ChaffHeader)
			}
			var body map[string]any
			json.NewDecoder(r.Body).Decode(&body)
			if p, _ := body["padding"].(string); len(p) < 1024 {
				t.Errorf("%s: no padding", path)
			}
			seen[path] = true
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"token":"x.y.z","certificate":"a.b.c","revisionToken":"r"}`)
		})
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, _ := client.New(srv.URL)
	if err := c.Chaff(context.Background(), "device", "gov.example.app"); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 {
		t.Errorf("chaff reached %v", seen)
	}
}
