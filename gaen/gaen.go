package gaen

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

const (
	// KeyLength is the length in bytes of a TEK and of every key and
	// identifier derived from it.
	KeyLength = 16

	// IntervalDuration is the length of one ENIntervalNumber.
	IntervalDuration = 10 * time.Minute

	// MaxRollingPeriod is the number of intervals in one UTC day, the longest
	// time a TEK is valid (EKRollingPeriod in the specification).
	MaxRollingPeriod = 144
)

// TEK is a Temporary Exposure Key: 16 random bytes a phone uses for one day.
type TEK [KeyLength]byte

// NewTEK draws a TEK from rand (crypto/rand.Reader outside tests).
func NewTEK(rand io.Reader) (TEK, error) {
	var k TEK
	if _, err := io.ReadFull(rand, k[:]); err != nil {
		return TEK{}, fmt.Errorf("new tek: %w", err)
	}
	return k, nil
}

// IntervalNumber returns the ENIntervalNumber of t: the number of ten-minute
// intervals since the Unix epoch. t must not be before the epoch.
func IntervalNumber(t time.Time) uint32 {
	return uint32(t.Unix() / int64(IntervalDuration/time.Second))
}

// RollingStart returns the interval number at which a TEK generated at t
// starts: the first interval of t's UTC day.
func RollingStart(t time.Time) uint32 {
	return IntervalNumber(t) / MaxRollingPeriod * MaxRollingPeriod
}

// derive runs HKDF-SHA256 over the TEK with the given info string. The
// specification's salt is NULL, which HKDF (RFC 5869) defines as HashLen zero
// bytes; it is spelled out so the derivation is obvious.
func derive(tek TEK, info string) [KeyLength]byte {
	var salt [sha256.Size]byte
	k, err := hkdf.Key(sha256.New, tek[:], salt[:], info, KeyLength)
	if err != nil {
		// Only reachable with an oversized key length or a sub-112-bit secret
		// in FIPS 140-only mode, neither of which a 16-byte TEK can produce.
		panic(fmt.Sprintf("gaen: hkdf %s: %v", info, err))
	}
	return [KeyLength]byte(k)
}

// RPIK derives the Rolling Proximity Identifier Key of tek.
func RPIK(tek TEK) [KeyLength]byte { return derive(tek, "EN-RPIK") }

// AEMK derives the Associated Encrypted Metadata Key of tek.
func AEMK(tek TEK) [KeyLength]byte { return derive(tek, "EN-AEMK") }

// newCipher returns AES-128 keyed with k; a 16-byte key cannot fail.
func newCipher(k [KeyLength]byte) cipher.Block {
	b, err := aes.NewCipher(k[:])
	if err != nil {
		panic(fmt.Sprintf("gaen: aes: %v", err))
	}
	return b
}

// paddedData returns the RPI plaintext for interval: "EN-RPI", six zero
// bytes, then the interval number as a little-endian uint32.
func paddedData(interval uint32) [KeyLength]byte {
	var p [KeyLength]byte
	copy(p[:], "EN-RPI")
	binary.LittleEndian.PutUint32(p[12:], interval)
	return p
}

// RPI returns the Rolling Proximity Identifier broadcast during interval by a
// phone whose current RPIK is rpik. To derive many RPIs of one key use RPIs,
// which sets up the cipher once.
func RPI(rpik [KeyLength]byte, interval uint32) [KeyLength]byte {
	var out [KeyLength]byte
	p := paddedData(interval)
	newCipher(rpik).Encrypt(out[:], p[:])
	return out
}

// RPIs returns the RPIs of tek for the intervals rollingStart,
// rollingStart+1, ..., rollingStart+rollingPeriod-1: what a matching phone
// looks up for one published key.
func RPIs(tek TEK, rollingStart, rollingPeriod uint32) [][KeyLength]byte {
	return AppendRPIs(make([][KeyLength]byte, 0, rollingPeriod), tek, rollingStart, rollingPeriod)
}

// AppendRPIs appends the RPIs of RPIs(tek, rollingStart, rollingPeriod) to
// dst, so that matching many keys can reuse one buffer.
func AppendRPIs(dst [][KeyLength]byte, tek TEK, rollingStart, rollingPeriod uint32) [][KeyLength]byte {
	block := newCipher(RPIK(tek))
	p := paddedData(0)
	for i := range rollingPeriod {
		binary.LittleEndian.PutUint32(p[12:], rollingStart+i)
		var out [KeyLength]byte
		block.Encrypt(out[:], p[:])
		dst = append(dst, out)
	}
	return dst
}

// EncryptAEM encrypts Bluetooth metadata (4 bytes in GAEN v1.x) with
// AES-128-CTR under aemk, using the RPI broadcast alongside as IV.
func EncryptAEM(aemk, rpi [KeyLength]byte, metadata []byte) []byte {
	out := make([]byte, len(metadata))
	cipher.NewCTR(newCipher(aemk), rpi[:]).XORKeyStream(out, metadata)
	return out
}

// DecryptAEM reverses EncryptAEM; CTR mode makes it the same operation.
func DecryptAEM(aemk, rpi [KeyLength]byte, aem []byte) []byte {
	return EncryptAEM(aemk, rpi, aem)
}
