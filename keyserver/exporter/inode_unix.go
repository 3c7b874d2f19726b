//go:build unix

package exporter

import (
	"io/fs"
	"syscall"
)

// inode returns the inode number of fi, so that a file replaced by another
// of the same size and time is noticed.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
