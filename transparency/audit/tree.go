package audit

import (
	"bytes"
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
)

// tree is a log re-derived from its entries.
type tree struct {
	size uint64
	// entries are the raw entries, by index.
	entries [][]byte
	// root is the root hash of all entries; rootAt the root hash of the
	// first atSize entries (the previous checkpoint's size).
	root   []byte
	atSize uint64
	rootAt []byte
	// tileNodes[L] are the hashes at tree level 8L (the nodes tiles of
	// level L hold), by index.
	tileNodes [][][]byte
}

// deriveTree fetches the entry bundles of a log of size entries and
// re-derives its Merkle tree: the root hash, the root at atSize (when
// 0 < atSize ≤ size), and every node that a hash tile holds.
func deriveTree(ctx context.Context, f fetcher, size, atSize uint64) (*tree, error) {
	t := &tree{size: size, atSize: atSize}
	hasher := rfc6962.DefaultHasher
	rng := (&compact.RangeFactory{Hash: hasher.HashChildren}).NewEmptyRange(0)
	visit := func(id compact.NodeID, h []byte) {
		if id.Level%layout.TileHeight != 0 {
			return
		}
		l := int(id.Level / layout.TileHeight)
		for len(t.tileNodes) <= l {
			t.tileNodes = append(t.tileNodes, nil)
		}
		// Nodes of a level arrive in index order.
		if uint64(len(t.tileNodes[l])) == id.Index {
			t.tileNodes[l] = append(t.tileNodes[l], bytes.Clone(h))
		}
	}
	for i := uint64(0); i*layout.EntryBundleWidth < size; i++ {
		p := layout.PartialTileSize(0, i, size)
		raw, err := f.readBundle(ctx, i, p)
		if err != nil {
			return nil, fmt.Errorf("entry bundle %d: %w", i, err)
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return nil, fmt.Errorf("entry bundle %d: %w", i, err)
		}
		want := int(p)
		if p == 0 {
			want = layout.EntryBundleWidth
		}
		if len(b.Entries) < want {
			return nil, fmt.Errorf("entry bundle %d holds %d entries, the checkpoint needs %d", i, len(b.Entries), want)
		}
		for _, e := range b.Entries[:want] {
			t.entries = append(t.entries, e)
			if err := rng.Append(hasher.HashLeaf(e), visit); err != nil {
				return nil, err
			}
			if rng.End() == atSize {
				if t.rootAt, err = rng.GetRootHash(nil); err != nil {
					return nil, err
				}
			}
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		empty := hasher.EmptyRoot()
		root = empty[:]
	}
	t.root = root
	return t, nil
}

// checkTiles compares every hash tile of the tree with the log's: each must
// hold exactly the hashes re-derived from the entries. It returns the
// problems found.
func checkTiles(ctx context.Context, f fetcher, t *tree) (checked int, problems []string) {
	for level := uint64(0); level < uint64(len(t.tileNodes)); level++ {
		nodes := t.tileNodes[level]
		for index := uint64(0); index*layout.TileWidth < uint64(len(nodes)); index++ {
			p := layout.PartialTileSize(level, index, t.size)
			want := nodes[index*layout.TileWidth : min(uint64(len(nodes)), (index+1)*layout.TileWidth)]
			path := layout.TilePath(level, index, p)
			raw, err := f.readTile(ctx, level, index, p)
			checked++
			if err != nil {
				problems = append(problems, fmt.Sprintf("tile %s: %v", path, err))
				continue
			}
			var tile api.HashTile
			if err := tile.UnmarshalText(raw); err != nil {
				problems = append(problems, fmt.Sprintf("tile %s: %v", path, err))
				continue
			}
			if len(tile.Nodes) < len(want) {
				problems = append(problems, fmt.Sprintf("tile %s holds %d hashes, want %d", path, len(tile.Nodes), len(want)))
				continue
			}
			for i, h := range want {
				if !bytes.Equal(tile.Nodes[i], h) {
					problems = append(problems, fmt.Sprintf("tile %s: hash %d is not the hash of the entries it covers (tampered tile?)", path, i))
					break
				}
			}
		}
	}
	return checked, problems
}
