package keyserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/internal/web"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/storage/bolt"
)

// Apps built for the reference key server branch on the status and the code,
// so these answers match it exactly.
func TestPublishHTTPReferenceAnswers(t *testing.T) {
	const day = 144
	type answer struct {
		status   int
		code     string
		message  string
		warnings []string
		inserted int
	}
	tests := []struct {
		name string
		// build returns the request, after any earlier uploads it needs.
		build func(t *testing.T, f *fixture, h http.Handler) *api.Publish
		want  answer
		// stored is how many keys the store holds after the request.
		stored int
		// revised is the report type of the keys of the request after it (0: not revised).
		revised keyserver.ReportType
	}{
		{"every key too far from the symptom onset", func(t *testing.T, f *fixture, _ http.Handler) *api.Publish {
			keys := f.dailyKeys(2) // yesterday's and today's
			r := f.request(keys, certOpts{})
			r.SymptomOnsetInterval = keys[1].IntervalNumber - 20*day
			return r
		}, answer{200, "", "", []string{"key 0 dropped: 19 days from symptom onset", "key 1 dropped: 20 days from symptom onset"}, 0}, 0, 0},
		{"some keys too far from the symptom onset", func(t *testing.T, f *fixture, _ http.Handler) *api.Publish {
			keys := f.dailyKeys(16)
			r := f.request(keys, certOpts{})
			r.SymptomOnsetInterval = keys[15].IntervalNumber
			return r
		}, answer{200, "", "", []string{"key 0 dropped: -15 days from symptom onset"}, 15}, 15, 0},
		{"an invalid key and the others too far from the onset", func(t *testing.T, f *fixture, _ http.Handler) *api.Publish {
			keys := f.dailyKeys(2)
			keys[0].TransmissionRisk = 9
			r := f.request(keys, certOpts{})
			r.SymptomOnsetInterval = keys[1].IntervalNumber - 20*day
			return r
		}, answer{400, api.CodeBadRequest, "no valid key: key 0: transmissionRisk 9 is outside 0..8", nil, 0}, 0, 0},
		{"the likely upload re-sent after its confirmation", func(t *testing.T, f *fixture, h http.Handler) *api.Publish {
			keys := f.dailyKeys(3)
			tok := publishOK(t, h, f.request(keys, certOpts{reportType: api.ReportTypeLikely}), "")
			tok = publishOK(t, h, f.request(keys, certOpts{reportType: api.ReportTypeConfirmed}), tok)
			r := f.request(keys, certOpts{reportType: api.ReportTypeLikely})
			r.RevisionToken = tok
			return r
		}, answer{200, "", "", nil, 0}, 3, keyserver.ReportConfirmed},
		{"the confirmation re-sent", func(t *testing.T, f *fixture, h http.Handler) *api.Publish {
			keys := f.dailyKeys(3)
			tok := publishOK(t, h, f.request(keys, certOpts{reportType: api.ReportTypeLikely}), "")
			tok = publishOK(t, h, f.request(keys, certOpts{reportType: api.ReportTypeConfirmed}), tok)
			r := f.request(keys, certOpts{reportType: api.ReportTypeConfirmed})
			r.RevisionToken = tok
			return r
		}, answer{200, "", "", nil, 0}, 3, keyserver.ReportConfirmed},
		{"a third type after the revision", func(t *testing.T, f *fixture, h http.Handler) *api.Publish {
			keys := f.dailyKeys(3)
			tok := publishOK(t, h, f.request(keys, certOpts{reportType: api.ReportTypeLikely}), "")
			tok = publishOK(t, h, f.request(keys, certOpts{reportType: api.ReportTypeConfirmed}), tok)
			r := f.request(keys, certOpts{reportType: api.ReportTypeNegative})
			r.RevisionToken = tok
			return r
		}, answer{400, api.CodeKeyAlreadyRevised, "a key was already revised", nil, 0}, 3, keyserver.ReportConfirmed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			h := newTestServer(t, f)
			req := tt.build(t, f, h)
			rec, resp := post(h, "application/json", mustJSON(req), nil)
			got := answer{rec.Code, resp.Code, resp.ErrorMessage, resp.Warnings, resp.InsertedExposures}
			if got.status != tt.want.status || got.code != tt.want.code || got.message != tt.want.message ||
				!slices.Equal(got.warnings, tt.want.warnings) || got.inserted != tt.want.inserted {
				t.Fatalf("answer %+v,\nwant   %+v", got, tt.want)
			}
			if (rec.Code == http.StatusOK) != (resp.RevisionToken != "") {
				t.Errorf("status %d with revision token %q", rec.Code, resp.RevisionToken)
			}
			if n := f.count(); n != tt.stored {
				t.Errorf("store holds %d keys, want %d", n, tt.stored)
			}
			for _, k := range req.Keys[len(req.Keys)-min(tt.stored, len(req.Keys)):] {
				if e := f.stored(t, k); e.Revised != (tt.revised != 0) || e.RevisedReportType != tt.revised {
					t.Errorf("stored key revised=%v to %v, want %v", e.Revised, e.RevisedReportType, tt.revised)
				}
			}
		})
	}
}

