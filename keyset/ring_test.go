package keyset

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	tinkkeyset "github.com/tink-crypto/tink-go/v2/keyset"
	tinkecdsa "github.com/tink-crypto/tink-go/v2/signature/ecdsa"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/candor-en/candor/api"
)

var allPurposes = []Purpose{PurposeAEAD, PurposeECDSAP256DER, PurposeECDSAP256P1363}

// fakeClock is a manually advanced clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newMaster(t *testing.T) tink.AEAD {
	t.Helper()
	m, err := OpenMasterFile(filepath.Join(t.TempDir(), "master.json"))
	if err != nil {
		t.Fatalf("OpenMasterFile: %v", err)
	}
	return m
}

func mustOpen(t *testing.T, store Store, master tink.AEAD, name string, p Purpose, opts Options) *Ring {
	t.Helper()
	r, err := Open(context.Background(), store, master, name, p, opts)
	if err != nil {
		t.Fatalf("Open(%q, %v): %v", name, p, err)
	}
	return r
}

// use exercises a ring's primary key and returns a function that checks the
// output still verifies/decrypts under a (possibly other) ring.
func use(t *testing.T, r *Ring) func(r *Ring) error {
	t.Helper()
	data := []byte("payload " + r.Primary().Version)
	if r.Purpose() == PurposeAEAD {
		a, err := r.AEAD()
		if err != nil {
			t.Fatal(err)
		}
		ct, err := a.Encrypt(data, []byte("ad"))
		if err != nil {
			t.Fatalf("Encrypt: %v", err)
		}
		return func(r *Ring) error {
			a, err := r.AEAD()
			if err != nil {
				return err
			}
			pt, err := a.Decrypt(ct, []byte("ad"))
			if err == nil && !bytes.Equal(pt, data) {
				err = fmt.Errorf("decrypted %q, want %q", pt, data)
			}
			return err
		}
	}
	s, err := r.Signer()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(data)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return func(r *Ring) error {
		v, err := r.Verifier()
		if err != nil {
			return err
		}
		return v.Verify(sig, data)
	}
}

func TestOpenCreatesThenReopens(t *testing.T) {
	for _, p := range allPurposes {
		t.Run(p.String(), func(t *testing.T) {
			ctx := context.Background()
			store, master, clock := NewMemStore(), newMaster(t), newFakeClock()
			r1 := mustOpen(t, store, master, "ring", p, Options{Now: clock.Now})
			if _, err := store.LoadKeyset(ctx, "ring"); err != nil {
				t.Fatalf("Open did not save the new ring: %v", err)
			}
			prim := r1.Primary()
			want := KeyInfo{ID: prim.ID, Version: "v1", Primary: true, Created: clock.Now(), PrimarySince: clock.Now()}
			if prim != want {
				t.Errorf("Primary = %+v, want %+v", prim, want)
			}
			if got := r1.Keys(); len(got) != 1 || got[0] != want {
				t.Errorf("Keys = %+v, want [%+v]", got, want)
			}
			check := use(t, r1)

			clock.Advance(time.Hour)
			r2 := mustOpen(t, store, master, "ring", p, Options{Now: clock.Now})
			if got := r2.Primary(); got != want {
				t.Errorf("reopened Primary = %+v, want %+v", got, want)
			}
			if err := check(r2); err != nil {
				t.Errorf("reopened ring rejects output of the first: %v", err)
			}
			if p.IsSigning() {
				k1, _ := r1.PublicKeys()
				k2, err := r2.PublicKeys()
				if err != nil {
					t.Fatal(err)
				}
				if len(k2) != 1 || !k1[0].Public.Equal(k2[0].Public) || !bytes.Equal(k1[0].PEM, k2[0].PEM) {
					t.Errorf("reopened public keys differ: %+v vs %+v", k1, k2)
				}
			}
		})
	}
}

