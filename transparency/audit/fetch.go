package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/transparency-dev/tessera/api/layout"
)

// Limits on what the auditor reads, so a hostile server cannot exhaust it.
const (
	maxCheckpoint = 1 << 20
	maxTile       = layout.TileWidth * 32
	maxBundle     = layout.EntryBundleWidth * (2 + 1<<16)
	maxIndex      = 64 << 20
	maxZip        = 256 << 20
)

// fetcher reads URLs relative to a base.
type fetcher struct {
	client *http.Client
	base   *url.URL
}

// errStatus is a response other than 200 or 404.
type errStatus struct {
	URL    string
	Status int
}

func (e errStatus) Error() string { return fmt.Sprintf("GET %s: HTTP %d", e.URL, e.Status) }

// get returns the body at path (relative to the base), or an error wrapping
// os.ErrNotExist for a 404.
func (f fetcher) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	u, err := f.base.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("URL %q: %w", path, err)
	}
	return getURL(ctx, f.client, u.String(), limit)
}

func getURL(ctx context.Context, client *http.Client, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusGone:
		return nil, fmt.Errorf("GET %s: %w", u, os.ErrNotExist)
	default:
		return nil, errStatus{URL: u, Status: resp.StatusCode}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: more than %d bytes", u, limit)
	}
	return b, nil
}

// status returns the HTTP status of a HEAD of u (a GET when HEAD is not
// allowed), without reading a body.
func status(ctx context.Context, client *http.Client, u string) (int, error) {
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", method, u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			return resp.StatusCode, nil
		}
	}
	return http.StatusMethodNotAllowed, nil
}

// readTile returns the tile (level, index) of a tree of size whose width is
// w (256 for a full tile), falling back to the full tile when the partial
// one is gone; only the first w hashes are returned.
func (f fetcher) readTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	b, err := f.get(ctx, layout.TilePath(level, index, p), maxTile)
	if p > 0 && errors.Is(err, os.ErrNotExist) {
		b, err = f.get(ctx, layout.TilePath(level, index, 0), maxTile)
	}
	return b, err
}

// readBundle returns entry bundle index of partial width p, falling back to
// the full bundle when the partial one is gone.
func (f fetcher) readBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	b, err := f.get(ctx, layout.EntriesPath(index, p), maxBundle)
	if p > 0 && errors.Is(err, os.ErrNotExist) {
		b, err = f.get(ctx, layout.EntriesPath(index, 0), maxBundle)
	}
	return b, err
}
