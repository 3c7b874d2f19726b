// Package phone simulates exposure-notification phones against a Candor
// deployment, for app developers and health authorities who want to try
// the whole journey without real devices, and for end-to-end and load
// tests. The `candor phone` command is a thin layer over it.
//
// # Device state
//
// A phone is a State, kept in a JSON file readable only by its owner
// (0600). It holds what the phone's exposure-notification framework keeps:
//
//   - one Temporary Exposure Key (TEK) per UTC day for the last 14 days,
//     each with its rolling start interval and a rolling period of 144
//     (Roll adds the missing days and forgets older ones);
//   - what it heard over Bluetooth: per 10-minute interval of reception,
//     the Rolling Proximity Identifier (RPI) and Associated Encrypted
//     Metadata (AEM) it received and how many scans heard them, and nothing
//     else: no name, no phone, no precise time;
//   - the export files it already processed, the keys it found in them that
//     match what it heard, the export signing keys it trusts, and the
//     revision token of its last upload.
//
// # The Bluetooth model
//
// Encounter records, on the listening phone, what a Bluetooth scanner would
// have received from the broadcasting phone during [start, start+d): the
// simulated scanner runs once a minute, at start, start+1m, …, and each
// scan hears the RPI and AEM the other phone broadcasts in the scan's
// interval (derived from the broadcaster's TEK of that day, package gaen).
// A sighting is one (interval, RPI) with the number of scans that heard it.
//
// So the resolution is the GAEN interval: an encounter of N minutes
// records one RPI for every 10-minute interval it touched, and matching
// reports the duration as the number of matched intervals × 10 minutes,
// as the framework's exposure windows do. Ten minutes from 12:00 to 12:10
// is one interval, the same ten minutes from 12:05 to 12:15 are two, and
// five minutes are still one: the scan count (minutes heard) is kept next
// to it for a finer figure. Signal strength, distance and attenuation are
// not simulated; the AEM carries a fixed transmit power (AEMMetadata).
//
// # Matching
//
// Sync downloads the export files listed since the last sync, checks their
// signatures against pinned keys, and for every published key derives its
// RPIs (gaen.RPIs: one per interval of its rolling period) and looks each
// up among the heard RPIs. A heard RPI matches when it was received within
// two hours of the interval it belongs to (the framework's tolerance for
// clock skew) and its AEM decrypts, under the key's AEMK, to version-1
// metadata. Matches are kept in the state; a later file's revised_keys
// update them (likely → confirmed; a revoked key cancels its exposure).
// Exposures aggregates the matches per UTC day of contact.
package phone
