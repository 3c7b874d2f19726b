package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	tessera "github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
)

// LogPath is the URL prefix of the transparency log of data use, a C2SP
// tlog-tiles log: /log/checkpoint and /log/tile/….
const LogPath = "/log/"

// maxCheckpointSize bounds a checkpoint note.
const maxCheckpointSize = 64 << 10

// maxBundleSize bounds an entry bundle: 256 entries of at most 64 KiB.
const maxBundleSize = layout.EntryBundleWidth * (2 + 1<<16)

// ErrLogMismatch reports log entries that do not hash to the checkpoint's
// root: the log served something other than what it committed to.
var ErrLogMismatch = errors.New("log entries do not match the checkpoint")

// Checkpoint is the transparency log's signed statement of its size and
// root hash.
type Checkpoint struct {
	// Origin names the log, e.g. "candor.example.org/candor/data-use/v1".
	Origin string
	// Size is the number of entries.
	Size uint64
	// Hash is the RFC 6962 Merkle tree root hash of the entries.
	Hash []byte
	// Verified reports whether the signature was checked against the key
	// given with WithLogKey.
	Verified bool
	// Raw is the checkpoint note as served (body and signatures).
	Raw []byte
}

// LogCheckpoint fetches the log's current checkpoint (GET /log/checkpoint).
// With WithLogKey, the note's signature by that key must verify and its
// origin must be the key's name; without, the checkpoint is parsed only
// (Verified false) and must not be trusted further than the connection.
func (c *Client) LogCheckpoint(ctx context.Context) (*Checkpoint, error) {
	raw, err := c.get(ctx, LogPath+layout.CheckpointPath, maxCheckpointSize)
	if err != nil {
		return nil, fmt.Errorf("log checkpoint: %w", err)
	}
	out := &Checkpoint{Raw: raw}
	if c.logKey != nil {
		cp, _, _, err := log.ParseCheckpoint(raw, c.logKey.Name(), c.logKey)
		if err != nil {
			return nil, fmt.Errorf("log checkpoint: %w", err)
		}
		out.Origin, out.Size, out.Hash, out.Verified = cp.Origin, cp.Size, cp.Hash, true
		return out, nil
	}
	body, _, ok := bytes.Cut(raw, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("log checkpoint: not a signed note (no blank line before the signatures)")
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal(append(body, '\n')); err != nil {
		return nil, fmt.Errorf("log checkpoint: %w", err)
	}
	out.Origin, out.Size, out.Hash = cp.Origin, cp.Size, cp.Hash
	return out, nil
}

// LogEntries downloads every entry of the log up to cp.Size and checks that
// they hash to cp.Hash, so that what it returns is exactly what the
// checkpoint commits to (ErrLogMismatch otherwise). Entries are the
// canonical JSON records of data use, oldest first. It reads the whole log:
// fine for the thousands of entries a deployment writes in a year.
func (c *Client) LogEntries(ctx context.Context, cp *Checkpoint) ([][]byte, error) {
	entries := make([][]byte, 0, cp.Size)
	for ri := range layout.Range(0, cp.Size, cp.Size) {
		p := layout.EntriesPath(ri.Index, ri.Partial)
		raw, err := c.get(ctx, LogPath+p, maxBundleSize)
		if err != nil {
			return nil, fmt.Errorf("log entries: %w", err)
		}
		var b tessera.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return nil, fmt.Errorf("log entries: %s: %w", p, err)
		}
		if uint(len(b.Entries)) < ri.First+ri.N {
			return nil, fmt.Errorf("log entries: %s holds %d entries, want %d: %w", p, len(b.Entries), ri.First+ri.N, ErrLogMismatch)
		}
		entries = append(entries, b.Entries[ri.First:ri.First+ri.N]...)
	}
	root, err := rootHash(entries)
	if err != nil {
		return nil, fmt.Errorf("log entries: %w", err)
	}
	if !bytes.Equal(root, cp.Hash) {
		return nil, fmt.Errorf("log entries: %d entries hash to %x, checkpoint says %x: %w", len(entries), root, cp.Hash, ErrLogMismatch)
	}
	return entries, nil
}

// rootHash is the RFC 6962 Merkle tree root of entries.
func rootHash(entries [][]byte) ([]byte, error) {
	h := rfc6962.DefaultHasher
	if len(entries) == 0 {
		return h.EmptyRoot(), nil
	}
	rf := compact.RangeFactory{Hash: h.HashChildren}
	r := rf.NewEmptyRange(0)
	for _, e := range entries {
		if err := r.Append(h.HashLeaf(e), nil); err != nil {
			return nil, err
		}
	}
	return r.GetRootHash(nil)
}
