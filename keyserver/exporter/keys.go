package exporter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/keyset"
)

// Keys gives the exporter the private keys behind signature infos.
type Keys interface {
	// Signer returns a signer with the key of the named keyset (ASN.1 DER
	// ECDSA P-256 over SHA-256) and its public key. It fails if the keyset
	// does not exist: a missing key is never silently replaced.
	Signer(ctx context.Context, keyset string) (export.DataSigner, keyset.PublicKey, error)
	// Create creates the named keyset with a new key unless it exists, and
	// returns its public key.
	Create(ctx context.Context, keyset string) (keyset.PublicKey, error)
}

// Keysets implements Keys with Tink keysets (keyset.Ring, purpose
// keyset.PurposeECDSAP256DER) encrypted under a master key. Each signature
// info has its own ring holding one key that never rotates by itself: a
// phone knows a (key id, version) by one public key forever, so a new key is
// a new signature info (AddSignatureInfo), signing alongside the old one
// until that is retired.
type Keysets struct {
	store  keyset.Store
	master tink.AEAD
	now    func() time.Time

	mu    sync.Mutex
	rings map[string]*keyset.Ring
}

// NewKeysets returns Keys over store and master. now is the clock of key
// creation times (time.Now when nil).
func NewKeysets(store keyset.Store, master tink.AEAD, now func() time.Time) *Keysets {
	if now == nil {
		now = time.Now
	}
	return &Keysets{store: store, master: master, now: now, rings: map[string]*keyset.Ring{}}
}

// Signer implements Keys.
func (k *Keysets) Signer(ctx context.Context, name string) (export.DataSigner, keyset.PublicKey, error) {
	r, err := k.ring(ctx, name, false)
	if err != nil {
		return nil, keyset.PublicKey{}, err
	}
	s, pub, err := r.SignerWithKey()
	if err != nil {
		return nil, keyset.PublicKey{}, fmt.Errorf("export key %s: %w", name, err)
	}
	return s, pub, nil
}

// Create implements Keys.
func (k *Keysets) Create(ctx context.Context, name string) (keyset.PublicKey, error) {
	r, err := k.ring(ctx, name, true)
	if err != nil {
		return keyset.PublicKey{}, err
	}
	_, pub, err := r.SignerWithKey()
	if err != nil {
		return keyset.PublicKey{}, fmt.Errorf("export key %s: %w", name, err)
	}
	return pub, nil
}

// Reload re-reads every open ring from the store, picking up changes made
// by other processes.
func (k *Keysets) Reload(ctx context.Context) error {
	k.mu.Lock()
	rings := make([]*keyset.Ring, 0, len(k.rings))
	for _, r := range k.rings {
		rings = append(rings, r)
	}
	k.mu.Unlock()
	var errs []error
	for _, r := range rings {
		errs = append(errs, r.Reload(ctx))
	}
	return errors.Join(errs...)
}

func (k *Keysets) ring(ctx context.Context, name string, create bool) (*keyset.Ring, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r, ok := k.rings[name]; ok {
		return r, nil
	}
	if !create {
		if _, err := k.store.LoadKeyset(ctx, name); err != nil {
			return nil, fmt.Errorf("export key %s: %w", name, err)
		}
	}
	r, err := keyset.Open(ctx, k.store, k.master, name, keyset.PurposeECDSAP256DER, keyset.Options{Now: k.now})
	if err != nil {
		return nil, fmt.Errorf("export key %s: %w", name, err)
	}
	k.rings[name] = r
	return r, nil
}

