// Package exportpb is the Go code generated from ../export.proto, the
// protobuf messages of export files. Use package export to read and write
// files; this package is for code that needs the raw messages.
package exportpb
