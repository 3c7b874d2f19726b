package keyset

import (
	"fmt"

	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/key"
	tinkecdsa "github.com/tink-crypto/tink-go/v2/signature/ecdsa"
)

// Purpose selects the kind of key a Ring holds. The zero value is invalid.
type Purpose int

const (
	// PurposeAEAD is AES256-GCM (12-byte IV, 16-byte tag) with Tink's 5-byte
	// output prefix, which lets decryption pick the right key directly. It is
	// used for revision tokens.
	PurposeAEAD Purpose = iota + 1
	// PurposeECDSAP256DER is ECDSA over P-256 with SHA-256, producing ASN.1
	// DER signatures with no output prefix. It is used for export signatures.
	PurposeECDSAP256DER
	// PurposeECDSAP256P1363 is ECDSA over P-256 with SHA-256, producing
	// 64-byte IEEE P1363 (r||s) signatures with no output prefix, as JWS ES256
	// requires. It is used for verification certificates and tokens.
	PurposeECDSAP256P1363
)

// String returns the stable name of p, which is also recorded in stored
// blobs.
func (p Purpose) String() string {
	switch p {
	case PurposeAEAD:
		return "aes256-gcm"
	case PurposeECDSAP256DER:
		return "ecdsa-p256-sha256-der"
	case PurposeECDSAP256P1363:
		return "ecdsa-p256-sha256-p1363"
	default:
		return fmt.Sprintf("Purpose(%d)", int(p))
	}
}

// IsSigning reports whether p is a signature purpose.
func (p Purpose) IsSigning() bool {
	return p == PurposeECDSAP256DER || p == PurposeECDSAP256P1363
}

// parameters returns the Tink parameters of keys generated for p.
func (p Purpose) parameters() (key.Parameters, error) {
	switch p {
	case PurposeAEAD:
		return aesgcm.NewParameters(aesgcm.ParametersOpts{
			KeySizeInBytes: 32,
			IVSizeInBytes:  12,
			TagSizeInBytes: 16,
			Variant:        aesgcm.VariantTink,
		})
	case PurposeECDSAP256DER:
		return tinkecdsa.NewParameters(tinkecdsa.NistP256, tinkecdsa.SHA256, tinkecdsa.DER, tinkecdsa.VariantNoPrefix)
	case PurposeECDSAP256P1363:
		return tinkecdsa.NewParameters(tinkecdsa.NistP256, tinkecdsa.SHA256, tinkecdsa.IEEEP1363, tinkecdsa.VariantNoPrefix)
	default:
		return nil, fmt.Errorf("keyset: invalid purpose %v", p)
	}
}
