package keyserver

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
)

// RevisionKeys supplies the AEAD that seals revision tokens; a keyset.Ring
// with rotation keeps older keys so tokens stay readable for the revision
// window.
type RevisionKeys interface {
	AEAD() (tink.AEAD, error)
}

// MaxKeysPerPublish is the most keys one publish may carry, and so the most
// a revision token lists.
const MaxKeysPerPublish = 30

const (
	revisionTokenVersion = 1
	revisionSlotSize     = KeyLength + 4 + 1
	revisionHeaderSize   = 1 + 4 + 1
	// Every token has room for MaxKeysPerPublish keys, so its size does not
	// reveal how many keys the phone uploaded.
	revisionPlaintextSize = revisionHeaderSize + MaxKeysPerPublish*revisionSlotSize
)

var revisionTokenAD = []byte("candor/revision-token/v1")

// RevisableKey is one key listed in a revision token.
type RevisableKey struct {
	Key            [KeyLength]byte
	IntervalNumber int32
	IntervalCount  int32
}

// RevisionToken lists the keys a phone uploaded, so that only that phone can
// later revise them.
type RevisionToken struct {
	IssuedAt time.Time // hour resolution
	Keys     []RevisableKey
}

// Seal encrypts the token. The result has the same length for any key count.
func (t *RevisionToken) Seal(aead tink.AEAD) (string, error) {
	if len(t.Keys) > MaxKeysPerPublish {
		return "", fmt.Errorf("revision token: %d keys, at most %d", len(t.Keys), MaxKeysPerPublish)
	}
	buf := make([]byte, revisionPlaintextSize)
	buf[0] = revisionTokenVersion
	binary.BigEndian.PutUint32(buf[1:], uint32(t.IssuedAt.Unix()/3600))
	buf[5] = byte(len(t.Keys))
	for i, k := range t.Keys {
		slot := buf[revisionHeaderSize+i*revisionSlotSize:]
		copy(slot, k.Key[:])
		binary.BigEndian.PutUint32(slot[KeyLength:], uint32(k.IntervalNumber))
		slot[KeyLength+4] = byte(k.IntervalCount)
	}
	ct, err := aead.Encrypt(buf, revisionTokenAD)
	if err != nil {
		return "", fmt.Errorf("revision token: %w", err)
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

// OpenRevisionToken decrypts and parses a token sealed by Seal.
func OpenRevisionToken(aead tink.AEAD, s string) (*RevisionToken, error) {
	ct, err := decodeBase64(s)
	if err != nil {
		return nil, fmt.Errorf("revision token: %w", err)
	}
	buf, err := aead.Decrypt(ct, revisionTokenAD)
	if err != nil {
		return nil, fmt.Errorf("revision token: %w", err)
	}
	if len(buf) != revisionPlaintextSize || buf[0] != revisionTokenVersion {
		return nil, errors.New("revision token: unknown format")
	}
	n := int(buf[5])
	if n > MaxKeysPerPublish {
		return nil, errors.New("revision token: bad key count")
	}
	t := &RevisionToken{IssuedAt: time.Unix(int64(binary.BigEndian.Uint32(buf[1:]))*3600, 0).UTC(), Keys: make([]RevisableKey, n)}
	for i := range n {
		slot := buf[revisionHeaderSize+i*revisionSlotSize:]
		copy(t.Keys[i].Key[:], slot)
		t.Keys[i].IntervalNumber = int32(binary.BigEndian.Uint32(slot[KeyLength:]))
		t.Keys[i].IntervalCount = int32(slot[KeyLength+4])
	}
	return t, nil
}

// Find returns the token's entry for key.
func (t *RevisionToken) Find(key [KeyLength]byte) (RevisableKey, bool) {
	for _, k := range t.Keys {
		if k.Key == key {
			return k, true
		}
	}
	return RevisableKey{}, false
}

// decodeBase64 accepts the standard and URL alphabets, padded or not, as
// phones send both.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not valid base64")
}
