package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/api/export"
)

// Limits on what the client reads from the server, so that a broken or
// hostile server cannot exhaust memory.
const (
	// MaxJSONResponse bounds a JSON answer of the device and admin APIs.
	MaxJSONResponse = 1 << 20
	// MaxIndexSize bounds an export index.
	MaxIndexSize = 16 << 20
	// MaxExportSize bounds a downloaded export zip: the largest export.bin
	// Read accepts, plus room for the signatures and the zip structure.
	MaxExportSize = export.MaxBinSize + 2*export.MaxSigSize
)

// DefaultTimeout is the timeout of the HTTP client New uses when none is
// given with WithHTTPClient.
const DefaultTimeout = 60 * time.Second

// Client calls one Candor deployment. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	http       *http.Client
	exportKeys map[export.SignatureInfo]*ecdsa.PublicKey
	fetchKeys  bool
	logKey     note.Verifier
	padding    bool
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient makes the Client send its requests with hc (for a proxy,
// custom TLS, timeouts or a test server's client). The default is an
// http.Client with DefaultTimeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("WithHTTPClient: nil *http.Client")
		}
		c.http = hc
		return nil
	}
}

// WithExportKeys pins the public keys that export files must be signed
// with, by the (key id, key version) the files name: what an app is
// configured with. DownloadExport accepts a file only if a signature by one
// of these keys verifies. The map is copied.
func WithExportKeys(keys map[export.SignatureInfo]*ecdsa.PublicKey) Option {
	return func(c *Client) error {
		for si, k := range keys {
			if k == nil {
				return fmt.Errorf("WithExportKeys: nil key for %s", si)
			}
		}
		c.exportKeys = maps.Clone(keys)
		return nil
	}
}

// WithFetchedExportKeys makes DownloadExport verify files against the keys
// the server itself lists under /exports/<root>/keys when no pinned key
// (WithExportKeys) matches. Whoever controls the server or the connection
// controls those keys, so use it only for tests, demos and monitoring of
// one's own deployment; phones must pin keys.
func WithFetchedExportKeys() Option {
	return func(c *Client) error {
		c.fetchKeys = true
		return nil
	}
}

// WithLogKey makes LogCheckpoint verify the checkpoint's signature with
// the transparency log's public key, a note verifier key of the form
// "<name>+<hash>+<base64 key>" as a deployment publishes it. The key's name
// must be the log's origin.
func WithLogKey(vkey string) Option {
	return func(c *Client) error {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return fmt.Errorf("WithLogKey: %w", err)
		}
		c.logKey = v
		return nil
	}
}

// WithoutPadding stops the Client from adding random padding to device API
// requests, e.g. for load tests that measure the server alone.
func WithoutPadding() Option {
	return func(c *Client) error {
		c.padding = false
		return nil
	}
}

// New returns a Client for the deployment at baseURL, e.g.
// "https://candor.example.org" (a path prefix is kept, for deployments
// behind a reverse proxy).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("client: server URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q: want http:// or https:// and a host", baseURL)
	}
	c := &Client{base: u, http: &http.Client{Timeout: DefaultTimeout}, padding: true}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
	}
	return c, nil
}

// BaseURL returns the deployment's base URL as given to New.
func (c *Client) BaseURL() string { return c.base.String() }

// url returns the absolute URL of path (which starts with "/").
func (c *Client) url(path string) string { return c.base.String() + path }

// padding returns 1–2 KiB of random base64, like the server's.
func padding() string {
	n := 1024 + mrand.IntN(1025)
	b := make([]byte, n)
	rand.Read(b) // never fails
	return base64.StdEncoding.EncodeToString(b)[:n]
}

// errorBody is every shape of error answer: {"error","errorCode"} of /api,
// {"error","code"} of /v1/publish, {"message"} of a framework error.
type errorBody struct {
	Error     string `json:"error"`
	ErrorCode string `json:"errorCode"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

// postJSON posts req as JSON to path with the API key (when not empty) and
// decodes a 200 answer into resp. Any other status returns an *APIError;
// the answer is still decoded into resp when it is JSON, so callers can read
// what it holds (a batch's per-code errors).
func (c *Client) postJSON(ctx context.Context, path, apiKey string, req, resp any) error {
	return c.post(ctx, path, apiKey, false, req, resp)
}

// post is postJSON, marking the request as a decoy when chaff is set.
func (c *Client) post(ctx context.Context, path, apiKey string, chaff bool, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(path), bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	if apiKey != "" {
		hr.Header.Set(api.APIKeyHeader, apiKey)
	}
	if chaff {
		hr.Header.Set(api.ChaffHeader, "1")
	}
	res, err := c.http.Do(hr)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, MaxJSONResponse+1))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if len(b) > MaxJSONResponse {
		return fmt.Errorf("answer larger than %d bytes", MaxJSONResponse)
	}
	isJSON := strings.HasPrefix(res.Header.Get("Content-Type"), "application/json")
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, resp); err != nil {
			return fmt.Errorf("decode answer (HTTP 200, %s): %w", res.Header.Get("Content-Type"), err)
		}
		return nil
	}
	apiErr := &APIError{Status: res.StatusCode}
	var eb errorBody
	if isJSON && json.Unmarshal(b, &eb) == nil {
		apiErr.Code = cmpOr(eb.ErrorCode, eb.Code)
		apiErr.Message = cmpOr(eb.Error, eb.Message)
		_ = json.Unmarshal(b, resp)
	} else {
		apiErr.Message = strings.TrimSpace(string(b[:min(len(b), 200)]))
	}
	if s := res.Header.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
			apiErr.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	return apiErr
}

// get fetches path and returns its body, at most limit bytes; any status
// but 200 is an *APIError.
func (c *Client) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path), nil)
	if err != nil {
		return nil, err
	}
	res, err := c.http.Do(hr)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		apiErr := &APIError{Status: res.StatusCode}
		var eb errorBody
		if json.Unmarshal(b, &eb) == nil {
			apiErr.Code = cmpOr(eb.ErrorCode, eb.Code)
			apiErr.Message = cmpOr(eb.Error, eb.Message)
		} else {
			apiErr.Message = strings.TrimSpace(string(b[:min(len(b), 200)]))
		}
		return nil, apiErr
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