func TestBlobProtection(t *testing.T) {
	ctx := context.Background()
	for _, p := range allPurposes {
		t.Run(p.String(), func(t *testing.T) {
			store, master := NewMemStore(), newMaster(t)
			r := mustOpen(t, store, master, "ring", p, Options{})
			blob, err := store.LoadKeyset(ctx, "ring")
			if err != nil {
				t.Fatal(err)
			}

			// The raw key material must not appear in the blob.
			e, err := r.st.Load().handle.Primary()
			if err != nil {
				t.Fatal(err)
			}
			var secret []byte
			switch k := e.Key().(type) {
			case *aesgcm.Key:
				secret = k.KeyBytes().Data(insecuresecretdataaccess.Token{})
			case *tinkecdsa.PrivateKey:
				secret = k.PrivateKeyValue().Data(insecuresecretdataaccess.Token{})
			default:
				t.Fatalf("unexpected key type %T", k)
			}
			var env envelope
			if err := json.Unmarshal(blob, &env); err != nil {
				t.Fatal(err)
			}
			if len(secret) < 16 || bytes.Contains(env.Keyset, secret) || bytes.Contains(blob, secret) {
				t.Error("stored blob contains the raw key material")
			}

			tests := []struct {
				name   string
				store  func() Store
				master tink.AEAD
				open   string
				p      Purpose
				want   error // nil: any error
			}{
				{"other master", func() Store { return store }, newMaster(t), "ring", p, nil},
				{"swapped name", func() Store {
					s := NewMemStore()
					_ = s.SaveKeyset(ctx, "other", blob)
					return s
				}, master, "other", p, nil},
				{"tampered metadata", func() Store {
					var env envelope
					_ = json.Unmarshal(blob, &env)
					env.Meta = bytes.Replace(env.Meta, []byte(`"last_version":1`), []byte(`"last_version":7`), 1)
					b, _ := json.Marshal(env)
					s := NewMemStore()
					_ = s.SaveKeyset(ctx, "ring", b)
					return s
				}, master, "ring", p, nil},
				{"bad format", func() Store {
					s := NewMemStore()
					_ = s.SaveKeyset(ctx, "ring", bytes.Replace(blob, []byte(blobFormat), []byte("other/1"), 1))
					return s
				}, master, "ring", p, nil},
				{"not json", func() Store {
					s := NewMemStore()
					_ = s.SaveKeyset(ctx, "ring", []byte("garbage"))
					return s
				}, master, "ring", p, nil},
				{"wrong purpose", func() Store { return store }, master, "ring", otherPurpose(p), ErrWrongPurpose},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					_, err := Open(ctx, tc.store(), tc.master, tc.open, tc.p, Options{})
					if err == nil {
						t.Fatal("Open succeeded, want error")
					}
					if tc.want != nil && !errors.Is(err, tc.want) {
						t.Fatalf("Open error = %v, want %v", err, tc.want)
					}
				})
			}
		})
	}
}

func otherPurpose(p Purpose) Purpose {
	if p == PurposeAEAD {
		return PurposeECDSAP256DER
	}
	return PurposeAEAD
}

func TestRotateKeepsOldKeys(t *testing.T) {
	ctx := context.Background()
	for _, p := range allPurposes {
		t.Run(p.String(), func(t *testing.T) {
			store, master, clock := NewMemStore(), newMaster(t), newFakeClock()
			r := mustOpen(t, store, master, "ring", p, Options{Now: clock.Now})
			old := r.Primary()
			check := use(t, r)
			clock.Advance(time.Minute)
			if err := r.Rotate(ctx); err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			prim := r.Primary()
			if prim.ID == old.ID || prim.Version != "v2" || !prim.Created.Equal(clock.Now()) {
				t.Errorf("after Rotate Primary = %+v (old %+v)", prim, old)
			}
			keys := r.Keys()
			wantOld := old
			wantOld.Primary, wantOld.Retired = false, clock.Now()
			if len(keys) != 2 || keys[0] != wantOld || keys[1] != prim {
				t.Errorf("Keys = %+v, want [%+v %+v]", keys, wantOld, prim)
			}
			if err := check(r); err != nil {
				t.Errorf("retired key no longer accepted: %v", err)
			}
			// New output uses the new key: a ring holding only the old
			// key (the first blob would) must reject it.
			r2 := mustOpen(t, store, master, "ring", p, Options{Now: clock.Now})
			if err := use(t, r)(r2); err != nil {
				t.Errorf("reopened ring rejects new key's output: %v", err)
			}
			if p.IsSigning() {
				pubs, err := r.PublicKeys()
				if err != nil {
					t.Fatal(err)
				}
				if len(pubs) != 2 || pubs[0].Primary || !pubs[1].Primary || pubs[1].ID != prim.ID {
					t.Errorf("PublicKeys = %+v", pubs)
				}
				_, pk, err := r.SignerWithKey()
				if err != nil || pk.ID != prim.ID || pk.Version != "v2" {
					t.Errorf("SignerWithKey key = %+v, %v", pk.KeyInfo, err)
				}
			}
		})
	}
}