// AddConfig validates c (after WithDefaults), creates the keys of its
// signature infos and stores it. Adding a root that exists with the same
// settings changes nothing; with other settings it is refused, because the
// files already written for the root depend on them (keys with new signing
// keys go through AddSignatureInfo).
func AddConfig(ctx context.Context, store ConfigStore, keys Keys, c Config, now time.Time) (*Config, bool, error) {
	c = c.WithDefaults()
	c.Created = now.UTC()
	for i := range c.SignatureInfos {
		s := &c.SignatureInfos[i]
		if s.Keyset == "" {
			s.Keyset = KeysetName(s.KeyID, s.KeyVersion)
		}
		if s.Added.IsZero() {
			s.Added = c.Created
		}
	}
	if err := c.Validate(); err != nil {
		return nil, false, err
	}
	for _, s := range c.SignatureInfos {
		if _, err := keys.Create(ctx, s.Keyset); err != nil {
			return nil, false, err
		}
	}
	created := false
	out, err := store.UpdateExportConfig(ctx, c.Root, func(cur *Config) (*Config, error) {
		if cur == nil {
			created = true
			n := c
			return &n, nil
		}
		created = false
		if !sameSettings(cur, &c) {
			return nil, fmt.Errorf("export config %s exists with other settings; configurations cannot be changed (add a new root, or rotate keys with AddSignatureInfo)", c.Root)
		}
		return cur, nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, created, nil
}

// sameSettings reports whether cur exports the same files as the requested
// c, and already has c's signature infos (it may have more, added by
// rotations).
func sameSettings(cur, c *Config) bool {
	if cur.Root != c.Root || cur.Region != c.Region || !slices.Equal(cur.InputRegions, c.InputRegions) ||
		cur.IncludeTravelers != c.IncludeTravelers || cur.Period != c.Period || cur.MinWindowAge != c.MinWindowAge ||
		cur.MinKeys != c.MinKeys || cur.MaxKeysPerFile != c.MaxKeysPerFile {
		return false
	}
	for _, s := range c.SignatureInfos {
		if !slices.ContainsFunc(cur.SignatureInfos, func(x SignatureInfo) bool { return x.Export() == s.Export() }) {
			return false
		}
	}
	return true
}

// AddSignatureInfo starts a key rotation: it creates the key (keyID,
// keyVersion) and adds it to root's configuration, where it signs every new
// file next to the keys already there until those are retired with
// RetireSignatureInfo. Re-adding an active key changes nothing. It returns
// the updated configuration and the new key's public half, which app
// developers register with the phone platforms.
func AddSignatureInfo(ctx context.Context, store ConfigStore, keys Keys, root, keyID, keyVersion string, now time.Time) (*Config, keyset.PublicKey, error) {
	name := KeysetName(keyID, keyVersion)
	if !keyNamePattern.MatchString(keyID) || !keyNamePattern.MatchString(keyVersion) {
		return nil, keyset.PublicKey{}, fmt.Errorf("signature info %s/%s: key id and version are 1-64 letters, digits, '.', '_' or '-'", keyID, keyVersion)
	}
	if _, err := store.ExportConfig(ctx, root); err != nil {
		return nil, keyset.PublicKey{}, fmt.Errorf("export config %s: %w", root, err)
	}
	pub, err := keys.Create(ctx, name)
	if err != nil {
		return nil, keyset.PublicKey{}, err
	}
	c, err := store.UpdateExportConfig(ctx, root, func(cur *Config) (*Config, error) {
		if cur == nil {
			return nil, fmt.Errorf("export config %s: %w", root, ErrNotFound)
		}
		n := cur.WithDefaults()
		for _, s := range n.SignatureInfos {
			if s.KeyID == keyID && s.KeyVersion == keyVersion {
				if s.Retired.IsZero() {
					return cur, nil
				}
				return nil, fmt.Errorf("export config %s: key %s/%s was retired; a retired version is never reused", root, keyID, keyVersion)
			}
		}
		n.SignatureInfos = append(n.SignatureInfos, SignatureInfo{KeyID: keyID, KeyVersion: keyVersion, Keyset: name, Added: now.UTC()})
		if err := n.Validate(); err != nil {
			return nil, err
		}
		return &n, nil
	})
	if err != nil {
		return nil, keyset.PublicKey{}, err
	}
	return c, pub, nil
}

// RetireSignatureInfo ends a key rotation: (keyID, keyVersion) stops signing
// root's files at at (now when zero). Phones that know only the retired key
// stop accepting new files, so retire a key only once the new one is
// registered everywhere. The last active key cannot be retired.
func RetireSignatureInfo(ctx context.Context, store ConfigStore, root, keyID, keyVersion string, at, now time.Time) (*Config, error) {
	if at.IsZero() {
		at = now
	}
	return store.UpdateExportConfig(ctx, root, func(cur *Config) (*Config, error) {
		if cur == nil {
			return nil, fmt.Errorf("export config %s: %w", root, ErrNotFound)
		}
		n := cur.WithDefaults()
		found := false
		for i := range n.SignatureInfos {
			s := &n.SignatureInfos[i]
			if s.KeyID == keyID && s.KeyVersion == keyVersion {
				found = true
				if s.Retired.IsZero() || at.Before(s.Retired) {
					s.Retired = at.UTC()
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("export config %s: no key %s/%s: %w", root, keyID, keyVersion, ErrNotFound)
		}
		// Some key must still sign after the retirement takes effect.
		if len(n.ActiveSignatureInfos(at)) == 0 {
			return nil, fmt.Errorf("export config %s: key %s/%s is the last active key; add its successor first", root, keyID, keyVersion)
		}
		return &n, nil
	})
}

// PublishedKey is one public key of a configuration, as GET
// /exports/<root>/keys lists it for app developers.
type PublishedKey struct {
	KeyID      string `json:"keyId"`
	KeyVersion string `json:"keyVersion"`
	// Algorithm is the signature algorithm OID, as in signature infos.
	Algorithm    string `json:"algorithm"`
	PublicKeyPEM string `json:"publicKeyPEM"`
	// Active reports whether the key signs new files.
	Active  bool       `json:"active"`
	Added   time.Time  `json:"added"`
	Retired *time.Time `json:"retired,omitempty"`
}

// publishedKeys lists the keys of c that sign now or signed files that may
// still be live (retired less than retention ago).
func publishedKeys(ctx context.Context, keys Keys, c *Config, now time.Time, retention time.Duration) ([]PublishedKey, error) {
	var out []PublishedKey
	for _, s := range c.SignatureInfos {
		if !s.Active(now) && !now.Before(s.Retired.Add(retention)) {
			continue
		}
		_, pub, err := keys.Signer(ctx, s.Keyset)
		if err != nil {
			return nil, err
		}
		pk := PublishedKey{
			KeyID: s.KeyID, KeyVersion: s.KeyVersion, Algorithm: export.SignatureAlgorithm,
			PublicKeyPEM: string(pub.PEM), Active: s.Active(now), Added: s.Added,
		}
		if !s.Retired.IsZero() {
			r := s.Retired
			pk.Retired = &r
		}
		out = append(out, pk)
	}
	return out, nil
}
