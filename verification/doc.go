// Package verification is the verification service's domain: realms (one per
// health authority that issues codes), their code policy and signing keys,
// API keys, verification codes, verification tokens and certificates, and
// per-day statistics.
//
// The flow: a health worker issues a code through the admin API (Issue); the
// person's app exchanges the short or long code for a single-use verification
// token (Verify), then the token plus the HMAC of its keys for a signed
// certificate (Certificate), which the key server checks on upload. Wire
// types and error codes are in package api and match the Google reference
// verification server, so apps built for it work unchanged.
//
// The rules are plain Go that tests call without HTTP. Storage is behind the
// Store interface (store.go), implemented by storage/bolt; its contract
// includes the atomic single-use claims of codes and tokens. Codes and API
// keys are stored only as HMAC-SHA256 under a secret sealed by a Tink AEAD
// keyset; certificate and token signing keys are per-realm Tink keysets that
// rotate. The HTTP translation is one thin file (http.go).
package verification
