package keyserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyserver"
)

func ptr[T any](v T) *T { return &v }

func TestPublishRefusesBadInput(t *testing.T) {
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384Key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tests := []struct {
		name string
		// build returns the request from a fixture and 3 fresh daily keys.
		build func(f *fixture, keys []api.ExposureKey) *api.Publish
		code  string
	}{
		{"no keys", func(f *fixture, _ []api.ExposureKey) *api.Publish { return f.request(nil, certOpts{}) }, api.CodeBadRequest},
		{"31 keys", func(f *fixture, _ []api.ExposureKey) *api.Publish {
			keys := f.dailyKeys(31)
			return f.request(keys, certOpts{})
		}, api.CodeBadRequest},
		{"only a 15-byte key", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			keys[0].Key = base64.StdEncoding.EncodeToString(make([]byte, 15))
			return f.request(keys[:1], certOpts{})
		}, api.CodeBadRequest},
		{"only rollingPeriod 0", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			keys[0].IntervalCount = 0
			return f.request(keys[:1], certOpts{})
		}, api.CodeBadRequest},
		{"only rollingPeriod 145", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			keys[0].IntervalCount = 145
			return f.request(keys[:1], certOpts{})
		}, api.CodeBadRequest},
		{"only transmissionRisk 9", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			keys[0].TransmissionRisk = 9
			return f.request(keys[:1], certOpts{})
		}, api.CodeBadRequest},
		{"only a key starting tomorrow", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			keys[2].IntervalNumber += 144
			return f.request(keys[2:], certOpts{})
		}, api.CodeBadRequest},
		{"only a key 21 days old", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			keys[0].IntervalNumber -= 19 * 144
			return f.request(keys[:1], certOpts{})
		}, api.CodeBadRequest},
		{"4 keys with one start interval", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			more := f.dailyKeys(4)
			for i := range more {
				more[i].IntervalNumber = keys[0].IntervalNumber
				more[i].IntervalCount = 36 * int32(i+1)
			}
			return f.request(more, certOpts{})
		}, api.CodeBadRequest},
		{"non-aligned overlap", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			keys[1].IntervalNumber = keys[0].IntervalNumber + 100
			return f.request(keys[:2], certOpts{})
		}, api.CodeBadRequest},
		{"same key twice", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			keys[1].Key = keys[0].Key
			return f.request(keys[:2], certOpts{})
		}, api.CodeBadRequest},
		{"unknown healthAuthorityID", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			r := f.request(keys, certOpts{})
			r.HealthAuthorityID = "com.unknown"
			return r
		}, api.CodeUnknownHealthAuthorityID},
		{"no certificate", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			r := f.request(keys, certOpts{})
			r.VerificationPayload = ""
			return r
		}, api.CodeCertificateInvalid},
		{"certificate alg none", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{method: jwt.SigningMethodNone, key: jwt.UnsafeAllowNoneSignatureType})
		}, api.CodeCertificateInvalid},
		{"certificate alg HS256 with the public key as secret", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			pemText, _ := api.MarshalPublicKeyPEM(&f.priv.PublicKey)
			return f.request(keys, certOpts{method: jwt.SigningMethodHS256, key: []byte(pemText)})
		}, api.CodeCertificateInvalid},
		{"certificate alg ES384", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{method: jwt.SigningMethodES384, key: p384Key})
		}, api.CodeCertificateInvalid},
		{"missing kid", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{kid: ptr("")})
		}, api.CodeCertificateInvalid},
		{"unknown kid", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{kid: ptr("v9")})
		}, api.CodeCertificateInvalid},
		{"unknown issuer", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{claims: map[string]any{"iss": "other"}})
		}, api.CodeCertificateInvalid},
		{"wrong audience", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{claims: map[string]any{"aud": "someone.else"}})
		}, api.CodeCertificateInvalid},
		{"array audience", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{claims: map[string]any{"aud": []string{testAudience}}})
		}, api.CodeCertificateInvalid},
		{"expired", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{claims: map[string]any{"exp": f.now.Add(-time.Minute).Unix()}})
		}, api.CodeCertificateInvalid},
		{"no exp", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{dropClaims: []string{"exp"}})
		}, api.CodeCertificateInvalid},
		{"not yet valid", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{claims: map[string]any{"nbf": f.now.Add(10 * time.Minute).Unix()}})
		}, api.CodeCertificateInvalid},
		{"issued in the future", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{claims: map[string]any{"iat": f.now.Add(10 * time.Minute).Unix()}})
		}, api.CodeCertificateInvalid},
		{"signed by another key", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{key: otherKey})
		}, api.CodeCertificateInvalid},
		{"tampered signature", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			r := f.request(keys, certOpts{})
			parts := strings.Split(r.VerificationPayload, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[10] ^= 1
			parts[2] = base64.RawURLEncoding.EncodeToString(sig)
			r.VerificationPayload = strings.Join(parts, ".")
			return r
		}, api.CodeCertificateInvalid},
		{"no reportType", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{dropClaims: []string{"reportType"}})
		}, api.CodeCertificateInvalid},
		{"HMAC over other keys", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			return f.request(keys, certOpts{hmacKeys: keys[:2]})
		}, api.CodeCertificateInvalid},
		{"HMAC over a changed risk", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			r := f.request(keys, certOpts{})
			r.Keys[0].TransmissionRisk = 5
			return r
		}, api.CodeCertificateInvalid},
		{"hmacKey not base64", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			r := f.request(keys, certOpts{})
			r.HMACKey = "%%%"
			return r
		}, api.CodeCertificateInvalid},
		{"app not allowed for authority", func(f *fixture, keys []api.ExposureKey) *api.Publish {
			ctx := context.Background()
			pemText, _ := api.MarshalPublicKeyPEM(&f.priv.PublicKey)
			keyserver.AddAuthority(ctx, f.store, keyserver.HealthAuthority{Issuer: "other.issuer", Audience: testAudience}, &keyserver.AuthorityKey{Version: testKID, PEM: pemText}, f.now.Add(-time.Hour))
			keyserver.AddApp(ctx, f.store, "other.app", "other.issuer", "US-CA")
			r := f.request(keys, certOpts{})
			r.HealthAuthorityID = "other.app"
			return r
		}, api.CodeCertificateInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			req := tt.build(f, f.dailyKeys(3))
			res, err := f.pub.Publish(context.Background(), req)
			if err == nil {
				t.Fatalf("Publish succeeded (%+v), want %s", res, tt.code)
			}
			var perr *api.Error
			if !errors.As(err, &perr) || perr.Code != tt.code {
				t.Fatalf("Publish error = %v, want code %s", err, tt.code)
			}
			if n := f.count(); n != 0 {
				t.Errorf("store holds %d keys after a refused publish", n)
			}
		})
	}
}