func TestMaintainLifecycle(t *testing.T) {
	const (
		rotateAfter = 24 * time.Hour
		retainFor   = 48 * time.Hour
	)
	type step struct {
		advance       time.Duration
		wantRotated   bool
		wantDestroyed []string // versions
		wantVersions  []string // kept after the step
		v1Accepted    bool     // output of key v1 still decrypts/verifies
	}
	steps := []step{
		{0, false, nil, []string{"v1"}, true},
		{rotateAfter - time.Second, false, nil, []string{"v1"}, true},
		{time.Second, true, nil, []string{"v1", "v2"}, true},                         // t=24h: v1 retired
		{retainFor - time.Second, true, nil, []string{"v1", "v2", "v3"}, true},       // t=72h-1s: v2 retired
		{time.Second, false, []string{"v1"}, []string{"v2", "v3"}, false},            // t=72h: v1 destroyed
		{time.Hour, false, nil, []string{"v2", "v3"}, false},                         // nothing due
		{3 * rotateAfter, true, []string{"v2"}, []string{"v3", "v4"}, false},         // both at once
		{0, false, nil, []string{"v3", "v4"}, false},                                 // idempotent
		{rotateAfter + retainFor, true, []string{"v3"}, []string{"v4", "v5"}, false}, // v4 retired now, kept
	}
	for _, p := range allPurposes {
		t.Run(p.String(), func(t *testing.T) {
			ctx := context.Background()
			store, master, clock := NewMemStore(), newMaster(t), newFakeClock()
			opts := Options{RotateAfter: rotateAfter, RetainFor: retainFor, Now: clock.Now}
			r := mustOpen(t, store, master, "ring", p, opts)
			ids := map[uint32]string{}
			checkV1 := use(t, r)
			for i, s := range steps {
				clock.Advance(s.advance)
				for _, k := range r.Keys() {
					ids[k.ID] = k.Version
				}
				rotated, destroyed, err := r.Maintain(ctx)
				if err != nil {
					t.Fatalf("step %d: Maintain: %v", i, err)
				}
				var gotDestroyed []string
				for _, id := range destroyed {
					gotDestroyed = append(gotDestroyed, ids[id])
				}
				var gotVersions []string
				for _, k := range r.Keys() {
					gotVersions = append(gotVersions, k.Version)
				}
				if rotated != s.wantRotated || fmt.Sprint(gotDestroyed) != fmt.Sprint(s.wantDestroyed) || fmt.Sprint(gotVersions) != fmt.Sprint(s.wantVersions) {
					t.Errorf("step %d: Maintain = %v, destroyed %v, kept %v; want %v, %v, %v",
						i, rotated, gotDestroyed, gotVersions, s.wantRotated, s.wantDestroyed, s.wantVersions)
				}
				if err := checkV1(r); (err == nil) != s.v1Accepted {
					t.Errorf("step %d: v1 output accepted = %v (err %v), want %v", i, err == nil, err, s.v1Accepted)
				}
				// The stored ring matches the in-memory one.
				r2 := mustOpen(t, store, master, "ring", p, opts)
				if fmt.Sprint(r2.Keys()) != fmt.Sprint(r.Keys()) {
					t.Errorf("step %d: stored keys %v, in memory %v", i, r2.Keys(), r.Keys())
				}
			}
		})
	}
}

