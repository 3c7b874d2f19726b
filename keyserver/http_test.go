package keyserver_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/internal/web"
	"github.com/candor-en/candor/keyserver"
)

func newTestServer(t testing.TB, f *fixture) http.Handler {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := web.NewEcho(log, web.NewMetrics(prometheus.NewRegistry()))
	keyserver.NewHandler(f.pub, log, prometheus.NewRegistry()).Register(e)
	return e
}

func post(h http.Handler, contentType string, body []byte, header map[string]string) (*httptest.ResponseRecorder, api.PublishResponse) {
	req := httptest.NewRequest(http.MethodPost, api.PublishPath, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var resp api.PublishResponse
	json.Unmarshal(rec.Body.Bytes(), &resp)
	return rec, resp
}

func TestPublishHTTPBadBodies(t *testing.T) {
	f := newFixture(t)
	h := newTestServer(t, f)
	valid, _ := json.Marshal(f.request(f.dailyKeys(2), certOpts{}))
	tests := []struct {
		name        string
		contentType string
		body        []byte
		status      int
	}{
		{"wrong content type", "text/plain", valid, http.StatusUnsupportedMediaType},
		{"no content type", "", valid, http.StatusUnsupportedMediaType},
		{"a type that only starts like JSON", "application/jsonx", valid, http.StatusUnsupportedMediaType},
		{"a JSON suffix type", "application/json-patch+json", valid, http.StatusUnsupportedMediaType},
		{"JSON in another charset", "application/json; charset=iso-8859-1", valid, http.StatusUnsupportedMediaType},
		{"malformed media type", "application/json; charset", valid, http.StatusUnsupportedMediaType},
		{"empty body", "application/json", nil, http.StatusBadRequest},
		{"70 KB body", "application/json", append(append([]byte(`{"padding":"`), bytes.Repeat([]byte("a"), 70_000)...), `"}`...), http.StatusRequestEntityTooLarge},
		{"unknown field", "application/json", []byte(`{"temporaryExposureKeys":[],"surprise":1}`), http.StatusBadRequest},
		{"two JSON objects", "application/json", append(append([]byte{}, valid...), valid...), http.StatusBadRequest},
		{"wrong JSON type", "application/json", []byte(`{"temporaryExposureKeys":"abc"}`), http.StatusBadRequest},
		{"wrong key field type", "application/json", []byte(`{"temporaryExposureKeys":[{"key":1}]}`), http.StatusBadRequest},
		{"array instead of object", "application/json", []byte(`[]`), http.StatusBadRequest},
		{"truncated JSON", "application/json", valid[:len(valid)/2], http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, resp := post(h, tt.contentType, tt.body, nil)
			if rec.Code != tt.status || resp.Code != api.CodeBadRequest || resp.ErrorMessage == "" {
				t.Fatalf("status %d code %q error %q, want %d bad_request", rec.Code, resp.Code, resp.ErrorMessage, tt.status)
			}
			if len(resp.Padding) < 1024 {
				t.Errorf("error response has %d bytes of padding, want ≥ 1024", len(resp.Padding))
			}
			if f.count() != 0 {
				t.Errorf("store changed")
			}
		})
	}
	// Field names match case-insensitively, and a valid body succeeds.
	lower := bytes.ReplaceAll(valid, []byte("temporaryExposureKeys"), []byte("TemporaryExposureKeys"))
	rec, resp := post(h, "application/json; charset=utf-8", lower, nil)
	if rec.Code != http.StatusOK || resp.InsertedExposures != 2 {
		t.Fatalf("valid publish: %d %+v", rec.Code, resp)
	}
	// The media type is case-insensitive and may carry parameters.
	for _, ct := range []string{"application/json", "Application/JSON;charset=UTF-8", "application/json; profile=x"} {
		rec, resp := post(h, ct, mustJSON(f.request(f.dailyKeys(2), certOpts{})), nil)
		if rec.Code != http.StatusOK || resp.InsertedExposures != 2 {
			t.Errorf("Content-Type %q: %d %+v", ct, rec.Code, resp)
		}
	}
}

