package verification

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// APIKeyKind is what an API key may call: the device API or the admin API.
type APIKeyKind string

// Kinds of API key.
const (
	// DeviceKey authorises /api/verify and /api/certificate; it ships inside
	// the app, so treat it as public and rely on rate limits.
	DeviceKey APIKeyKind = "device"
	// AdminKey authorises /api/issue, /api/batch-issue, /api/checkcodestatus
	// and /api/expirecode; it belongs to a health authority's systems.
	AdminKey APIKeyKind = "admin"
)

// ParseAPIKeyKind parses "device" or "admin".
func ParseAPIKeyKind(s string) (APIKeyKind, error) {
	switch k := APIKeyKind(s); k {
	case DeviceKey, AdminKey:
		return k, nil
	}
	return "", fmt.Errorf("API key kind %q: want device or admin", s)
}

// APIKey is a realm's API key as stored: the secret itself only as its hash.
type APIKey struct {
	// ID names the key in listings and for revocation; it reveals nothing
	// about the secret.
	ID    string     `json:"id"`
	Realm string     `json:"realm"`
	Kind  APIKeyKind `json:"kind"`
	// Name is a label for people, e.g. "Android app".
	Name      string    `json:"name,omitempty"`
	Hash      Hash      `json:"hash"`
	CreatedAt time.Time `json:"createdAt"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
}

// Revoked reports whether the key was revoked.
func (k *APIKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// apiKeySecretBytes is the entropy of an API key secret.
const apiKeySecretBytes = 32

// newAPIKeySecret returns a new secret, "cd_" (device) or "ca_" (admin)
// followed by the URL-safe base64 of 32 random bytes, and a key ID.
func newAPIKeySecret(r io.Reader, kind APIKeyKind) (secret, id string, err error) {
	b := make([]byte, apiKeySecretBytes+6)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", "", fmt.Errorf("API key: %w", err)
	}
	prefix := "cd_"
	if kind == AdminKey {
		prefix = "ca_"
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:apiKeySecretBytes]), "k" + hex.EncodeToString(b[apiKeySecretBytes:]), nil
}
