package verification_test

import (
	"errors"
	"testing"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/internal/web"
	"github.com/candor-en/candor/verification"
)

// The fuzz targets feed arbitrary bodies through the strict decoder and, when
// they decode, through the service: nothing may panic, a decoding failure is
// a 400, and the service answers only documented codes, never an internal
// error. Run one with e.g. `go test -run x -fuzz FuzzVerifyRequest ./verification/`.

func decodeOrFail(t *testing.T, body []byte, v any) bool {
	err := web.UnmarshalStrict(body, v)
	if err == nil {
		return true
	}
	var de *web.DecodeError
	if !errors.As(err, &de) || de.Status != 400 {
		t.Fatalf("decode error %v is not a 400 DecodeError", err)
	}
	return false
}

func checkCode(t *testing.T, err error, allowed ...string) {
	if err == nil {
		return
	}
	code := verification.ErrorCode(err)
	for _, a := range allowed {
		if code == a {
			return
		}
	}
	t.Fatalf("unexpected error %v (code %s)", err, code)
}

func FuzzVerifyRequest(f *testing.F) {
	fx := newFixture(f, func(o *verification.Options) { o.Limiter = verification.NewAttemptLimiter(1<<30, 1, o.Now) })
	is := fx.issue(api.IssueCodeRequest{TestType: "likely"})
	for _, s := range []string{
		`{"code":"` + is.Code + `","accept":["confirmed"]}`,
		`{"code":"12345678"}`, `{"code":"abc","accept":["likely","user-report"],"padding":"xx","nonce":"n"}`,
		`{"CODE":"1","Accept":[]}`, `{"accept":null}`, `{}`, `[]`, `null`, `{"code":1}`, `{"code":"1"} {}`, "",
	} {
		f.Add([]byte(s))
	}
	device := fx.caller(fx.deviceKey, verification.DeviceKey)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req api.VerifyCodeRequest
		if !decodeOrFail(t, body, &req) {
			return
		}
		_, err := fx.svc.Verify(fx.ctx, device, &req)
		checkCode(t, err, api.ErrVerifyCodeInvalid, api.ErrVerifyCodeExpired, api.ErrInvalidTestType, api.ErrUnsupportedTestType)
	})
}

func FuzzCertificateRequest(f *testing.F) {
	fx := newFixture(f)
	v := fx.mustVerify(fx.issue(api.IssueCodeRequest{TestType: "confirmed"}).Code)
	for _, s := range []string{
		`{"token":"` + v.Token + `","ekeyhmac":"!!"}`,
		`{"token":"` + v.Token[:len(v.Token)-2] + `","ekeyhmac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"token":"a.b.c","ekeyhmac":""}`, `{"token":"","ekeyhmac":"AAAA"}`, `{"padding":""}`, `{"token":{}}`,
	} {
		f.Add([]byte(s))
	}
	device := fx.caller(fx.deviceKey, verification.DeviceKey)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req api.VerificationCertificateRequest
		if !decodeOrFail(t, body, &req) {
			return
		}
		_, err := fx.svc.Certificate(fx.ctx, device, &req)
		checkCode(t, err, api.ErrTokenInvalid, api.ErrTokenExpired, api.ErrHMACInvalid)
	})
}

func FuzzIssueRequest(f *testing.F) {
	fx := newFixture(f)
	for _, s := range []string{
		`{"testType":"confirmed","symptomDate":"2026-11-18","tzOffset":-300}`,
		`{"testType":"likely","testDate":"2026-11-21","tzOffset":840.5,"uuid":"1b4e28ba-2fa1-11d2-883f-0016d3cca427"}`,
		`{"testType":"negative","phone":"+1","externalIssuerID":"x","padding":""}`,
		`{"testType":"Confirmed","symptomDate":"2026-02-30"}`, `{"testType":"x","tzOffset":1e308}`, `{"tzOffset":"1"}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	admin := fx.caller(fx.adminKey, verification.AdminKey)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req api.IssueCodeRequest
		if !decodeOrFail(t, body, &req) {
			return
		}
		_, err := fx.svc.Issue(fx.ctx, admin, &req)
		checkCode(t, err, api.ErrInvalidTestType, api.ErrUnsupportedTestType, api.ErrUnparsableRequest, api.ErrInvalidDate,
			api.ErrMissingDate, api.ErrUUIDAlreadyExists)
	})
}

func FuzzBatchIssueRequest(f *testing.F) {
	fx := newFixture(f)
	for _, s := range []string{
		`{"codes":[{"testType":"confirmed"},{"testType":"bogus"}]}`, `{"codes":[]}`, `{"codes":[null]}`,
		`{"codes":[{},{},{},{},{},{},{},{},{},{},{}]}`, `{"codes":{}}`, `{"padding":"x"}`,
	} {
		f.Add([]byte(s))
	}
	admin := fx.caller(fx.adminKey, verification.AdminKey)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req api.BatchIssueCodeRequest
		if !decodeOrFail(t, body, &req) {
			return
		}
		results, err := fx.svc.BatchIssue(fx.ctx, admin, &req)
		checkCode(t, err, api.ErrUnparsableRequest)
		for _, r := range results {
			checkCode(t, r.Err, api.ErrInvalidTestType, api.ErrUnsupportedTestType, api.ErrUnparsableRequest, api.ErrInvalidDate,
				api.ErrMissingDate, api.ErrUUIDAlreadyExists)
		}
	})
}

func FuzzCodeStatusRequest(f *testing.F) {
	fx := newFixture(f)
	is := fx.issue(api.IssueCodeRequest{TestType: "confirmed"})
	for _, s := range []string{`{"uuid":"` + is.UUID + `"}`, `{"uuid":""}`, `{"uuid":"x"}`, `{"uuid":null}`, `{"UUID":"` + is.UUID + `","padding":"p"}`} {
		f.Add([]byte(s))
	}
	admin := fx.caller(fx.adminKey, verification.AdminKey)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req api.CheckCodeStatusRequest
		if !decodeOrFail(t, body, &req) {
			return
		}
		_, err := fx.svc.CodeStatus(fx.ctx, admin, req.UUID)
		checkCode(t, err, api.ErrVerifyCodeNotFound, api.ErrUnparsableRequest)
		var ereq api.ExpireCodeRequest
		if decodeOrFail(t, body, &ereq) && ereq.UUID != is.UUID {
			_, err = fx.svc.ExpireCode(fx.ctx, admin, ereq.UUID)
			checkCode(t, err, api.ErrVerifyCodeNotFound, api.ErrUnparsableRequest, api.ErrVerifyCodeExpired, api.ErrVerifyCodeInvalid)
		}
	})
}