func TestPublishHTTPStatuses(t *testing.T) {
	f := newFixture(t)
	h := newTestServer(t, f)
	tests := []struct {
		name   string
		mutate func(*api.Publish)
		status int
		code   string
	}{
		{"unknown app", func(r *api.Publish) { r.HealthAuthorityID = "x" }, http.StatusUnauthorized, api.CodeUnknownHealthAuthorityID},
		{"bad certificate", func(r *api.Publish) { r.VerificationPayload += "x" }, http.StatusUnauthorized, api.CodeCertificateInvalid},
		{"missing revision token", nil, http.StatusBadRequest, api.CodeMissingRevisionToken},
	}
	keys := f.dailyKeys(2)
	if rec, _ := post(h, "application/json", mustJSON(f.request(keys, certOpts{})), nil); rec.Code != 200 {
		t.Fatal("first publish failed")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := f.request(keys, certOpts{})
			if tt.mutate != nil {
				tt.mutate(req)
			}
			rec, resp := post(h, "application/json", mustJSON(req), nil)
			if rec.Code != tt.status || resp.Code != tt.code {
				t.Fatalf("status %d code %q, want %d %q", rec.Code, resp.Code, tt.status, tt.code)
			}
		})
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// A decoy request must look like a real success: same status, same header
// names, a body of similar size, and nothing stored.
func TestPublishHTTPChaff(t *testing.T) {
	f := newFixture(t)
	h := newTestServer(t, f)
	real, realResp := post(h, "application/json", mustJSON(f.request(f.dailyKeys(14), certOpts{})), nil)
	if real.Code != http.StatusOK {
		t.Fatalf("real publish: %d", real.Code)
	}
	before := f.count()
	chaff, chaffResp := post(h, "application/json", mustJSON(f.request(f.dailyKeys(14), certOpts{})), map[string]string{api.ChaffHeader: "1"})
	if chaff.Code != real.Code {
		t.Errorf("chaff status %d, real %d", chaff.Code, real.Code)
	}
	if got, want := headerNames(chaff.Header()), headerNames(real.Header()); got != want {
		t.Errorf("chaff headers %q, real %q", got, want)
	}
	if len(chaffResp.RevisionToken) != len(realResp.RevisionToken) {
		t.Errorf("chaff token %d bytes, real %d", len(chaffResp.RevisionToken), len(realResp.RevisionToken))
	}
	if d := chaff.Body.Len() - real.Body.Len(); d > 1100 || d < -1100 {
		t.Errorf("chaff body %d bytes, real %d: outside the padding range", chaff.Body.Len(), real.Body.Len())
	}
	if f.count() != before {
		t.Errorf("chaff stored keys")
	}
}

func headerNames(h http.Header) string {
	var names []string
	for k := range h {
		if k != "Content-Length" {
			names = append(names, k)
		}
	}
	return strings.Join(sortStrings(names), ",")
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// FuzzPublishDecode feeds arbitrary bodies to the publish endpoint: it must
// never panic, never answer 5xx, and never store anything from a body that
// carries no valid certificate.
func FuzzPublishDecode(f *testing.F) {
	fx := newFixture(f)
	h := newTestServer(f, fx)
	valid := mustJSON(fx.request(fx.dailyKeys(2), certOpts{}))
	f.Add(valid)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"temporaryExposureKeys":[{"key":"AAAAAAAAAAAAAAAAAAAAAA==","rollingStartNumber":1,"rollingPeriod":144}]}`))
	f.Add([]byte(`{"temporaryExposureKeys":null,"revisionToken":"AAAA"}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		before := fx.count()
		rec, _ := post(h, "application/json", body, nil)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		if fx.count() != before && !bytes.Contains(bytes.ToLower(body), []byte("verificationpayload")) {
			t.Fatalf("stored keys without a certificate: %q", body)
		}
	})
}
