// Package export reads and writes the exposure key export files that phones
// download (docs/EXPORTS.md), byte-compatible with the Google/Apple
// Exposure Notification framework.
//
// An export file is a zip archive with two entries, in this order:
// export.bin, the 16-byte Header followed by a TemporaryExposureKeyExport
// protobuf (see export.proto), and export.sig, a TEKSignatureList protobuf
// holding one ECDSA P-256 signature over SHA-256 of the whole export.bin per
// signing key. Several signatures exist while a signing key is rotated: a
// phone that knows either key accepts the file.
//
// Write and Read are symmetric: Write turns a File into a signed zip, Read
// turns the zip back into the File, the raw export.bin and its Signatures,
// and Verify checks those signatures against known public keys. MarshalBin
// and UnmarshalBin convert export.bin alone. The types here are plain Go; the
// generated protobuf code lives in package exportpb and is only needed to
// decode.
//
// Encoding is on the exporter's hot path (a batch can hold a million keys),
// so MarshalBin appends the protobuf wire format by hand into one buffer of
// the exact size; tests check it against the generated code byte for byte.
package export

//go:generate protoc --proto_path=. --go_out=exportpb --go_opt=paths=source_relative export.proto
