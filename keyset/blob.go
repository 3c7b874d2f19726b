package keyset

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	tinkkeyset "github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// blobFormat identifies the layout of stored blobs and is part of the
// associated data of every encrypted keyset.
const blobFormat = "candor-keyset/1"

// envelope is the stored form of a Ring: cleartext (but authenticated)
// metadata next to the master-key-encrypted Tink keyset.
type envelope struct {
	Format string `json:"format"`
	// Meta is kept as raw bytes: exactly these bytes are authenticated as
	// part of the keyset's associated data.
	Meta json.RawMessage `json:"meta"`
	// Keyset is a binary tink EncryptedKeyset proto (base64 in JSON).
	Keyset []byte `json:"keyset"`
}

// metadata is the rotation bookkeeping of a Ring.
type metadata struct {
	Purpose string `json:"purpose"`
	// LastVersion is the version given to the newest key; versions are
	// never reused, even after keys are destroyed.
	LastVersion uint64    `json:"last_version"`
	Keys        []keyMeta `json:"keys"`
}

type keyMeta struct {
	ID           uint32    `json:"id"`
	Version      uint64    `json:"version"`
	Created      time.Time `json:"created"`
	PrimarySince time.Time `json:"primary_since"`
	// Retired is when the key stopped being primary; zero for the primary.
	Retired time.Time `json:"retired,omitzero"`
}

func (m metadata) clone() metadata {
	m.Keys = slices.Clone(m.Keys)
	return m
}

// primaryIndex returns the index of the single key that is not retired.
func (m metadata) primaryIndex() (int, error) {
	idx := -1
	for i, k := range m.Keys {
		if k.Retired.IsZero() {
			if idx >= 0 {
				return -1, fmt.Errorf("metadata has two primary keys (%d, %d)", m.Keys[idx].ID, k.ID)
			}
			idx = i
		}
	}
	if idx < 0 {
		return -1, fmt.Errorf("metadata has no primary key")
	}
	return idx, nil
}

// associatedData binds an encrypted keyset to its ring name and metadata.
func associatedData(name string, meta []byte) []byte {
	ad := make([]byte, 0, len(blobFormat)+5+len(name)+len(meta))
	ad = append(ad, blobFormat...)
	ad = append(ad, 0)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(name)))
	ad = append(ad, name...)
	return append(ad, meta...)
}

func encodeBlob(name string, h *tinkkeyset.Handle, md metadata, master tink.AEAD) ([]byte, error) {
	mb, err := json.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(tinkkeyset.NewBinaryWriter(&buf), master, associatedData(name, mb)); err != nil {
		return nil, fmt.Errorf("encrypt keyset: %w", err)
	}
	blob, err := json.Marshal(envelope{Format: blobFormat, Meta: mb, Keyset: buf.Bytes()})
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return blob, nil
}

func decodeBlob(name string, blob []byte, master tink.AEAD) (*tinkkeyset.Handle, metadata, error) {
	var env envelope
	if err := json.Unmarshal(blob, &env); err != nil {
		return nil, metadata{}, fmt.Errorf("decode envelope: %w", err)
	}
	if env.Format != blobFormat {
		return nil, metadata{}, fmt.Errorf("unsupported blob format %q", env.Format)
	}
	h, err := tinkkeyset.ReadWithAssociatedData(tinkkeyset.NewBinaryReader(bytes.NewReader(env.Keyset)), master, associatedData(name, env.Meta))
	if err != nil {
		return nil, metadata{}, fmt.Errorf("decrypt keyset (wrong master key, name or tampered blob?): %w", err)
	}
	var md metadata
	if err := json.Unmarshal(env.Meta, &md); err != nil {
		return nil, metadata{}, fmt.Errorf("decode metadata: %w", err)
	}
	return h, md, nil
}
