package exporter

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/candor-en/candor/api/export"
)

// IndexName is the index file in every root directory.
const IndexName = "index.txt"

// tempPrefix starts the names of files being written; they are never listed
// or served, and leftovers of a crash are swept by retention.
const tempPrefix = ".tmp-"

// File and directory permissions: export files are public.
const (
	filePerm = 0o644
	dirPerm  = 0o755
)

// recordingSigner passes signing on to a Signer and keeps the signature.
type recordingSigner struct {
	export.Signer
	sig []byte
}

func (s *recordingSigner) Sign(data []byte) ([]byte, error) {
	sig, err := s.Signer.Sign(data)
	s.sig = sig
	return sig, err
}

// replaySigner returns a recorded signature, provided data is the export.bin
// it was made over; it lets a regenerated zip be byte-identical.
type replaySigner struct {
	info export.SignatureInfo
	bin  Digest
	sig  []byte
}

func (s replaySigner) Info() export.SignatureInfo { return s.info }

func (s replaySigner) Sign(data []byte) ([]byte, error) {
	if Digest(sha256.Sum256(data)) != s.bin {
		return nil, errContentChanged
	}
	return s.sig, nil
}

// errContentChanged reports that a file's export.bin cannot be rebuilt as
// recorded: the keys in the store changed.
var errContentChanged = errors.New("export.bin differs from the recorded one (keys in the store changed)")

// writeFileAtomic writes a file through fn into a temporary file in dir,
// syncs it, calls check (when not nil) and renames it to name. It does not
// sync dir; call syncDir after the last rename. On error nothing is left
// behind and name is untouched.
func writeFileAtomic(dir, name string, fn func(w io.Writer) error, check func() error) error {
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(dir, tempPrefix+name+"-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := fn(bw); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	if check != nil {
		if err := check(); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("publish %s: %w", name, err)
	}
	ok = true
	return nil
}

// syncDir makes renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// writeZip writes f signed by signers as dir/name, atomically. check, when
// not nil, vets the written file before it replaces name.
func writeZip(dir, name string, f *export.File, signers []export.Signer, check func(export.Written) error) (export.Written, error) {
	var written export.Written
	var c func() error
	if check != nil {
		c = func() error { return check(written) }
	}
	err := writeFileAtomic(dir, name, func(w io.Writer) error {
		var err error
		written, err = export.Write(w, f, signers)
		return err
	}, c)
	return written, err
}

// fileStat identifies a file's bytes cheaply: a file verified once is not
// hashed again while its size, modification time and inode stay the same.
type fileStat struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func statOf(fi fs.FileInfo) fileStat {
	return fileStat{size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}
}

// hashFile returns the SHA-256 and stat of the file at path.
func hashFile(path string) (Digest, fileStat, error) {
	f, err := os.Open(path)
	if err != nil {
		return Digest{}, fileStat{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Digest{}, fileStat{}, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Digest{}, fileStat{}, err
	}
	var d Digest
	h.Sum(d[:0])
	return d, statOf(fi), nil
}

// indexContent returns index.txt for the sorted lines: newline-separated,
// without a trailing newline (as Google's reference server writes it);
// empty when there is no file.
func indexContent(lines []string) []byte {
	return []byte(strings.Join(lines, "\n"))
}

// parseIndex returns the lines of an index.
func parseIndex(b []byte) []string {
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// writeIndex replaces dir/index.txt with content, atomically, unless it
// already holds exactly that. It reports whether it wrote.
func writeIndex(dir string, content []byte) (bool, error) {
	if cur, err := os.ReadFile(filepath.Join(dir, IndexName)); err == nil && bytes.Equal(cur, content) {
		return false, nil
	}
	err := writeFileAtomic(dir, IndexName, func(w io.Writer) error {
		_, err := w.Write(content)
		return err
	}, nil)
	if err != nil {
		return false, err
	}
	return true, syncDir(dir)
}

// parseFileName parses <start>-<end>-<NNNNN>.zip.
func parseFileName(name string) (w Window, num int, ok bool) {
	base, found := strings.CutSuffix(name, ".zip")
	if !found {
		return Window{}, 0, false
	}
	parts := strings.Split(base, "-")
	if len(parts) != 3 || len(parts[2]) != 5 {
		return Window{}, 0, false
	}
	start, err1 := strconv.ParseInt(parts[0], 10, 64)
	end, err2 := strconv.ParseInt(parts[1], 10, 64)
	n, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || end <= start || n < 1 {
		return Window{}, 0, false
	}
	return Window{Start: time.Unix(start, 0).UTC(), End: time.Unix(end, 0).UTC()}, n, true
}
