package keyset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	tinkkeyset "github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// maxMasterFileSize bounds how much of a master key file is read.
const maxMasterFileSize = 1 << 20

// OpenMasterFile returns the master AEAD stored at path, a cleartext Tink
// keyset (AES256-GCM when created here) in Tink's JSON format.
//
// If path does not exist, a new keyset is generated and written atomically
// (temporary file, fsync, then linked into place without overwriting a file
// another process may have created concurrently) with mode 0600. An existing
// file that is not a regular file or that is accessible by group or others
// is refused: the file's permissions are the master key's only protection.
//
// OpenMasterFile is meant for the embedded, single-host deployment. In
// production pass a KMS-backed [tink.AEAD] to [Open] instead.
func OpenMasterFile(path string) (tink.AEAD, error) {
	h, err := readMasterFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		h, err = createMasterFile(path)
	}
	if err != nil {
		return nil, err
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("keyset: master key %s: %w", path, err)
	}
	return a, nil
}

func readMasterFile(path string) (*tinkkeyset.Handle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyset: open master key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyset: stat master key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keyset: master key %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keyset: master key %s has mode %v, refusing a file accessible by group or others (chmod 600 it)", path, fi.Mode().Perm())
	}
	h, err := insecurecleartextkeyset.Read(tinkkeyset.NewJSONReader(io.LimitReader(f, maxMasterFileSize)))
	if err != nil {
		return nil, fmt.Errorf("keyset: parse master key %s: %w", path, err)
	}
	return h, nil
}

func createMasterFile(path string) (*tinkkeyset.Handle, error) {
	h, err := tinkkeyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("keyset: generate master key: %w", err)
	}
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, tinkkeyset.NewJSONWriter(&buf)); err != nil {
		return nil, fmt.Errorf("keyset: serialize master key: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".master-key-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("keyset: create master key: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // After the link (or a failure) the temporary name is garbage.
	if err := writeSynced(tmp, buf.Bytes()); err != nil {
		return nil, fmt.Errorf("keyset: write master key: %w", err)
	}
	// A hard link, unlike rename, never replaces a master key that another
	// process created in the meantime; losing that key would make every
	// keyset it encrypted unreadable.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readMasterFile(path)
		}
		// Hard links unsupported (some filesystems): fall back to rename.
		if _, statErr := os.Lstat(path); statErr == nil {
			return readMasterFile(path)
		}
		if err := os.Rename(tmpName, path); err != nil {
			return nil, fmt.Errorf("keyset: install master key: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("keyset: install master key: %w", err)
	}
	return h, nil
}

// writeSynced writes b to f with mode 0600, fsyncs and closes it.
func writeSynced(f *os.File, b []byte) error {
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir fsyncs a directory so that a new entry in it is durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
