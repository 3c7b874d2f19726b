package exporter

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/api/export"
)

// ExportsPath is the URL prefix of the export files.
const ExportsPath = "/exports/"

// Cache-Control values: zips never change once listed; the index and the
// key list change and are revalidated with their ETag.
const (
	cacheImmutable  = "public, max-age=86400, immutable"
	cacheRevalidate = "no-cache"
)

// Handler serves the export directory under /exports/:
//
//	/exports/roots.txt          the roots served (no-cache, ETag, 304)
//	/exports/<root>/index.txt   the live files (no-cache, ETag, 304)
//	/exports/<root>/<file>.zip  a file listed in index.txt (immutable, ETag)
//	/exports/<root>/keys        the public signing keys (JSON)
//
// It reads the files from disk, so it serves what any exporter sharing the
// directory wrote. It serves the files of roots listed in roots.txt only,
// zips listed in their index, and of those only the ones whose bytes have
// the SHA-256 the exporter recorded (checked once per size, time and
// inode): a damaged file answers 503 without cache headers and the
// exporter repairs it. The keys of every configured root are served.
type Handler struct {
	x    *Exporter
	dir  string
	keys func(ctx context.Context, root string) ([]PublishedKey, error)

	mu       sync.Mutex
	listings map[string]listing // parsed roots.txt and index.txt, by path
}

// listing is a roots.txt or index.txt as of its stat: its bytes, their
// ETag and its lines.
type listing struct {
	stat  fileStat
	body  []byte
	etag  string
	lines map[string]bool
}

// NewHandler returns the handler of x's directory and keys.
func NewHandler(x *Exporter) *Handler {
	return &Handler{x: x, dir: x.Dir(), keys: x.PublicKeys, listings: map[string]listing{}}
}

// Register adds the routes to e.
func (h *Handler) Register(e *echo.Echo) {
	get := []string{http.MethodGet, http.MethodHead}
	e.Match(get, ExportsPath+RootsName, h.serveRoots)
	e.Match(get, ExportsPath+":root/:file", h.serve)
}

func (h *Handler) serve(c echo.Context) error {
	root, file := c.Param("root"), c.Param("file")
	if !export.ValidRoot(root) {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	if file == "keys" {
		// App developers register the keys as soon as the root is
		// configured, before any file exists.
		return h.serveKeys(c, root)
	}
	if !h.lists(filepath.Join(h.dir, RootsName), "", root) {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	if file == IndexName {
		return h.serveListing(c, filepath.Join(h.dir, root, IndexName), root)
	}
	if _, _, ok := parseFileName(file); !ok {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	return h.serveZip(c, root, file)
}

func (h *Handler) serveRoots(c echo.Context) error {
	return h.serveListing(c, filepath.Join(h.dir, RootsName), "")
}

// serveListing serves roots.txt (root empty) or root's index.txt, as it is
// on disk.
func (h *Handler) serveListing(c echo.Context, path, root string) error {
	l, err := h.listing(path, root)
	if errors.Is(err, os.ErrNotExist) {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	if err != nil {
		return err
	}
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderContentType, "text/plain; charset=utf-8")
	hdr.Set(echo.HeaderCacheControl, cacheRevalidate)
	hdr.Set("ETag", l.etag)
	http.ServeContent(c.Response(), c.Request(), filepath.Base(path), time.Time{}, bytes.NewReader(l.body))
	return nil
}

func (h *Handler) serveZip(c echo.Context, root, file string) error {
	line := root + "/" + file
	if !h.lists(filepath.Join(h.dir, root, IndexName), root, line) {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	path := filepath.Join(h.dir, root, file)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return h.unavailable(c, line, "missing")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	want, ok, err := h.x.recordedDigest(c.Request().Context(), root, file)
	if err != nil {
		return err
	}
	if !ok {
		return h.unavailable(c, line, "not recorded")
	}
	got, st, hashed, err := h.x.digests.of(path, f)
	if err != nil {
		return err
	}
	if got != want {
		if hashed { // once per damage, not per request
			h.x.opts.Log.Warn("export: a listed file differs from its record; not served until repaired", "file", line)
		}
		return h.unavailable(c, line, "damaged")
	}
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderContentType, "application/zip")
	hdr.Set(echo.HeaderCacheControl, cacheImmutable)
	hdr.Set("ETag", `"`+want.String()+`"`)
	http.ServeContent(sendfileWriter{c.Response()}, c.Request(), file, st.mtime, f)
	return nil
}

// sendfileWriter is an echo response that passes ReadFrom on to the
// connection's writer, so that http.ServeContent copies a file with
// sendfile(2) rather than through a buffer (echo.Response has no ReadFrom).
// Status and size are kept as echo.Response.Write keeps them.
type sendfileWriter struct{ *echo.Response }

func (w sendfileWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.Committed {
		w.WriteHeader(http.StatusOK)
	}
	n, err := io.Copy(w.Writer, r)
	w.Size += n
	return n, err
}

// unavailable answers for a listed file that is missing, damaged or not
// recorded: 503 that no cache keeps, and a pass to repair or unlist it.
func (h *Handler) unavailable(c echo.Context, line, why string) error {
	h.x.requestRepair()
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderCacheControl, "no-store")
	hdr.Set("Retry-After", "60")
	return c.String(http.StatusServiceUnavailable, "export file "+line+" is "+why+"; it is being repaired\n")
}

// lists reports whether the listing at path (roots.txt when root is empty,
// else root's index.txt) holds line byte for byte. A listing not in the
// exact form lists nothing.
func (h *Handler) lists(path, root, line string) bool {
	l, err := h.listing(path, root)
	return err == nil && l.lines[line]
}

// listing returns the listing at path, read and parsed again only when its
// stat changes.
func (h *Handler) listing(path, root string) (listing, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return listing{}, err
	}
	st := statOf(fi)
	h.mu.Lock()
	l, ok := h.listings[path]
	h.mu.Unlock()
	if ok && l.stat == st {
		return l, nil
	}
	if l, err = readListing(path, root); err != nil {
		return listing{}, err
	}
	h.mu.Lock()
	if len(h.listings) >= maxListings {
		clear(h.listings)
	}
	h.listings[path] = l
	h.mu.Unlock()
	return l, nil
}

// maxListings bounds the listing cache; it is emptied when full.
const maxListings = 4096

func readListing(path, root string) (listing, error) {
	f, err := os.Open(path)
	if err != nil {
		return listing{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return listing{}, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return listing{}, err
	}
	var lines []string
	if root == "" {
		lines, err = export.ParseRoots(b)
	} else {
		lines, err = export.ParseIndex(b, root)
	}
	l := listing{stat: statOf(fi), body: b, etag: contentETag(b), lines: make(map[string]bool, len(lines))}
	if err != nil {
		return l, nil // lists nothing until rewritten
	}
	for _, line := range lines {
		l.lines[line] = true
	}
	return l, nil
}

func contentETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

func (h *Handler) serveKeys(c echo.Context, root string) error {
	keys, err := h.keys(c.Request().Context(), root)
	if errors.Is(err, ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []PublishedKey{}
	}
	b, err := json.MarshalIndent(keys, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderContentType, "application/json")
	hdr.Set(echo.HeaderCacheControl, cacheRevalidate)
	hdr.Set("ETag", contentETag(b))
	http.ServeContent(c.Response(), c.Request(), "keys.json", time.Time{}, bytes.NewReader(b))
	return nil
}
