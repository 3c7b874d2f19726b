package record

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/candor-en/candor/keyserver/exporter"
)

// EncodeBatchKeys encodes a batch's padding and revised keys as two
// length-prefixed byte strings, the layout both backends store.
func EncodeBatchKeys(b *exporter.Batch) []byte {
	out := make([]byte, 0, 8+len(b.Padding)+len(b.Revised))
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Padding)))
	out = append(out, b.Padding...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Revised)))
	return append(out, b.Revised...)
}

// DecodeBatchKeys sets b's padding and revised keys from a record written by
// EncodeBatchKeys.
func DecodeBatchKeys(v []byte, b *exporter.Batch) error {
	next := func() ([]byte, bool) {
		if len(v) < 4 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(v)
		if uint64(len(v)-4) < uint64(n) {
			return nil, false
		}
		out := bytes.Clone(v[4 : 4+n])
		v = v[4+n:]
		return out, true
	}
	var ok1, ok2 bool
	b.Padding, ok1 = next()
	b.Revised, ok2 = next()
	if !ok1 || !ok2 || len(v) != 0 {
		return errors.New("bad batch keys record")
	}
	return nil
}
