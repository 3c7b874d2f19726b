// Package keyset keeps the server's private keys in Tink keysets that are
// encrypted at rest under a master key, together with the metadata needed to
// rotate them safely.
//
// # Master key
//
// Every stored keyset is encrypted with a single master AEAD. In the embedded
// default deployment the master key is a cleartext Tink AES256-GCM keyset in a
// JSON file in the data directory, opened (and created on first use) by
// [OpenMasterFile]; the file's 0600 permissions are its only protection. In
// production any [tink.AEAD] can be used instead, typically one backed by a
// KMS (for example the AEAD returned by a tink-go-gcpkms or tink-go-awskms
// client), so that the key-encryption key never leaves the KMS.
//
// # Named keysets
//
// Each private key purpose is a named [Ring] (for example "revision-token",
// "export-signing", "jwt"), opened with [Open]. A ring holds one Tink keyset
// of a single [Purpose]:
//
//   - [PurposeAEAD]: AES256-GCM (Tink output prefix, so decryption goes
//     straight to the right key), for revision tokens.
//   - [PurposeECDSAP256DER]: ECDSA P-256 / SHA-256, ASN.1 DER signatures,
//     no output prefix, for export-file signatures.
//   - [PurposeECDSAP256P1363]: ECDSA P-256 / SHA-256, IEEE P1363 (r||s)
//     signatures, no output prefix, for ES256 JWS certificates and tokens.
//
// Signing keys never carry Tink's 5-byte output prefix, so outsiders verify
// signatures with plain ECDSA ([PublicKey] exposes each key as an
// *ecdsa.PublicKey and as PKIX PEM).
//
// A ring is stored in a [Store] under its name as one opaque blob: a small
// JSON envelope holding the master-key-encrypted keyset and the per-key
// metadata (creation time, primary-since, retired-at, version). The keyset is
// encrypted with associated data that binds it to the ring's name and to the
// metadata, so a blob cannot be moved to another name and its metadata cannot
// be edited without detection.
//
// # Rotation lifecycle
//
// A key is created as the primary. [Ring.Rotate] (or [Ring.Maintain] once the
// primary has been primary for [Options.RotateAfter]) adds a new primary and
// retires the old one. A retired key is still used to decrypt and verify —
// so tokens and signatures made before the rotation stay valid — until it
// has been retired for [Options.RetainFor], after which [Ring.Maintain]
// destroys it (removes it from the keyset). Choose RetainFor at least as long
// as the lifetime of anything the key encrypted or signed.
//
// Rotations made by another process become visible after [Ring.Reload];
// Rotate and Maintain always start from the stored keyset. The [Store]
// interface has no compare-and-swap, so run Maintain from a single process
// (or under an external lock) when several replicas share a store.
package keyset
