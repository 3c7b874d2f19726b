package transparency

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// URL paths the Handler serves.
const (
	// LogPath is the prefix of the tlog-tiles files: LogPath+"checkpoint",
	// LogPath+"tile/…".
	LogPath = "/log/"
	// PagePath is the public page.
	PagePath = "/transparency"
)

// Cache-Control values: the checkpoint changes and is revalidated; tiles
// and entry bundles (partial ones included) never change once written.
const (
	cacheCheckpoint = "no-cache"
	cacheTile       = "public, max-age=31536000, immutable"
	cachePage       = "no-cache"
	cacheStyle      = "public, max-age=3600"
)

// pageCSP allows the page nothing but its own style sheet.
const pageCSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

//go:embed assets
var assets embed.FS

// logFileRE is every path a tlog-tiles client asks for: the checkpoint, hash
// tiles and entry bundles, full or partial. Anything else — Tessera's
// .state/ directory, its temporary files, traversal — is not served.
var logFileRE = regexp.MustCompile(`^(checkpoint|tile/(entries|[0-9]|[1-5][0-9]|6[0-3])/(x[0-9]{3}/)*[0-9]{3}(\.p/([1-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5]))?)$`)

// Handler serves the log and its public page:
//
//	/log/checkpoint          the latest signed checkpoint (no-cache)
//	/log/tile/…              hash tiles and entry bundles (immutable)
//	/transparency            the public page
//	/transparency/key        the checkpoint verifier key (text)
//	/transparency/entries/N  entry N as logged (JSON)
//	/transparency/style.css  the page's style sheet
type Handler struct {
	log  *Log
	root *os.Root
	page *template.Template
	css  []byte
}

// NewHandler returns the handler of l.
func NewHandler(l *Log) (*Handler, error) {
	root, err := os.OpenRoot(l.Dir())
	if err != nil {
		return nil, fmt.Errorf("transparency: serve %s: %w", l.Dir(), err)
	}
	page, err := pageTemplate()
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("transparency: page template: %w", err)
	}
	css, err := assets.ReadFile("assets/style.css")
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("transparency: style sheet: %w", err)
	}
	return &Handler{log: l, root: root, page: page, css: css}, nil
}

// Close releases the log directory.
func (h *Handler) Close() error { return h.root.Close() }

// Register adds the routes to e.
func (h *Handler) Register(e *echo.Echo) {
	get := []string{http.MethodGet, http.MethodHead}
	e.Match(get, LogPath+"*", h.serveLog)
	e.Match(get, PagePath, h.servePage)
	e.Match(get, PagePath+"/style.css", h.serveStyle)
	e.Match(get, PagePath+"/key", h.serveKey)
	e.Match(get, PagePath+"/entries/:index", h.serveEntry)
}

func (h *Handler) serveLog(c echo.Context) error {
	name := c.Param("*")
	if !logFileRE.MatchString(name) {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	f, err := h.root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
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
	if !fi.Mode().IsRegular() {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	hdr := c.Response().Header()
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if name == "checkpoint" {
		hdr.Set(echo.HeaderContentType, "text/plain; charset=utf-8")
		hdr.Set(echo.HeaderCacheControl, cacheCheckpoint)
	} else {
		hdr.Set(echo.HeaderContentType, "application/octet-stream")
		hdr.Set(echo.HeaderCacheControl, cacheTile)
	}
	http.ServeContent(c.Response(), c.Request(), "", fi.ModTime(), f)
	return nil
}

func (h *Handler) servePage(c echo.Context) error {
	req := c.Request()
	f, ferr := ParseFilter(req.URL.Query())
	if ferr != nil {
		f = Filter{Page: 1}
	}
	cp, cpErr := h.log.Checkpoint(req.Context())
	d := buildPage(h.log, cp, cpErr, f, ferr, baseURL(req), h.log.Now())
	var buf bytes.Buffer
	if err := h.page.Execute(&buf, d); err != nil {
		return fmt.Errorf("transparency page: %w", err)
	}
	hdr := c.Response().Header()
	hdr.Set("Content-Security-Policy", pageCSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set(echo.HeaderCacheControl, cachePage)
	status := http.StatusOK
	if ferr != nil {
		status = http.StatusBadRequest
	}
	return c.HTMLBlob(status, buf.Bytes())
}

func (h *Handler) serveStyle(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderCacheControl, cacheStyle)
	return c.Blob(http.StatusOK, "text/css; charset=utf-8", h.css)
}

func (h *Handler) serveKey(c echo.Context) error {
	c.Response().Header().Set("Access-Control-Allow-Origin", "*")
	return c.String(http.StatusOK, h.log.VerifierKey()+"\n")
}

func (h *Handler) serveEntry(c echo.Context) error {
	idx, err := strconv.ParseUint(c.Param("index"), 10, 64)
	if err != nil {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	cp, err := h.log.Checkpoint(c.Request().Context())
	if err != nil || idx >= cp.Size {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	r, ok := h.log.Entry(idx)
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	hdr := c.Response().Header()
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set(echo.HeaderCacheControl, cacheTile)
	return c.Blob(http.StatusOK, "application/json", r.Raw)
}

// baseURL is the server's URL as the client reached it, for the page's
// copy-paste commands (shown only, never followed).
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return scheme + "://" + host
}
