// Package transparency is Candor's public log of data use (docs/TRANSPARENCY.md):
// every use of the data — an export file published, old data deleted, a
// signing key or a health authority's policy changed, a day's aggregate
// counts, a start of the software — becomes an entry in an append-only
// Merkle log with signed checkpoints, which anyone can verify, mirror and
// witness.
//
// # Model
//
// A [Log] is a Tessera log (github.com/transparency-dev/tessera) with its
// POSIX driver in a directory of its own, <data>/log. The directory already
// has the C2SP tlog-tiles layout — checkpoint, tile/<level>/…, and the entry
// bundles tile/entries/… — so [Handler] serves its files as they are under
// /log/ (the checkpoint revalidated, tiles immutable; Tessera's private
// .state/ never). Checkpoints are C2SP signed notes with an Ed25519 key and
// the log's origin (by default "<host>/candor/data-use/v1"); the key is kept
// as a seed sealed with the master AEAD in the keyset store, next to the
// origin, which is fixed for the life of the log.
//
// Entries are canonical JSON defined by package api/logentry. Other roles
// record events through [Log.Record] (or [Log.Append]), which returns once
// the entry is durable — written, fsynced and integrated into the tree; a
// checkpoint covering it is published within about BatchMaxAge +
// CheckpointInterval ([Log.AwaitPublished] waits for it). Each event is
// logged once: an entry with the identity of one already logged
// (logentry.Entry.Identity: the file name of an export, the cutoff of a
// retention run, …) returns the logged index, so event hooks that deliver at
// least once can retry freely.
//
// The Log keeps every entry in memory, read from the entry bundles when it
// opens, for the public page ([Handler] at /transparency: the origin and
// key, the checkpoint, daily charts, a filterable entry list and copy-paste
// verification commands, rendered on the server without scripts or outside
// assets) and for the identity index.
//
// Package transparency/audit is the auditor that checks a running server
// from the outside.
package transparency
