// Package memory is an in-memory store for tests and tools. It implements the
// same interfaces as storage/bolt, with the same semantics, but keeps
// nothing across restarts.
package memory

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/candor-en/candor/keyserver"
)

// Store is an in-memory keyserver.ExposureStore and keyserver.AuthorityStore.
type Store struct {
	mu          sync.Mutex
	exposures   map[[keyserver.KeyLength]byte]keyserver.Exposure
	authorities map[string]keyserver.HealthAuthority
	apps        map[string]keyserver.App
}

// New returns an empty store.
func New() *Store {
	return &Store{
		exposures:   map[[keyserver.KeyLength]byte]keyserver.Exposure{},
		authorities: map[string]keyserver.HealthAuthority{},
		apps:        map[string]keyserver.App{},
	}
}

// Publish implements keyserver.ExposureStore.
func (s *Store) Publish(ctx context.Context, keys [][keyserver.KeyLength]byte, plan func(map[[keyserver.KeyLength]byte]*keyserver.Exposure) (*keyserver.Change, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	existing := map[[keyserver.KeyLength]byte]*keyserver.Exposure{}
	for _, k := range keys {
		if e, ok := s.exposures[k]; ok {
			existing[k] = &e
		}
	}
	ch, err := plan(existing)
	if err != nil {
		return err
	}
	for _, e := range ch.Insert {
		s.exposures[e.Key] = *e
	}
	for _, e := range ch.Revise {
		s.exposures[e.Key] = *e
	}
	return nil
}

// Exposure returns one stored exposure.
func (s *Store) Exposure(ctx context.Context, key [keyserver.KeyLength]byte) (*keyserver.Exposure, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.exposures[key]
	if !ok {
		return nil, keyserver.ErrNotFound
	}
	return &e, nil
}

// ScanExportExposures implements exporter.ExposureSource: it calls fn for
// the exposures created (or, if revised, revised) in [from, to), oldest
// first. It never skips a record.
func (s *Store) ScanExportExposures(ctx context.Context, revised bool, from, to time.Time, fn func(*keyserver.Exposure) error) (int, error) {
	if revised {
		return 0, s.scan(from, to, func(e *keyserver.Exposure) time.Time { return e.RevisedAt }, func(e *keyserver.Exposure) bool { return e.Revised }, fn)
	}
	return 0, s.scan(from, to, func(e *keyserver.Exposure) time.Time { return e.CreatedAt }, func(e *keyserver.Exposure) bool { return true }, fn)
}

func (s *Store) scan(from, to time.Time, at func(*keyserver.Exposure) time.Time, keep func(*keyserver.Exposure) bool, fn func(*keyserver.Exposure) error) error {
	s.mu.Lock()
	var out []*keyserver.Exposure
	for _, e := range s.exposures {
		e := e
		t := at(&e)
		if keep(&e) && !t.Before(from) && t.Before(to) {
			out = append(out, &e)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return at(out[i]).Before(at(out[j])) })
	for _, e := range out {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// DeleteExposuresCreatedBefore removes exposures created before cutoff.
func (s *Store) DeleteExposuresCreatedBefore(ctx context.Context, cutoff time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, e := range s.exposures {
		if e.CreatedAt.Before(cutoff) {
			delete(s.exposures, k)
			n++
		}
	}
	return n, nil
}

// HealthAuthority implements keyserver.AuthorityStore.
func (s *Store) HealthAuthority(ctx context.Context, issuer string) (*keyserver.HealthAuthority, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.authorities[issuer]
	if !ok {
		return nil, fmt.Errorf("health authority %q: %w", issuer, keyserver.ErrNotFound)
	}
	h.Keys = append([]keyserver.AuthorityKey(nil), h.Keys...)
	return &h, nil
}

// HealthAuthorities implements keyserver.AuthorityStore.
func (s *Store) HealthAuthorities(ctx context.Context) ([]*keyserver.HealthAuthority, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*keyserver.HealthAuthority
	for _, h := range s.authorities {
		h := h
		h.Keys = append([]keyserver.AuthorityKey(nil), h.Keys...)
		out = append(out, &h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Issuer < out[j].Issuer })
	return out, nil
}

// PutHealthAuthority implements keyserver.AuthorityStore.
func (s *Store) PutHealthAuthority(ctx context.Context, h *keyserver.HealthAuthority) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *h
	c.Keys = append([]keyserver.AuthorityKey(nil), h.Keys...)
	s.authorities[h.Issuer] = c
	return nil
}

// App implements keyserver.AuthorityStore.
func (s *Store) App(ctx context.Context, id string) (*keyserver.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		return nil, fmt.Errorf("app %q: %w", id, keyserver.ErrNotFound)
	}
	a.Authorities = append([]string(nil), a.Authorities...)
	return &a, nil
}

// Apps implements keyserver.AuthorityStore.
func (s *Store) Apps(ctx context.Context) ([]*keyserver.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*keyserver.App
	for _, a := range s.apps {
		a := a
		a.Authorities = append([]string(nil), a.Authorities...)
		out = append(out, &a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// PutApp implements keyserver.AuthorityStore.
func (s *Store) PutApp(ctx context.Context, a *keyserver.App) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *a
	c.Authorities = append([]string(nil), a.Authorities...)
	s.apps[a.ID] = c
	return nil
}
