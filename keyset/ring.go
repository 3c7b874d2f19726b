package keyset

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/key"
	tinkkeyset "github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/signature"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/candor-en/candor/api"
)

// ErrWrongPurpose is returned when a Ring is used for an operation its
// Purpose does not support, or opened with a purpose other than the stored
// one.
var ErrWrongPurpose = errors.New("keyset: wrong purpose")

// Options configures rotation of a Ring.
type Options struct {
	// RotateAfter is how long a key stays primary before Maintain rotates
	// it. Zero disables automatic rotation (Rotate still works).
	RotateAfter time.Duration
	// RetainFor is how long a key is kept, for decryption and verification
	// only, after it stops being primary; Maintain then destroys it. Zero
	// keeps retired keys forever. It must cover the lifetime of everything
	// the key encrypted or signed.
	RetainFor time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// KeyInfo describes one key of a Ring.
type KeyInfo struct {
	// ID is the Tink key ID.
	ID uint32
	// Version is the key's public version: "v" followed by a counter that
	// starts at 1 for a ring's first key and grows by one with every
	// rotation; it is never reused. This is the "key version" that export
	// signature infos and JWT "kid" headers carry.
	Version string
	// Primary reports whether the key is the one used to encrypt or sign.
	Primary bool
	// Created is when the key was generated.
	Created time.Time
	// PrimarySince is when the key became primary.
	PrimarySince time.Time
	// Retired is when the key stopped being primary; zero for the primary.
	Retired time.Time
}

// PublicKey is the public half of one signing key of a Ring.
type PublicKey struct {
	KeyInfo
	// Public is the ECDSA public key.
	Public *ecdsa.PublicKey
	// PEM is Public as a PKIX "PUBLIC KEY" PEM block.
	PEM []byte
}

// Ring is one named keyset with its rotation metadata. It is safe for
// concurrent use. Reading methods are lock-free; Rotate, Maintain and Reload
// are serialized with one another.
type Ring struct {
	store   Store
	master  tink.AEAD
	name    string
	purpose Purpose
	params  key.Parameters
	opts    Options

	writeMu sync.Mutex // serializes Rotate, Maintain and Reload
	st      atomic.Pointer[state]
}

// state is an immutable snapshot of a Ring's keyset and the primitives built
// from it. A new state is built on every change of the keyset.
type state struct {
	blob     []byte
	handle   *tinkkeyset.Handle
	meta     metadata
	keys     []KeyInfo // oldest first
	primary  KeyInfo
	aead     tink.AEAD
	signer   tink.Signer
	verifier tink.Verifier
	pubs     []PublicKey // oldest first; signing purposes only
	pubPrim  PublicKey
}

// Open loads the ring called name from store, decrypting it with master. If
// store has no such ring, a new one with a single primary key is generated
// and saved immediately (without compare-and-swap: if two processes create
// the same ring at once, the last save wins, so create rings from one process
// first). An existing ring must have the given purpose.
func Open(ctx context.Context, store Store, master tink.AEAD, name string, purpose Purpose, opts Options) (*Ring, error) {
	switch {
	case store == nil:
		return nil, errors.New("keyset: open: nil store")
	case master == nil:
		return nil, errors.New("keyset: open: nil master key")
	case name == "":
		return nil, errors.New("keyset: open: empty name")
	case opts.RotateAfter < 0 || opts.RetainFor < 0:
		return nil, fmt.Errorf("keyset %q: open: negative RotateAfter or RetainFor", name)
	}
	params, err := purpose.parameters()
	if err != nil {
		return nil, fmt.Errorf("keyset %q: open: %w", name, err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Ring{store: store, master: master, name: name, purpose: purpose, params: params, opts: opts}
	st, err := r.load(ctx)
	if errors.Is(err, ErrNotFound) {
		st, err = r.create(ctx)
	}
	if err != nil {
		return nil, err
	}
	r.st.Store(st)
	return r, nil
}

// Name returns the ring's name.
func (r *Ring) Name() string { return r.name }

// Purpose returns the ring's purpose.
func (r *Ring) Purpose() Purpose { return r.purpose }

// AEAD returns an AEAD that encrypts with the current primary key and
// decrypts with any key the ring still keeps. It always uses the ring's
// current keyset, so it may be kept across rotations and reloads; each call
// costs one atomic load. It fails with ErrWrongPurpose unless the purpose is
// PurposeAEAD.
func (r *Ring) AEAD() (tink.AEAD, error) {
	if r.purpose != PurposeAEAD {
		return nil, fmt.Errorf("keyset %q: AEAD of a %v ring: %w", r.name, r.purpose, ErrWrongPurpose)
	}
	return liveAEAD{r}, nil
}

// Signer returns a Signer that signs with the current primary key. Like AEAD
// it follows rotations. Signatures carry no Tink prefix. Use SignerWithKey
// when the signature must be labelled with its key's ID or version.
func (r *Ring) Signer() (tink.Signer, error) {
	if !r.purpose.IsSigning() {
		return nil, fmt.Errorf("keyset %q: Signer of a %v ring: %w", r.name, r.purpose, ErrWrongPurpose)
	}
	return liveSigner{r}, nil
}

// SignerWithKey returns a Signer bound to the current primary key together
// with that key's public half, so that signatures and their key version are
// consistent even if the ring rotates concurrently. Do not keep the Signer:
// it does not follow rotations.
func (r *Ring) SignerWithKey() (tink.Signer, PublicKey, error) {
	if !r.purpose.IsSigning() {
		return nil, PublicKey{}, fmt.Errorf("keyset %q: Signer of a %v ring: %w", r.name, r.purpose, ErrWrongPurpose)
	}
	st := r.st.Load()
	return st.signer, clonePublicKey(st.pubPrim), nil
}

// Verifier returns a Verifier that accepts signatures from any key the ring
// still keeps. It follows rotations.
func (r *Ring) Verifier() (tink.Verifier, error) {
	if !r.purpose.IsSigning() {
		return nil, fmt.Errorf("keyset %q: Verifier of a %v ring: %w", r.name, r.purpose, ErrWrongPurpose)
	}
	return liveVerifier{r}, nil
}

// PublicKeys returns the public keys of every key the ring keeps, oldest
// first. It fails with ErrWrongPurpose for an AEAD ring.
func (r *Ring) PublicKeys() ([]PublicKey, error) {
	if !r.purpose.IsSigning() {
		return nil, fmt.Errorf("keyset %q: PublicKeys of a %v ring: %w", r.name, r.purpose, ErrWrongPurpose)
	}
	st := r.st.Load()
	out := make([]PublicKey, len(st.pubs))
	for i, p := range st.pubs {
		out[i] = clonePublicKey(p)
	}
	return out, nil
}

// Keys describes every key the ring keeps, oldest first.
func (r *Ring) Keys() []KeyInfo { return slices.Clone(r.st.Load().keys) }

// Primary describes the current primary key.
func (r *Ring) Primary() KeyInfo { return r.st.Load().primary }

// Rotate generates a new key, makes it primary, retires the previous primary
// now and saves the ring. It starts from the stored ring, so rotations saved
// by other processes are not lost.
func (r *Ring) Rotate(ctx context.Context) error {
	return r.update(ctx, func(now time.Time, m *tinkkeyset.Manager, md *metadata) (bool, error) {
		return true, r.rotate(now, m, md)
	})
}

// Maintain destroys keys that have been retired for at least
// Options.RetainFor and rotates the primary if it has been primary for at
// least Options.RotateAfter, saving the ring if anything changed. It starts
// from the stored ring. It reports whether it rotated and the IDs of the
// destroyed keys.
func (r *Ring) Maintain(ctx context.Context) (rotated bool, destroyed []uint32, err error) {
	err = r.update(ctx, func(now time.Time, m *tinkkeyset.Manager, md *metadata) (bool, error) {
		kept := md.Keys[:0]
		for _, k := range md.Keys {
			if !k.Retired.IsZero() && r.opts.RetainFor > 0 && !now.Before(k.Retired.Add(r.opts.RetainFor)) {
				if err := m.Delete(k.ID); err != nil {
					return false, fmt.Errorf("destroy key %d: %w", k.ID, err)
				}
				destroyed = append(destroyed, k.ID)
				continue
			}
			kept = append(kept, k)
		}
		md.Keys = kept
		pi, err := md.primaryIndex()
		if err != nil {
			return false, err
		}
		if r.opts.RotateAfter > 0 && !now.Before(md.Keys[pi].PrimarySince.Add(r.opts.RotateAfter)) {
			if err := r.rotate(now, m, md); err != nil {
				return false, err
			}
			rotated = true
		}
		return rotated || len(destroyed) > 0, nil
	})
	if err != nil {
		return false, nil, err
	}
	return rotated, destroyed, nil
}

// Reload re-reads the ring from the store, picking up changes made by other
// processes. Primitives are rebuilt only if the stored ring changed.
func (r *Ring) Reload(ctx context.Context) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	st, err := r.load(ctx)
	if err != nil {
		return err
	}
	r.st.Store(st)
	return nil
}

func (r *Ring) now() time.Time { return r.opts.Now().UTC() }

// rotate adds a new primary key to m and md and retires the old primary.
func (r *Ring) rotate(now time.Time, m *tinkkeyset.Manager, md *metadata) error {
	pi, err := md.primaryIndex()
	if err != nil {
		return err
	}
	id, err := m.AddNewKeyFromParameters(r.params)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	if err := m.SetPrimary(id); err != nil {
		return fmt.Errorf("set primary key: %w", err)
	}
	md.Keys[pi].Retired = now
	md.LastVersion++
	md.Keys = append(md.Keys, keyMeta{ID: id, Version: md.LastVersion, Created: now, PrimarySince: now})
	return nil
}

// update applies fn to the stored ring and saves and installs the result if
// fn reports a change.
func (r *Ring) update(ctx context.Context, fn func(now time.Time, m *tinkkeyset.Manager, md *metadata) (bool, error)) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	cur, err := r.load(ctx)
	if err != nil {
		return err
	}
	r.st.Store(cur)
	m := tinkkeyset.NewManagerFromHandle(cur.handle)
	md := cur.meta.clone()
	changed, err := fn(r.now(), m, &md)
	if err != nil {
		return fmt.Errorf("keyset %q: %w", r.name, err)
	}
	if !changed {
		return nil
	}
	h, err := m.Handle()
	if err != nil {
		return fmt.Errorf("keyset %q: build keyset: %w", r.name, err)
	}
	st, err := r.save(ctx, h, md)
	if err != nil {
		return err
	}
	r.st.Store(st)
	return nil
}

// create generates and saves a new ring with one primary key.
func (r *Ring) create(ctx context.Context) (*state, error) {
	m := tinkkeyset.NewManager()
	id, err := m.AddNewKeyFromParameters(r.params)
	if err != nil {
		return nil, fmt.Errorf("keyset %q: generate key: %w", r.name, err)
	}
	if err := m.SetPrimary(id); err != nil {
		return nil, fmt.Errorf("keyset %q: set primary key: %w", r.name, err)
	}
	h, err := m.Handle()
	if err != nil {
		return nil, fmt.Errorf("keyset %q: build keyset: %w", r.name, err)
	}
	now := r.now()
	md := metadata{
		Purpose:     r.purpose.String(),
		LastVersion: 1,
		Keys:        []keyMeta{{ID: id, Version: 1, Created: now, PrimarySince: now}},
	}
	return r.save(ctx, h, md)
}

// save validates, encrypts and stores h and md, returning their state.
func (r *Ring) save(ctx context.Context, h *tinkkeyset.Handle, md metadata) (*state, error) {
	blob, err := encodeBlob(r.name, h, md, r.master)
	if err != nil {
		return nil, fmt.Errorf("keyset %q: %w", r.name, err)
	}
	st, err := r.newState(blob, h, md)
	if err != nil {
		return nil, err
	}
	if err := r.store.SaveKeyset(ctx, r.name, blob); err != nil {
		return nil, fmt.Errorf("keyset %q: save: %w", r.name, err)
	}
	return st, nil
}

// load reads and decrypts the stored ring. If the stored blob is unchanged
// the current state is returned as is.
func (r *Ring) load(ctx context.Context) (*state, error) {
	blob, err := r.store.LoadKeyset(ctx, r.name)
	if err != nil {
		return nil, fmt.Errorf("keyset %q: load: %w", r.name, err)
	}
	if cur := r.st.Load(); cur != nil && bytes.Equal(cur.blob, blob) {
		return cur, nil
	}
	h, md, err := decodeBlob(r.name, blob, r.master)
	if err != nil {
		return nil, fmt.Errorf("keyset %q: load: %w", r.name, err)
	}
	return r.newState(blob, h, md)
}

// newState checks that h and md agree with each other and with the ring's
// purpose, and builds the primitives.
func (r *Ring) newState(blob []byte, h *tinkkeyset.Handle, md metadata) (*state, error) {
	st, err := r.buildState(blob, h, md)
	if err != nil {
		return nil, fmt.Errorf("keyset %q: %w", r.name, err)
	}
	return st, nil
}

func (r *Ring) buildState(blob []byte, h *tinkkeyset.Handle, md metadata) (*state, error) {
	if md.Purpose != r.purpose.String() {
		return nil, fmt.Errorf("stored purpose %q, want %q: %w", md.Purpose, r.purpose, ErrWrongPurpose)
	}
	primary, err := h.Primary()
	if err != nil {
		return nil, err
	}
	pi, err := md.primaryIndex()
	if err != nil {
		return nil, err
	}
	if md.Keys[pi].ID != primary.KeyID() {
		return nil, fmt.Errorf("metadata primary %d, keyset primary %d", md.Keys[pi].ID, primary.KeyID())
	}
	if h.Len() != len(md.Keys) {
		return nil, fmt.Errorf("keyset has %d keys, metadata %d", h.Len(), len(md.Keys))
	}
	byID := make(map[uint32]keyMeta, len(md.Keys))
	for _, k := range md.Keys {
		byID[k.ID] = k
	}
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil {
			return nil, err
		}
		if _, ok := byID[e.KeyID()]; !ok {
			return nil, fmt.Errorf("key %d has no metadata", e.KeyID())
		}
		if e.KeyStatus() != tinkkeyset.Enabled {
			return nil, fmt.Errorf("key %d is %v", e.KeyID(), e.KeyStatus())
		}
		if !r.params.Equal(e.Key().Parameters()) {
			return nil, fmt.Errorf("key %d does not match purpose %v: %w", e.KeyID(), r.purpose, ErrWrongPurpose)
		}
	}

	keys := slices.Clone(md.Keys)
	slices.SortFunc(keys, func(a, b keyMeta) int { return cmp.Compare(a.Version, b.Version) })
	st := &state{blob: blob, handle: h, meta: md, keys: make([]KeyInfo, len(keys))}
	for i, k := range keys {
		st.keys[i] = KeyInfo{
			ID:           k.ID,
			Version:      "v" + strconv.FormatUint(k.Version, 10),
			Primary:      k.ID == primary.KeyID(),
			Created:      k.Created,
			PrimarySince: k.PrimarySince,
			Retired:      k.Retired,
		}
		if st.keys[i].Primary {
			st.primary = st.keys[i]
		}
	}

	if r.purpose == PurposeAEAD {
		if st.aead, err = aead.New(h); err != nil {
			return nil, fmt.Errorf("build AEAD: %w", err)
		}
		return st, nil
	}
	pub, err := h.Public()
	if err != nil {
		return nil, fmt.Errorf("public keyset: %w", err)
	}
	if st.signer, err = signature.NewSigner(h); err != nil {
		return nil, fmt.Errorf("build signer: %w", err)
	}
	if st.verifier, err = signature.NewVerifier(pub); err != nil {
		return nil, fmt.Errorf("build verifier: %w", err)
	}
	ecKeys, err := ECDSAPublicKeys(pub)
	if err != nil {
		return nil, err
	}
	st.pubs = make([]PublicKey, len(st.keys))
	for i, ki := range st.keys {
		pemText, err := api.MarshalPublicKeyPEM(ecKeys[ki.ID])
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", ki.ID, err)
		}
		st.pubs[i] = PublicKey{KeyInfo: ki, Public: ecKeys[ki.ID], PEM: []byte(pemText)}
		if ki.Primary {
			st.pubPrim = st.pubs[i]
		}
	}
	return st, nil
}

func clonePublicKey(p PublicKey) PublicKey {
	p.PEM = bytes.Clone(p.PEM)
	return p
}

// liveAEAD, liveSigner and liveVerifier delegate to the primitives of the
// ring's current state.
type liveAEAD struct{ r *Ring }

func (a liveAEAD) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return a.r.st.Load().aead.Encrypt(plaintext, associatedData)
}

func (a liveAEAD) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	return a.r.st.Load().aead.Decrypt(ciphertext, associatedData)
}

type liveSigner struct{ r *Ring }

func (s liveSigner) Sign(data []byte) ([]byte, error) { return s.r.st.Load().signer.Sign(data) }

type liveVerifier struct{ r *Ring }

func (v liveVerifier) Verify(sig, data []byte) error { return v.r.st.Load().verifier.Verify(sig, data) }
