package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/storage/storetest"
)

// TestE2EStoreLinksNoOne: an insider with a copy of the store tries to tie
// people to their keys. N people each get a code (its tracking ID stands for
// the person), redeem it, get a certificate and publish 14 keys, through the
// real binary. Then, from a copy of candor.db read raw: claimed codes sorted
// by every time they carry (claim, issue, then tracking ID), the publish
// window's keys in stored order cut into runs, the i-th run given to the
// i-th person. The attack must do no better than chance (bound and false
// alarm rate: storetest.Linkage); with claim times to the nanosecond and
// keys stored in upload order it attributes every key. The raw records are
// also checked: no time finer than an hour in a spent code or a used token,
// no dates or issuer in a spent code, no time in a server-made tracking ID.
func TestE2EStoreLinksNoOne(t *testing.T) {
	const people, perUpload = 40, 14
	e2eAvoidHourBoundary(t, 5*time.Minute)
	s := startE2EServer(t, "")
	r := addE2ERealm(t, s.bin, s.data, "link", "US-LINK")

	uploads := map[string][][keyserver.KeyLength]byte{} // tracking ID → keys
	today := keyserver.IntervalNumber(time.Now())
	today -= today % keyserver.IntervalsPerDay
	for range people {
		status, issued := s.call(api.IssuePath, r.admin, api.IssueCodeRequest{
			TestType: "confirmed", SymptomDate: time.Now().UTC().AddDate(0, 0, -3).Format("2006-01-02"),
			TestDate: time.Now().UTC().AddDate(0, 0, -1).Format("2006-01-02"),
		})
		if status != 200 {
			t.Fatalf("issue: %d %v", status, issued)
		}
		status, verified := s.call(api.VerifyPath, r.device, api.VerifyCodeRequest{VerificationCode: issued["code"].(string)})
		if status != 200 {
			t.Fatalf("verify: %d %v", status, verified)
		}
		// Keys of the 14 days before today: none is embargoed, so all
		// land in the window of the upload.
		keys := make([]api.ExposureKey, perUpload)
		raw := make([][keyserver.KeyLength]byte, perUpload)
		for i := range keys {
			rand.Read(raw[i][:])
			keys[i] = api.ExposureKey{Key: base64.StdEncoding.EncodeToString(raw[i][:]), IntervalNumber: today - int32(perUpload-i)*keyserver.IntervalsPerDay, IntervalCount: keyserver.IntervalsPerDay}
		}
		secret := make([]byte, 32)
		rand.Read(secret)
		mac := base64.StdEncoding.EncodeToString(api.TEKMAC(secret, keys, true))
		status, cert := s.call(api.CertificatePath, r.device, api.VerificationCertificateRequest{VerificationToken: verified["token"].(string), ExposureKeyHMAC: mac})
		if status != 200 {
			t.Fatalf("certificate: %d %v", status, cert)
		}
		s.publishOK(&api.Publish{Keys: keys, HealthAuthorityID: r.app, VerificationPayload: cert["certificate"].(string), HMACKey: base64.StdEncoding.EncodeToString(secret)})
		uploads[issued["uuid"].(string)] = raw
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// The stolen copy.
	copyPath := filepath.Join(t.TempDir(), "stolen.db")
	b, err := os.ReadFile(filepath.Join(s.data, "candor.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(copyPath, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	type claim struct {
		uuid              string
		claimed, issued   time.Time
		recordFields      map[string]json.RawMessage
		expires, lexpires time.Time
	}
	var claims []claim
	var stored [][keyserver.KeyLength]byte
	err = db.View(func(tx *bbolt.Tx) error {
		err := tx.Bucket([]byte("verification_codes")).ForEach(func(k, v []byte) error {
			var c struct {
				UUID                                          string
				ClaimedAt, IssuedAt, ExpiresAt, LongExpiresAt time.Time
			}
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(v, &c); err != nil {
				return err
			}
			if err := json.Unmarshal(v, &fields); err != nil {
				return err
			}
			if _, ok := uploads[c.UUID]; ok {
				claims = append(claims, claim{c.UUID, c.ClaimedAt, c.IssuedAt, fields, c.ExpiresAt, c.LongExpiresAt})
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket([]byte("verification_tokens_used")).ForEach(func(k, _ []byte) error {
			if at := time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))); !at.Equal(at.Truncate(time.Hour)) {
				t.Errorf("a used token is stored with the time %s", at.UTC())
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Every key of the uploads is in one window (the hour prefix of
		// the location); take that window's keys in stored order.
		var window []byte
		return tx.Bucket([]byte("exposures")).ForEach(func(k, v []byte) error {
			var key [keyserver.KeyLength]byte
			copy(key[:], v[1:])
			if window != nil && !bytes.Equal(k[:8], window) {
				t.Fatalf("the uploads span two windows: %x and %x", window, k[:8])
			}
			window = bytes.Clone(k[:8])
			stored = append(stored, key)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != people {
		t.Fatalf("%d claimed codes in the copy, want %d", len(claims), people)
	}

	for _, c := range claims {
		for _, at := range []time.Time{c.claimed, c.issued, c.expires, c.lexpires} {
			if !at.Equal(at.Truncate(time.Hour)) {
				t.Errorf("code %s: the store keeps the time %s", c.uuid, at)
			}
		}
		for _, f := range []string{"symptomDate", "testDate", "issuedBy"} {
			if _, ok := c.recordFields[f]; ok {
				t.Errorf("code %s: the spent record keeps %s", c.uuid, f)
			}
		}
		if c.uuid[14] != '4' {
			t.Errorf("tracking ID %s: not a random (version 4) UUID", c.uuid)
		}
	}

	// The attack: every time the claims carry, finest first.
	sort.Slice(claims, func(i, j int) bool {
		a, b := claims[i], claims[j]
		if !a.claimed.Equal(b.claimed) {
			return a.claimed.Before(b.claimed)
		}
		if !a.issued.Equal(b.issued) {
			return a.issued.Before(b.issued)
		}
		return a.uuid < b.uuid // a version 7 UUID is ordered by issue time
	})
	ordered := make([][][keyserver.KeyLength]byte, len(claims))
	for i, c := range claims {
		ordered[i] = uploads[c.uuid]
	}
	l, err := storetest.MatchByOrder(stored, ordered)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("attributed %d of %d (chance limit %d), adjacent pairs from one upload %d of %d (chance limit %d)",
		l.Attributed, people*perUpload/2, l.AttributedLimit, l.Paired, people*perUpload/4, l.PairedLimit)
	if err := l.Err(); err != nil {
		t.Error(err)
	}
}
