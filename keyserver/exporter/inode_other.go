//go:build !unix

package exporter

import "io/fs"

// inode returns 0 where inode numbers are not available.
func inode(fs.FileInfo) uint64 { return 0 }
