package exporter

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/keyserver"
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
//	/exports/<root>/index.txt   the live files (no-cache, ETag, 304)
//	/exports/<root>/<file>.zip  a file listed in index.txt (immutable, ETag)
//	/exports/<root>/keys        the public signing keys (JSON)
//
// It reads the files from disk, so it serves what any exporter sharing the
// directory wrote; a zip not listed in the index is not served.
type Handler struct {
	dir  string
	keys func(ctx context.Context, root string) ([]PublishedKey, error)

	mu    sync.Mutex
	etags map[string]etagEntry // by path
}

type etagEntry struct {
	stat fileStat
	etag string
}

// maxETags bounds the ETag cache; it is emptied when full.
const maxETags = 4096

// NewHandler returns the handler of x's directory and keys.
func NewHandler(x *Exporter) *Handler {
	return &Handler{dir: x.Dir(), keys: x.PublicKeys, etags: map[string]etagEntry{}}
}

// Register adds the routes to e.
func (h *Handler) Register(e *echo.Echo) {
	e.Match([]string{http.MethodGet, http.MethodHead}, ExportsPath+":root/:file", h.serve)
}

func (h *Handler) serve(c echo.Context) error {
	root, file := c.Param("root"), c.Param("file")
	if !rootPattern.MatchString(root) {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	switch file {
	case IndexName:
		return h.serveIndex(c, root)
	case "keys":
		return h.serveKeys(c, root)
	}
	if _, _, ok := parseFileName(file); !ok {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	return h.serveZip(c, root, file)
}

func (h *Handler) serveIndex(c echo.Context, root string) error {
	path := filepath.Join(h.dir, root, IndexName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	if err != nil {
		return err
	}
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderContentType, "text/plain; charset=utf-8")
	hdr.Set(echo.HeaderCacheControl, cacheRevalidate)
	hdr.Set("ETag", contentETag(b))
	http.ServeContent(c.Response(), c.Request(), IndexName, time.Time{}, bytes.NewReader(b))
	return nil
}

func (h *Handler) serveZip(c echo.Context, root, file string) error {
	index, err := os.ReadFile(filepath.Join(h.dir, root, IndexName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if !listed(index, root+"/"+file) {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	path := filepath.Join(h.dir, root, file)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	etag, err := h.fileETag(path, f, fi)
	if err != nil {
		return err
	}
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderContentType, "application/zip")
	hdr.Set(echo.HeaderCacheControl, cacheImmutable)
	hdr.Set("ETag", etag)
	http.ServeContent(c.Response(), c.Request(), file, fi.ModTime(), f)
	return nil
}

// listed reports whether the index holds line.
func listed(index []byte, line string) bool {
	for len(index) > 0 {
		l := index
		if i := bytes.IndexByte(index, '\n'); i >= 0 {
			l, index = index[:i], index[i+1:]
		} else {
			index = nil
		}
		if string(bytes.TrimSpace(l)) == line {
			return true
		}
	}
	return false
}

// fileETag returns the strong ETag of the open file f at path: its SHA-256,
// cached while its stat is unchanged.
func (h *Handler) fileETag(path string, f *os.File, fi os.FileInfo) (string, error) {
	st := statOf(fi)
	h.mu.Lock()
	e, ok := h.etags[path]
	h.mu.Unlock()
	if ok && e.stat == st {
		return e.etag, nil
	}
	hash := sha256.New()
	if _, err := f.WriteTo(hash); err != nil {
		return "", err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return "", err
	}
	etag := `"` + hex.EncodeToString(hash.Sum(nil)) + `"`
	h.mu.Lock()
	if len(h.etags) >= maxETags {
		clear(h.etags)
	}
	h.etags[path] = etagEntry{stat: st, etag: etag}
	h.mu.Unlock()
	return etag, nil
}

func contentETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

func (h *Handler) serveKeys(c echo.Context, root string) error {
	keys, err := h.keys(c.Request().Context(), root)
	if errors.Is(err, keyserver.ErrNotFound) {
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
