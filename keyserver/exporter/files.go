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
	"sync"
	"time"

	"github.com/candor-en/candor/api/export"
)

// IndexName is the index file in every root directory, and RootsName the
// list of roots in the directory of the roots (see api/export).
const (
	IndexName = export.IndexName
	RootsName = export.RootsName
)

// tempPrefix starts the names of files being written; they are never listed
// or served. Those of a killed pass go when its window is redone, any other
// leftover with retention.
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
	return writeZipLevel(dir, name, f, signers, export.CompressionLevel, check)
}

func writeZipLevel(dir, name string, f *export.File, signers []export.Signer, level int, check func(export.Written) error) (export.Written, error) {
	var written export.Written
	var c func() error
	if check != nil {
		c = func() error { return check(written) }
	}
	err := writeFileAtomic(dir, name, func(w io.Writer) error {
		var err error
		written, err = export.WriteLevel(w, f, signers, level)
		return err
	}, c)
	return written, err
}

// rewriteZip regenerates dir/name from f and the recorded signatures, so
// that the zip has the recorded SHA-256 want. A file is compressed at the
// level of the release that wrote it, so each level files were ever written
// at is tried, the current one first.
func rewriteZip(dir, name string, f *export.File, signers []export.Signer, want Digest) error {
	var err error
	for _, level := range []int{export.CompressionLevel, export.LegacyCompressionLevel} {
		_, err = writeZipLevel(dir, name, f, signers, level, func(wr export.Written) error {
			if Digest(wr.ZipSHA256) != want {
				return errZipDiffers
			}
			return nil
		})
		if !errors.Is(err, errZipDiffers) {
			return err
		}
	}
	return err
}

// errZipDiffers reports that a regenerated zip does not have the recorded
// SHA-256.
var errZipDiffers = errors.New("regenerated zip differs from the recorded one")

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

// digestCache remembers the SHA-256 of files by path, valid while their
// stat is unchanged, so that passes and requests hash a file once rather
// than every time. It is safe for concurrent use.
type digestCache struct {
	mu sync.Mutex
	m  map[string]hashedFile
}

type hashedFile struct {
	stat   fileStat
	digest Digest
}

// maxDigests bounds the cache; it is emptied when full (the live files of
// every root fit many times over).
const maxDigests = 1 << 16

func newDigestCache() *digestCache { return &digestCache{m: map[string]hashedFile{}} }

func (c *digestCache) put(path string, st fileStat, d Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxDigests {
		clear(c.m)
	}
	c.m[path] = hashedFile{stat: st, digest: d}
}

func (c *digestCache) forget(path string) {
	c.mu.Lock()
	delete(c.m, path)
	c.mu.Unlock()
}

// of returns the SHA-256 of the open file f at path and its stat, hashing
// it only when its stat differs from the one remembered; hashed says
// whether it did.
func (c *digestCache) of(path string, f *os.File) (d Digest, st fileStat, hashed bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return Digest{}, fileStat{}, false, err
	}
	st = statOf(fi)
	c.mu.Lock()
	e, ok := c.m[path]
	c.mu.Unlock()
	if ok && e.stat == st {
		return e.digest, st, false, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size())); err != nil {
		return Digest{}, st, false, err
	}
	h.Sum(d[:0])
	c.put(path, st, d)
	return d, st, true, nil
}

// writeListing replaces dir/name (index.txt or roots.txt) with content,
// atomically, unless it already holds exactly that. It reports whether it
// wrote.
func writeListing(dir, name string, content []byte) (bool, error) {
	if cur, err := os.ReadFile(filepath.Join(dir, name)); err == nil && bytes.Equal(cur, content) {
		return false, nil
	}
	err := writeFileAtomic(dir, name, func(w io.Writer) error {
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
