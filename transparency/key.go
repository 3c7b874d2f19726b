package transparency

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	"golang.org/x/mod/sumdb/note"

	"github.com/candor-en/candor/keyset"
)

// DefaultKeyName is the name under which the checkpoint signing key is kept
// in the keyset store.
const DefaultKeyName = "transparency/checkpoint-key"

// keyBlobFormat identifies the stored form of the checkpoint key and is part
// of its associated data.
const keyBlobFormat = "candor-checkpoint-key/1"

// keyBlob is the stored checkpoint key: the log's origin next to the
// Ed25519 seed sealed under the master AEAD. The origin is authenticated as
// associated data, so the key cannot be moved to another origin without
// detection; both are fixed for the life of the log.
type keyBlob struct {
	Format  string    `json:"format"`
	Origin  string    `json:"origin"`
	Created time.Time `json:"created"`
	// Sealed is the 32-byte Ed25519 seed encrypted with the master AEAD.
	Sealed []byte `json:"sealed"`
}

func keyAD(name, origin string) []byte {
	return []byte(keyBlobFormat + "\x00" + name + "\x00" + origin)
}

// DefaultOrigin returns the origin of a new log on host:
// "<host>/candor/data-use/v1".
func DefaultOrigin(host string) string {
	host = strings.ToLower(strings.TrimSpace(host))
	if host == "" {
		host = "localhost"
	}
	return host + "/candor/data-use/v1"
}

// checkOrigin refuses origins that cannot name a note key: C2SP checkpoint
// origins are non-empty and hold no whitespace or '+'.
func checkOrigin(origin string) error {
	if origin == "" || strings.ContainsAny(origin, "+ \t\r\n") {
		return fmt.Errorf("transparency: origin %q: must be non-empty without spaces or '+'", origin)
	}
	return nil
}

// loadKey returns the log's Ed25519 private key and origin from store,
// creating both on first use (the origin is origin, or DefaultOrigin(host)
// when empty). An origin other than the stored one is refused: it would
// start another log under the same key.
func loadKey(ctx context.Context, store keyset.Store, master tink.AEAD, name, origin, host string, now time.Time) (ed25519.PrivateKey, string, error) {
	blob, err := store.LoadKeyset(ctx, name)
	if errors.Is(err, keyset.ErrNotFound) {
		return createKey(ctx, store, master, name, origin, host, now)
	}
	if err != nil {
		return nil, "", fmt.Errorf("transparency: checkpoint key: %w", err)
	}
	var kb keyBlob
	if err := json.Unmarshal(blob, &kb); err != nil {
		return nil, "", fmt.Errorf("transparency: checkpoint key %s: %w", name, err)
	}
	if kb.Format != keyBlobFormat {
		return nil, "", fmt.Errorf("transparency: checkpoint key %s: unsupported format %q", name, kb.Format)
	}
	if origin != "" && origin != kb.Origin {
		return nil, "", fmt.Errorf("transparency: the log's origin is %q; %q would start a different log (leave the origin unset to keep the log)", kb.Origin, origin)
	}
	seed, err := master.Decrypt(kb.Sealed, keyAD(name, kb.Origin))
	if err != nil {
		return nil, "", fmt.Errorf("transparency: checkpoint key %s: decrypt (wrong master key or tampered blob?): %w", name, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, "", fmt.Errorf("transparency: checkpoint key %s: seed is %d bytes", name, len(seed))
	}
	return ed25519.NewKeyFromSeed(seed), kb.Origin, nil
}

func createKey(ctx context.Context, store keyset.Store, master tink.AEAD, name, origin, host string, now time.Time) (ed25519.PrivateKey, string, error) {
	if origin == "" {
		origin = DefaultOrigin(host)
	}
	if err := checkOrigin(origin); err != nil {
		return nil, "", err
	}
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	sealed, err := master.Encrypt(seed, keyAD(name, origin))
	if err != nil {
		return nil, "", fmt.Errorf("transparency: seal checkpoint key: %w", err)
	}
	blob, err := json.Marshal(keyBlob{Format: keyBlobFormat, Origin: origin, Created: now.UTC(), Sealed: sealed})
	if err != nil {
		return nil, "", fmt.Errorf("transparency: encode checkpoint key: %w", err)
	}
	if err := store.SaveKeyset(ctx, name, blob); err != nil {
		return nil, "", fmt.Errorf("transparency: save checkpoint key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), origin, nil
}

// signer is a note.Signer with an Ed25519 key: C2SP signed-note algorithm 1,
// what checkpoints, witnesses and tlog clients expect.
type signer struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

// Name implements note.Signer.
func (s signer) Name() string { return s.name }

// KeyHash implements note.Signer.
func (s signer) KeyHash() uint32 { return s.hash }

// Sign implements note.Signer.
func (s signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// newSigner returns the checkpoint signer of key for origin, its verifier
// and the verifier key string ("<origin>+<hash>+<base64 key>").
func newSigner(origin string, key ed25519.PrivateKey) (note.Signer, note.Verifier, string, error) {
	vkey, err := note.NewEd25519VerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, nil, "", fmt.Errorf("transparency: verifier key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, "", fmt.Errorf("transparency: verifier key: %w", err)
	}
	return signer{name: origin, hash: v.KeyHash(), key: key}, v, vkey, nil
}