func TestMaintainZeroOptionsNeverChanges(t *testing.T) {
	ctx := context.Background()
	store, clock := NewMemStore(), newFakeClock()
	r := mustOpen(t, store, newMaster(t), "ring", PurposeAEAD, Options{Now: clock.Now})
	if err := r.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	before, _ := store.LoadKeyset(ctx, "ring")
	clock.Advance(100 * 365 * 24 * time.Hour)
	rotated, destroyed, err := r.Maintain(ctx)
	if err != nil || rotated || len(destroyed) != 0 {
		t.Fatalf("Maintain = %v, %v, %v; want no change", rotated, destroyed, err)
	}
	after, _ := store.LoadKeyset(ctx, "ring")
	if !bytes.Equal(before, after) {
		t.Error("Maintain without changes rewrote the blob")
	}
}

func TestReloadAndConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	store, master := NewMemStore(), newMaster(t)
	r1 := mustOpen(t, store, master, "ring", PurposeAEAD, Options{})
	r2 := mustOpen(t, store, master, "ring", PurposeAEAD, Options{})

	if err := r1.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if r2.Primary().ID == r1.Primary().ID {
		t.Fatal("r2 saw the rotation before Reload")
	}
	fromR1 := use(t, r1)
	if err := fromR1(r2); err == nil {
		t.Error("r2 decrypts a ciphertext of r1's new key before Reload")
	}
	st := r2.st.Load()
	if err := r2.Reload(ctx); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if r2.Primary() != r1.Primary() {
		t.Errorf("after Reload primary %+v, want %+v", r2.Primary(), r1.Primary())
	}
	if err := fromR1(r2); err != nil {
		t.Errorf("after Reload: %v", err)
	}
	if r2.st.Load() == st {
		t.Error("Reload kept the old state")
	}
	st = r2.st.Load()
	if err := r2.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if r2.st.Load() != st {
		t.Error("Reload of an unchanged blob rebuilt the state")
	}

	// A stale ring rotating must not drop keys another process added.
	if err := r1.Rotate(ctx); err != nil { // r2 is now stale
		t.Fatal(err)
	}
	if err := r2.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(r2.Keys()); got != 4 {
		t.Errorf("after rotations by both rings: %d keys, want 4 (%v)", got, r2.Keys())
	}
	if err := r1.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if r1.Primary().Version != "v4" {
		t.Errorf("primary %+v, want version v4", r1.Primary())
	}
}

// failingStore fails saves after a number of successful ones.
type failingStore struct {
	*MemStore
	mu        sync.Mutex
	saveLimit int
}

func (s *failingStore) SaveKeyset(ctx context.Context, name string, blob []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.saveLimit <= 0 {
		return errors.New("disk full")
	}
	s.saveLimit--
	return s.MemStore.SaveKeyset(ctx, name, blob)
}

func TestStoreFailures(t *testing.T) {
	ctx := context.Background()
	master := newMaster(t)

	if _, err := Open(ctx, &failingStore{MemStore: NewMemStore()}, master, "ring", PurposeAEAD, Options{}); err == nil {
		t.Error("Open succeeded although the new ring could not be saved")
	}

	fs := &failingStore{MemStore: NewMemStore(), saveLimit: 1}
	r := mustOpen(t, fs, master, "ring", PurposeAEAD, Options{})
	before := r.Keys()
	if err := r.Rotate(ctx); err == nil {
		t.Error("Rotate succeeded although the save failed")
	}
	if fmt.Sprint(r.Keys()) != fmt.Sprint(before) {
		t.Errorf("failed Rotate changed keys to %v", r.Keys())
	}

	empty := NewMemStore()
	r2 := mustOpen(t, empty, master, "ring", PurposeAEAD, Options{})
	empty.mu.Lock()
	delete(empty.blobs, "ring")
	empty.mu.Unlock()
	for name, f := range map[string]func() error{
		"Rotate": func() error { return r2.Rotate(ctx) },
		"Reload": func() error { return r2.Reload(ctx) },
		"Maintain": func() error {
			_, _, err := r2.Maintain(ctx)
			return err
		},
	} {
		if err := f(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of a deleted ring: %v, want ErrNotFound", name, err)
		}
	}
}

