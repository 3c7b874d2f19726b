package main

import (
	"os"
	"syscall"
	"testing"
)

func TestMain(m *testing.M) {
	// Candor refuses a data directory that others can enter, and the
	// tests' temporary directories are their data directories: create
	// them as a careful operator would (systemd's UMask=0077). The test of
	// the refusal sets wide modes itself.
	syscall.Umask(0o077)
	os.Exit(m.Run())
}
