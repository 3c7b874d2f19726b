// Package logentry is the schema of the entries of Candor's transparency log
// of data use (docs/TRANSPARENCY.md): what each entry type claims, its canonical JSON
// encoding, and a strict decoder for auditors.
//
// # Envelope
//
// Every entry is one JSON object with four members, for example
//
//	{"data":{...},"schema":1,"time":"2025-03-01T10:00:00Z","type":"export.published"}
//
// where:
//
//   - schema is the version of this schema ([SchemaVersion]); a change that
//     old auditors cannot read raises it.
//   - type names the body in data ([TypeExportPublished], …).
//   - time is when the event was recorded, in UTC and truncated to the hour:
//     the log is public, and a coarse time keeps it from being matched with
//     anyone's upload or visit.
//   - data is the type's body, one Go struct of this package per type.
//
// An entry describes a public artifact (an export file, a signing key, a
// policy) or an aggregate (a retention run, a day's counts), never one upload
// or one verification code, and nothing in it identifies a person. Counts of
// people's actions are [Count]s, which show values below [CountThreshold] as
// "<10".
//
// # Canonical encoding
//
// Entries are written in a canonical form so that the same event always has
// the same bytes (and so the same Merkle leaf): the JSON Canonicalization
// Scheme of RFC 8785 restricted to the values entries use — object members
// sorted by key, no insignificant whitespace, strings with only the escapes
// JSON requires, numbers as integers without exponent, no duplicate keys.
// [Canonicalize] produces it from any JSON value of that domain; [Entry.Marshal]
// writes it; [Unmarshal] accepts only it, so an auditor notices an entry that
// was written any other way.
package logentry