func TestOpenValidation(t *testing.T) {
	ctx := context.Background()
	master := newMaster(t)
	tests := []struct {
		name    string
		store   Store
		master  tink.AEAD
		ring    string
		purpose Purpose
		opts    Options
	}{
		{"nil store", nil, master, "r", PurposeAEAD, Options{}},
		{"nil master", NewMemStore(), nil, "r", PurposeAEAD, Options{}},
		{"empty name", NewMemStore(), master, "", PurposeAEAD, Options{}},
		{"zero purpose", NewMemStore(), master, "r", 0, Options{}},
		{"unknown purpose", NewMemStore(), master, "r", 99, Options{}},
		{"negative rotate", NewMemStore(), master, "r", PurposeAEAD, Options{RotateAfter: -1}},
		{"negative retain", NewMemStore(), master, "r", PurposeAEAD, Options{RetainFor: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Open(ctx, tc.store, tc.master, tc.ring, tc.purpose, tc.opts); err == nil {
				t.Error("Open succeeded, want error")
			}
		})
	}
}

func TestWrongPurposeOperations(t *testing.T) {
	store, master := NewMemStore(), newMaster(t)
	a := mustOpen(t, store, master, "a", PurposeAEAD, Options{})
	s := mustOpen(t, store, master, "s", PurposeECDSAP256DER, Options{})
	tests := []struct {
		name string
		call func() error
	}{
		{"AEAD of signing ring", func() error { _, err := s.AEAD(); return err }},
		{"Signer of AEAD ring", func() error { _, err := a.Signer(); return err }},
		{"SignerWithKey of AEAD ring", func() error { _, _, err := a.SignerWithKey(); return err }},
		{"Verifier of AEAD ring", func() error { _, err := a.Verifier(); return err }},
		{"PublicKeys of AEAD ring", func() error { _, err := a.PublicKeys(); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, ErrWrongPurpose) {
				t.Errorf("error = %v, want ErrWrongPurpose", err)
			}
		})
	}
}

