package keyset

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrNotFound is returned by a Store when no keyset is stored under a name.
var ErrNotFound = errors.New("keyset: not found")

// Store is where encrypted keyset blobs are kept, typically implemented by an
// application storage adapter (for example a bbolt bucket). Blobs are opaque
// and must be returned byte for byte as saved.
type Store interface {
	// LoadKeyset returns the blob saved under name, or an error wrapping
	// ErrNotFound if there is none.
	LoadKeyset(ctx context.Context, name string) ([]byte, error)
	// SaveKeyset stores blob under name, replacing any previous blob.
	SaveKeyset(ctx context.Context, name string, blob []byte) error
}

// MemStore is an in-memory Store for tests and tools. The zero value is ready
// to use and it is safe for concurrent use.
type MemStore struct {
	mu    sync.Mutex
	blobs map[string][]byte
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{} }

// LoadKeyset returns a copy of the blob saved under name.
func (s *MemStore) LoadKeyset(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[name]
	if !ok {
		return nil, fmt.Errorf("keyset %q: %w", name, ErrNotFound)
	}
	return append([]byte(nil), b...), nil
}

// SaveKeyset stores a copy of blob under name.
func (s *MemStore) SaveKeyset(ctx context.Context, name string, blob []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blobs == nil {
		s.blobs = make(map[string][]byte)
	}
	s.blobs[name] = append([]byte(nil), blob...)
	return nil
}
