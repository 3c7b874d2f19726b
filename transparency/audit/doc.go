// Package audit checks a Candor server from the outside, as anyone can: its
// transparency log of data use, and the export files it serves.
//
// [Run] fetches the log's checkpoint and verifies its signature with the
// log's public key; checks that it is consistent with the checkpoint of the
// previous run (kept in a state file), so a log that was rolled back,
// forked or rewritten is caught; downloads every entry and re-derives the
// whole Merkle tree, which must give the checkpoint's root hash (so every
// entry is included) and exactly the hashes of every tile; decodes every
// entry strictly (canonical JSON of the known schema, no undocumented
// fields); and then, for each exports location, checks that every root its
// roots.txt lists has an export_root.added entry (and that no logged root
// is served without being listed), that every line of each index.txt is
// byte for byte a file name with an export.published entry with the same
// SHA-256, contents and signatures by signing keys logged before it, and
// that no file older than the retention period is still listed or still
// served.
//
// The result is a [Report] of checks; the command `candor audit` prints it
// and exits non-zero when a check failed.
package audit
