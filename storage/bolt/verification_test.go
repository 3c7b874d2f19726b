package bolt_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/candor-en/candor/storage/bolt"
	"github.com/candor-en/candor/storage/storetest"
	"github.com/candor-en/candor/verification"
)

// The verification store's contract (verification.Store) is the conformance
// suite in storage/storetest, run here against bbolt.

func TestVerificationStore(t *testing.T) {
	storetest.TestVerificationStore(t, func(t *testing.T) verification.Store {
		db, err := bolt.Open(t.TempDir(), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return bolt.NewVerificationStore(db)
	})
}

var vbase = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func newCode(realm, uuid string) *verification.Code {
	h := func(s string) verification.Hash { return sha256.Sum256([]byte(s)) }
	return &verification.Code{
		Realm: realm, UUID: uuid, ShortHash: h(realm + uuid + "s"), LongHash: h(realm + uuid + "l"),
		TestType: "confirmed", IssuedAt: vbase,
		ExpiresAt: vbase.Add(15 * time.Minute), LongExpiresAt: vbase.Add(24 * time.Hour),
	}
}

// TestVerificationStoreDurable: claims survive a reopen.
func TestVerificationStoreDurable(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := bolt.NewVerificationStore(db)
	c := newCode("wa", "u1")
	s.IssueCode(ctx, c, 0)
	if _, err := s.ClaimCode(ctx, "wa", c.ShortHash, vbase); err != nil {
		t.Fatal(err)
	}
	s.ClaimToken(ctx, "wa", "j", vbase.Add(time.Hour), vbase)
	db.Close()
	db, err = bolt.Open(dir, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s = bolt.NewVerificationStore(db)
	if _, err := s.ClaimCode(ctx, "wa", c.LongHash, vbase); !errors.Is(err, verification.ErrNotFound) {
		t.Errorf("claim after reopen: %v", err)
	}
	if err := s.ClaimToken(ctx, "wa", "j", vbase.Add(time.Hour), vbase); !errors.Is(err, verification.ErrUsed) {
		t.Errorf("token after reopen: %v", err)
	}
}