func TestSignaturesVerifyWithCryptoECDSA(t *testing.T) {
	data := []byte("export batch contents")
	digest := sha256.Sum256(data)
	tests := []struct {
		purpose Purpose
		verify  func(pub *ecdsa.PublicKey, sig []byte) bool
	}{
		{PurposeECDSAP256DER, func(pub *ecdsa.PublicKey, sig []byte) bool {
			// ASN.1 SEQUENCE first: no Tink output prefix.
			return len(sig) > 0 && sig[0] == 0x30 && ecdsa.VerifyASN1(pub, digest[:], sig)
		}},
		{PurposeECDSAP256P1363, func(pub *ecdsa.PublicKey, sig []byte) bool {
			if len(sig) != 64 {
				return false
			}
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			return ecdsa.Verify(pub, digest[:], r, s)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.purpose.String(), func(t *testing.T) {
			r := mustOpen(t, NewMemStore(), newMaster(t), "sig", tc.purpose, Options{})
			for rotation := range 2 {
				signer, pk, err := r.SignerWithKey()
				if err != nil {
					t.Fatal(err)
				}
				live, err := r.Signer()
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range []tink.Signer{signer, live} {
					sig, err := s.Sign(data)
					if err != nil {
						t.Fatalf("Sign: %v", err)
					}
					if !tc.verify(pk.Public, sig) {
						t.Errorf("rotation %d: crypto/ecdsa rejects signature %x", rotation, sig)
					}
				}
				parsed, err := api.ParsePublicKeyPEM(string(pk.PEM))
				if err != nil {
					t.Fatalf("ParsePublicKeyPEM: %v", err)
				}
				if !parsed.Equal(pk.Public) {
					t.Error("PEM does not encode Public")
				}
				if pk.Public.Curve.Params().Name != "P-256" {
					t.Errorf("curve %s", pk.Public.Curve.Params().Name)
				}
				if err := r.Rotate(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestECDSAPublicKeysOfHandle(t *testing.T) {
	r := mustOpen(t, NewMemStore(), newMaster(t), "sig", PurposeECDSAP256P1363, Options{})
	if err := r.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	priv := r.st.Load().handle
	pub, err := priv.Public()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := r.PublicKeys()
	for name, h := range map[string]*tinkkeyset.Handle{"private": priv, "public": pub} {
		got, err := ECDSAPublicKeys(h)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d keys, want %d", name, len(got), len(want))
		}
		for _, w := range want {
			if !got[w.ID].Equal(w.Public) {
				t.Errorf("%s: key %d differs", name, w.ID)
			}
		}
	}
	aeadHandle, err := tinkkeyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ECDSAPublicKeys(aeadHandle); err == nil {
		t.Error("ECDSAPublicKeys of an AEAD keyset succeeded")
	}
	if _, err := ECDSAPublicKeys(nil); err == nil {
		t.Error("ECDSAPublicKeys(nil) succeeded")
	}
	if _, err := api.ParsePublicKeyPEM("nope"); err == nil {
		t.Error("ParsePublicKeyPEM of garbage succeeded")
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	store, master, clock := NewMemStore(), newMaster(t), newFakeClock()
	opts := Options{RotateAfter: time.Hour, RetainFor: 24 * time.Hour, Now: clock.Now}
	ra := mustOpen(t, store, master, "aead", PurposeAEAD, opts)
	rs := mustOpen(t, store, master, "sig", PurposeECDSAP256P1363, opts)
	other := mustOpen(t, store, master, "aead", PurposeAEAD, opts) // a second process

	a, _ := ra.AEAD()
	s, _ := rs.Signer()
	v, _ := rs.Verifier()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				msg := fmt.Appendf(nil, "%d/%d", w, i)
				ct, err := a.Encrypt(msg, nil)
				if err == nil {
					_, err = a.Decrypt(ct, nil)
				}
				if err == nil {
					var sig []byte
					if sig, err = s.Sign(msg); err == nil {
						err = v.Verify(sig, msg)
					}
				}
				if err == nil {
					_, err = rs.PublicKeys()
				}
				_ = ra.Keys()
				_ = ra.Primary()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 5 {
				clock.Advance(30 * time.Minute)
				for _, f := range []func() error{
					func() error { _, _, err := ra.Maintain(ctx); return err },
					func() error { _, _, err := rs.Maintain(ctx); return err },
					func() error { return ra.Rotate(ctx) },
					func() error { return other.Reload(ctx) },
					func() error { return other.Rotate(ctx) },
				} {
					if err := f(); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMemStore(t *testing.T) {
	ctx := context.Background()
	var s MemStore // zero value usable
	if _, err := s.LoadKeyset(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load of missing = %v, want ErrNotFound", err)
	}
	b := []byte("blob")
	if err := s.SaveKeyset(ctx, "x", b); err != nil {
		t.Fatal(err)
	}
	b[0] = 'X'
	got, err := s.LoadKeyset(ctx, "x")
	if err != nil || string(got) != "blob" {
		t.Fatalf("Load = %q, %v; want a copy of the saved blob", got, err)
	}
	got[0] = 'Y'
	if again, _ := s.LoadKeyset(ctx, "x"); string(again) != "blob" {
		t.Errorf("Load returned the stored slice itself")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.SaveKeyset(cctx, "y", b); err == nil {
		t.Error("Save with canceled context succeeded")
	}
}

func BenchmarkRingAEADEncrypt(b *testing.B) {
	m, err := OpenMasterFile(filepath.Join(b.TempDir(), "master.json"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := Open(context.Background(), NewMemStore(), m, "rt", PurposeAEAD, Options{})
	if err != nil {
		b.Fatal(err)
	}
	a, _ := r.AEAD()
	msg := make([]byte, 64)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Encrypt(msg, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