// publishOK posts req with the revision token tok and returns the new token.
func publishOK(t *testing.T, h http.Handler, req *api.Publish, tok string) string {
	t.Helper()
	req.RevisionToken = tok
	rec, resp := post(h, "application/json", mustJSON(req), nil)
	if rec.Code != http.StatusOK || resp.RevisionToken == "" {
		t.Fatalf("publish: %d %+v", rec.Code, resp)
	}
	return resp.RevisionToken
}

// commitAfterDisconnect stores its first publish only once the client has
// gone: the fault behind a refused retry, where an upload is stored although
// its client saw an error.
type commitAfterDisconnect struct {
	keyserver.ExposureStore
	armed     atomic.Bool
	committed chan error
}

func (s *commitAfterDisconnect) Publish(ctx context.Context, keys [][keyserver.KeyLength]byte, plan func(map[[keyserver.KeyLength]byte]*keyserver.Exposure) (*keyserver.Change, error)) error {
	if !s.armed.CompareAndSwap(true, false) {
		return s.ExposureStore.Publish(ctx, keys, plan)
	}
	<-ctx.Done()
	err := s.ExposureStore.Publish(context.WithoutCancel(ctx), keys, plan)
	s.committed <- err
	return err
}

// A phone sends an upload and drops the connection before the answer; the
// server stores it anyway. The phone's exact retry is answered like the
// first, with a revision token that works; anything else about those keys is
// refused as before.
func TestPublishRetryAfterDisconnect(t *testing.T) {
	tests := []struct {
		name     string
		retry    func(f *fixture, first *api.Publish) *api.Publish
		status   int
		code     string
		inserted int
	}{
		{"the same upload", func(_ *fixture, first *api.Publish) *api.Publish { return first }, http.StatusOK, "", 3},
		{"the same keys with another certificate", func(f *fixture, first *api.Publish) *api.Publish {
			return f.request(first.Keys, certOpts{})
		}, http.StatusBadRequest, api.CodeMissingRevisionToken, 0},
		{"the same certificate with a key left out", func(_ *fixture, first *api.Publish) *api.Publish {
			r := *first
			r.Keys = r.Keys[1:]
			return &r
		}, http.StatusUnauthorized, api.CodeCertificateInvalid, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			db, err := bolt.Open(t.TempDir(), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			store := &commitAfterDisconnect{ExposureStore: db, committed: make(chan error, 1)}
			store.armed.Store(true)
			pub := keyserver.NewPublisher(store, f.store, f.revKey, keyserver.PublishOptions{Now: f.clock})
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			e := web.NewEcho(log, web.NewMetrics(prometheus.NewRegistry()))
			keyserver.NewHandler(pub, log, prometheus.NewRegistry()).Register(e)
			srv := httptest.NewServer(e)
			t.Cleanup(srv.Close)

			first := f.request(f.dailyKeys(3), certOpts{reportType: api.ReportTypeLikely})
			body := mustJSON(first)
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				api.PublishPath, srv.Listener.Addr(), len(body), body)
			conn.Close()
			select {
			case err := <-store.committed:
				if err != nil {
					t.Fatalf("the dropped upload was not stored: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the server never noticed the dropped connection")
			}

			res, err := http.Post(srv.URL+api.PublishPath, "application/json", bytes.NewReader(mustJSON(tt.retry(f, first))))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var resp api.PublishResponse
			if err := json.NewDecoder(res.Body).Decode(&resp); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.status || resp.Code != tt.code || resp.InsertedExposures != tt.inserted {
				t.Fatalf("retry: %d %q %q, %d inserted; want %d %q, %d inserted",
					res.StatusCode, resp.Code, resp.ErrorMessage, resp.InsertedExposures, tt.status, tt.code, tt.inserted)
			}
			n := 0
			db.ScanExportExposures(context.Background(), false, time.Unix(0, 0), f.now.Add(48*time.Hour), func(*keyserver.Exposure) error { n++; return nil })
			if n != 3 {
				t.Errorf("store holds %d keys, want the 3 of the first upload", n)
			}
			if res.StatusCode != http.StatusOK {
				return
			}
			// The retry's token revises the upload, as the lost answer's would have.
			rev := f.request(first.Keys, certOpts{reportType: api.ReportTypeConfirmed})
			rev.RevisionToken = resp.RevisionToken
			res, err = http.Post(srv.URL+api.PublishPath, "application/json", bytes.NewReader(mustJSON(rev)))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("revision with the retry's token: %d", res.StatusCode)
			}
			for _, k := range first.Keys {
				raw, _ := base64.StdEncoding.DecodeString(k.Key)
				e, err := db.Exposure(context.Background(), [keyserver.KeyLength]byte(raw))
				if err != nil || !e.Revised || e.RevisedReportType != keyserver.ReportConfirmed {
					t.Errorf("key %s after the revision: %+v %v", k.Key, e, err)
				}
			}
		})
	}
}