func TestPublishStoresKeys(t *testing.T) {
	f := newFixture(t)
	keys := f.dailyKeys(14)
	res, err := f.pub.Publish(context.Background(), f.request(keys, certOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 14 || res.RevisionToken == "" || res.PartialFailure != "" {
		t.Fatalf("result = %+v, want 14 inserted with a token", res)
	}
	window := f.now.Truncate(time.Hour)
	for i, k := range keys {
		e := f.stored(t, k)
		if e.ReportType != keyserver.ReportConfirmed || e.TransmissionRisk != 2 {
			t.Errorf("key %d: type %v risk %d, want confirmed with default risk 2", i, e.ReportType, e.TransmissionRisk)
		}
		if e.Region != "US-WA" || e.HealthAuthorityID != testApp {
			t.Errorf("key %d: region %q app %q", i, e.Region, e.HealthAuthorityID)
		}
		// Default onset is 4 days ago.
		if want := int32(i - 13 + 4); !e.HasDaysSinceOnset || e.DaysSinceOnset != want {
			t.Errorf("key %d: days since onset %d (%v), want %d", i, e.DaysSinceOnset, e.HasDaysSinceOnset, want)
		}
		switch {
		case i < 13 && !e.CreatedAt.Equal(window):
			t.Errorf("key %d: created %v, want the coarse window %v", i, e.CreatedAt, window)
		case i == 13 && !e.CreatedAt.Equal(keyserver.TimeForInterval(k.IntervalNumber+144)):
			t.Errorf("today's key created %v, want embargo until its end %v", e.CreatedAt, keyserver.TimeForInterval(k.IntervalNumber+144))
		}
	}
}

func TestPublishPartialFailure(t *testing.T) {
	f := newFixture(t)
	keys := f.dailyKeys(3)
	keys[0].TransmissionRisk = 9
	res, err := f.pub.Publish(context.Background(), f.request(keys, certOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 2 || res.Dropped != 1 || res.PartialFailure == "" {
		t.Fatalf("result = %+v, want 2 inserted, 1 dropped, a partial failure", res)
	}
}

func TestPublishSymptomOnset(t *testing.T) {
	day := int32(144)
	tests := []struct {
		name       string
		reqOnset   func(today int32) int32
		certOnset  func(today int32) int32
		wantOffset int32 // days since onset of today's key
		dropped    int
	}{
		{"request wins", func(t int32) int32 { return t - 2*day }, func(t int32) int32 { return t - 5*day }, 2, 0},
		{"certificate when request missing", func(int32) int32 { return 0 }, func(t int32) int32 { return t - 5*day }, 5, 0},
		{"certificate when request too old", func(t int32) int32 { return t - 40*day }, func(t int32) int32 { return t - 1*day }, 1, 0},
		{"4 days ago by default", func(int32) int32 { return 0 }, func(int32) int32 { return 0 }, 4, 0},
		{"future onset ignored", func(t int32) int32 { return t + 3*day }, func(int32) int32 { return 0 }, 4, 0},
		{"keys over 14 days from onset dropped", func(t int32) int32 { return t - 0*day }, func(int32) int32 { return 0 }, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			keys := f.dailyKeys(16) // oldest key is 15 days before today
			today := keys[15].IntervalNumber
			req := f.request(keys, certOpts{onset: uint32(tt.certOnset(today))})
			req.SymptomOnsetInterval = tt.reqOnset(today)
			res, err := f.pub.Publish(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Dropped != tt.dropped || (tt.dropped > 0) != (len(res.Warnings) > 0) {
				t.Fatalf("dropped %d warnings %q, want %d dropped", res.Dropped, res.Warnings, tt.dropped)
			}
			if e := f.stored(t, keys[15]); e.DaysSinceOnset != tt.wantOffset {
				t.Errorf("today's key: days since onset %d, want %d", e.DaysSinceOnset, tt.wantOffset)
			}
		})
	}
}

func TestPublishNegativeStoresNothing(t *testing.T) {
	f := newFixture(t)
	res, err := f.pub.Publish(context.Background(), f.request(f.dailyKeys(3), certOpts{reportType: api.ReportTypeNegative}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 0 || res.RevisionToken == "" || f.count() != 0 {
		t.Fatalf("negative report: %+v, %d stored; want nothing stored and a token", res, f.count())
	}
}

func TestPublishThreeFieldHMAC(t *testing.T) {
	f := newFixture(t)
	keys := f.dailyKeys(2)
	secret := make([]byte, 32)
	rand.Read(secret)
	req := f.request(keys, certOpts{tekmacBytes: api.TEKMAC(secret, keys, false)})
	req.HMACKey = base64.StdEncoding.EncodeToString(secret)
	if _, err := f.pub.Publish(context.Background(), req); err != nil {
		t.Fatalf("3-field HMAC with zero risks refused: %v", err)
	}
	// With a non-zero risk the 3-field form is not accepted.
	keys = f.dailyKeys(2)
	keys[0].TransmissionRisk = 3
	req = f.request(keys, certOpts{tekmacBytes: api.TEKMAC(secret, keys, false)})
	req.HMACKey = base64.StdEncoding.EncodeToString(secret)
	if _, err := f.pub.Publish(context.Background(), req); keyserver.ErrorCode(err) != api.CodeCertificateInvalid {
		t.Fatalf("3-field HMAC with a risk: %v, want certificate invalid", err)
	}
}

func TestPublishRevisions(t *testing.T) {
	type step struct {
		reportType string
		token      string // "prev", "none", "tampered", "other"
		code       string
	}
	tests := []struct {
		name  string
		steps []step
		// wantRevised is the revised type of the keys after the last step ("" = not revised).
		wantRevised keyserver.ReportType
	}{
		{"likely to confirmed", []step{{"likely", "none", ""}, {"confirmed", "prev", ""}}, keyserver.ReportConfirmed},
		{"likely to negative", []step{{"likely", "none", ""}, {"negative", "prev", ""}}, keyserver.ReportNegative},
		{"user-report to likely", []step{{"user-report", "none", ""}, {"likely", "prev", ""}}, keyserver.ReportLikely},
		{"same type again is a no-op", []step{{"likely", "none", ""}, {"likely", "prev", ""}}, 0},
		{"revision without token", []step{{"likely", "none", ""}, {"confirmed", "none", api.CodeMissingRevisionToken}}, 0},
		{"tampered token", []step{{"likely", "none", ""}, {"confirmed", "tampered", api.CodeInvalidRevisionToken}}, 0},
		{"token of other keys", []step{{"likely", "none", ""}, {"confirmed", "other", api.CodeInvalidRevisionToken}}, 0},
		{"confirmed to likely is forbidden", []step{{"confirmed", "none", ""}, {"likely", "prev", api.CodeInvalidReportTypeTransition}}, 0},
		{"revised twice", []step{{"user-report", "none", ""}, {"likely", "prev", ""}, {"confirmed", "prev", api.CodeKeyAlreadyRevised}}, keyserver.ReportLikely},
		{"original type re-sent after the revision is a no-op", []step{{"likely", "none", ""}, {"confirmed", "prev", ""}, {"likely", "prev", ""}}, keyserver.ReportConfirmed},
		{"revised type re-sent is a no-op", []step{{"likely", "none", ""}, {"confirmed", "prev", ""}, {"confirmed", "prev", ""}}, keyserver.ReportConfirmed},
		{"a third type after the revision", []step{{"likely", "none", ""}, {"confirmed", "prev", ""}, {"negative", "prev", api.CodeKeyAlreadyRevised}}, keyserver.ReportConfirmed},
		{"original type re-sent without the token", []step{{"likely", "none", ""}, {"confirmed", "prev", ""}, {"likely", "none", api.CodeMissingRevisionToken}}, keyserver.ReportConfirmed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			keys := f.dailyKeys(3)
			prev := ""
			otherRes, err := f.pub.Publish(context.Background(), f.request(f.dailyKeys(2), certOpts{}))
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				f.now = f.now.Add(time.Hour)
				req := f.request(keys, certOpts{reportType: s.reportType})
				switch s.token {
				case "prev":
					req.RevisionToken = prev
				case "tampered":
					b, _ := base64.StdEncoding.DecodeString(prev)
					b[20] ^= 1
					req.RevisionToken = base64.StdEncoding.EncodeToString(b)
				case "other":
					req.RevisionToken = otherRes.RevisionToken
				}
				res, err := f.pub.Publish(context.Background(), req)
				if got := keyserver.ErrorCode(err); err != nil && got != s.code || err == nil && s.code != "" {
					t.Fatalf("step %d: error %v, want code %q", i, err, s.code)
				}
				if err == nil {
					prev = res.RevisionToken
				}
			}
			for _, k := range keys {
				e := f.stored(t, k)
				if tt.wantRevised == 0 && e.Revised {
					t.Errorf("key revised to %v, want unrevised", e.RevisedReportType)
				}
				if tt.wantRevised != 0 && (!e.Revised || e.RevisedReportType != tt.wantRevised) {
					t.Errorf("key revised=%v to %v, want %v", e.Revised, e.RevisedReportType, tt.wantRevised)
				}
			}
		})
	}
}

func TestRevisionTokenConstantSize(t *testing.T) {
	f := newFixture(t)
	aead, err := f.revKey.AEAD()
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[int]bool{}
	for _, n := range []int{0, 1, 14, 30} {
		tok := &keyserver.RevisionToken{IssuedAt: f.now}
		for i := range n {
			tok.Keys = append(tok.Keys, keyserver.RevisableKey{Key: [16]byte{byte(i)}, IntervalNumber: int32(i), IntervalCount: 144})
		}
		s, err := tok.Seal(aead)
		if err != nil {
			t.Fatal(err)
		}
		sizes[len(s)] = true
		back, err := keyserver.OpenRevisionToken(aead, s)
		if err != nil || len(back.Keys) != n {
			t.Fatalf("round trip of %d keys: %v, %d keys", n, err, len(back.Keys))
		}
	}
	if len(sizes) != 1 {
		t.Errorf("token sizes vary with the key count: %v", sizes)
	}
}

func TestPublishKeyAcceptsURLBase64(t *testing.T) {
	f := newFixture(t)
	keys := f.dailyKeys(2)
	for i := range keys {
		raw, _ := base64.StdEncoding.DecodeString(keys[i].Key)
		keys[i].Key = base64.RawURLEncoding.EncodeToString(raw)
	}
	res, err := f.pub.Publish(context.Background(), f.request(keys, certOpts{}))
	if err != nil || res.Inserted != 2 {
		t.Fatalf("URL-alphabet keys: %v %+v", err, res)
	}
}

// An upload whose keys were all dropped for the symptom onset still answers
// with a token that lets the phone revise its earlier keys.
func TestPublishTokenKeepsKeysNotCarried(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	keys := f.dailyKeys(3)
	first, err := f.pub.Publish(ctx, f.request(keys, certOpts{reportType: api.ReportTypeLikely}))
	if err != nil {
		t.Fatal(err)
	}
	far := f.request(keys, certOpts{reportType: api.ReportTypeConfirmed})
	far.SymptomOnsetInterval = keys[0].IntervalNumber - 20*144
	far.RevisionToken = first.RevisionToken
	res, err := f.pub.Publish(ctx, far)
	if err != nil || res.Dropped != 3 || res.Revised != 0 {
		t.Fatalf("every key far from the onset: %+v, %v", res, err)
	}
	neg := f.request(keys, certOpts{reportType: api.ReportTypeNegative})
	neg.RevisionToken = res.RevisionToken
	if _, err := f.pub.Publish(ctx, neg); err != nil {
		t.Fatalf("revising with the token of the dropped upload: %v", err)
	}
	for _, k := range keys {
		if e := f.stored(t, k); !e.Revised || e.RevisedReportType != keyserver.ReportNegative {
			t.Errorf("key revised=%v to %v, want negative", e.Revised, e.RevisedReportType)
		}
	}
}
