// Package gaen implements the phone-side cryptography of the Google/Apple
// Exposure Notification framework (GAEN cryptography specification v1.2).
//
// The model: every day a phone draws a fresh 16-byte Temporary Exposure Key
// (TEK) valid from a rolling start interval for a rolling period of up to 144
// ten-minute intervals (one UTC day). From the TEK it derives two keys with
// HKDF-SHA256: the Rolling Proximity Identifier Key (RPIK, info "EN-RPIK") and
// the Associated Encrypted Metadata Key (AEMK, info "EN-AEMK"). Every ten
// minutes the phone broadcasts over Bluetooth a Rolling Proximity Identifier
// (RPI), the AES-128 encryption of a padded interval number under the RPIK,
// together with its Associated Encrypted Metadata (AEM), the Bluetooth
// metadata encrypted with AES-128-CTR under the AEMK with the RPI as IV.
//
// After a positive diagnosis the phone uploads its TEKs; the server publishes
// them in export files, and every other phone re-derives the RPIs of each
// published TEK (see RPIs) and looks them up among the RPIs it heard. The
// server itself never needs these functions; the simulator and matching tests
// do.
package gaen
