package operator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/candor-en/candor/keyserver/exporter"
)

// ExportAddRequest is a new export configuration; durations are Go
// duration strings ("1h").
type ExportAddRequest struct {
	Root             string   `json:"root"`
	Region           string   `json:"region"`
	InputRegions     []string `json:"inputRegions,omitempty"`
	IncludeTravelers bool     `json:"includeTravelers,omitempty"`
	Period           string   `json:"period,omitempty"`
	MinWindowAge     string   `json:"minWindowAge,omitempty"`
	MinKeys          int      `json:"minKeys,omitempty"`
	MaxKeysPerFile   int      `json:"maxKeysPerFile,omitempty"`
	KeyID            string   `json:"keyId"`
	KeyVersion       string   `json:"keyVersion"`
}

// Validate requires the root, region and signing key, and durations that
// parse.
func (r ExportAddRequest) Validate() error {
	if r.Root == "" || r.Region == "" || r.KeyID == "" || r.KeyVersion == "" {
		return Error("--root, --region, --key-id and --key-version are required")
	}
	if _, err := parseDuration("period", r.Period); err != nil {
		return err
	}
	_, err := parseDuration("min-window-age", r.MinWindowAge)
	return err
}

// parseDuration parses the value s of flag name; "" is 0.
func parseDuration(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, Error(fmt.Sprintf("--%s: %v", name, err))
	}
	return d, nil
}

// ExportConfigResponse is an export configuration and its public signing
// keys.
type ExportConfigResponse struct {
	Config  *exporter.Config        `json:"config"`
	Created bool                    `json:"created"`
	Keys    []exporter.PublishedKey `json:"keys"`
}

// AddExport adds an export configuration, with its first signing key.
func (s *Services) AddExport(ctx context.Context, req ExportAddRequest) (ExportConfigResponse, error) {
	period, _ := parseDuration("period", req.Period) // checked by Validate
	age, _ := parseDuration("min-window-age", req.MinWindowAge)
	c := exporter.Config{
		Root: req.Root, Region: req.Region, InputRegions: req.InputRegions, IncludeTravelers: req.IncludeTravelers,
		Period: period, MinWindowAge: age, MinKeys: req.MinKeys, MaxKeysPerFile: req.MaxKeysPerFile,
		SignatureInfos: []exporter.SignatureInfo{{KeyID: req.KeyID, KeyVersion: req.KeyVersion}},
	}
	out, created, err := exporter.AddConfig(ctx, s.ExportStore, s.ExportKeys, c, s.Now())
	if err != nil {
		return ExportConfigResponse{}, Error(err.Error())
	}
	return s.withKeys(ctx, out, created)
}

// withKeys answers configuration c with its public keys.
func (s *Services) withKeys(ctx context.Context, c *exporter.Config, created bool) (ExportConfigResponse, error) {
	keys, err := s.Exporter.PublicKeys(ctx, c.Root)
	if err != nil {
		return ExportConfigResponse{}, err
	}
	return ExportConfigResponse{Config: c, Created: created, Keys: keys}, nil
}

// ListExports returns every export configuration.
func (s *Services) ListExports(ctx context.Context, _ Empty) ([]*exporter.Config, error) {
	configs, err := s.ExportStore.ExportConfigs(ctx)
	if err != nil {
		return nil, err
	}
	if configs == nil {
		configs = []*exporter.Config{}
	}
	return configs, nil
}

// ExportKeyRequest names a signing key of a configuration.
type ExportKeyRequest struct {
	Root       string `json:"root"`
	KeyID      string `json:"keyId,omitempty"`
	KeyVersion string `json:"keyVersion,omitempty"`
	// At, for retire, is when the key stops signing (RFC 3339); now when
	// empty.
	At string `json:"at,omitempty"`
}

// Validate requires the root and the key, and a time that parses.
func (r ExportKeyRequest) Validate() error {
	if r.Root == "" || r.KeyID == "" || r.KeyVersion == "" {
		return Error("--root, --key-id and --key-version are required")
	}
	_, err := r.at()
	return err
}

// at is r.At parsed, zero when empty.
func (r ExportKeyRequest) at() (time.Time, error) {
	if r.At == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, r.At)
	if err != nil {
		return time.Time{}, Error("--at: " + err.Error())
	}
	return t, nil
}

// AddExportKey adds a signing key to a configuration: a rotation starts.
func (s *Services) AddExportKey(ctx context.Context, req ExportKeyRequest) (ExportConfigResponse, error) {
	c, _, err := exporter.AddSignatureInfo(ctx, s.ExportStore, s.ExportKeys, req.Root, req.KeyID, req.KeyVersion, s.Now())
	if err != nil {
		return ExportConfigResponse{}, Error(err.Error())
	}
	return s.withKeys(ctx, c, false)
}

// RetireExportKey retires a signing key of a configuration at req.At.
func (s *Services) RetireExportKey(ctx context.Context, req ExportKeyRequest) (ExportConfigResponse, error) {
	at, _ := req.at() // checked by Validate
	c, err := exporter.RetireSignatureInfo(ctx, s.ExportStore, req.Root, req.KeyID, req.KeyVersion, at, s.Now())
	if err != nil {
		return ExportConfigResponse{}, Error(err.Error())
	}
	return s.withKeys(ctx, c, false)
}

// ExportRootRequest names an export configuration.
type ExportRootRequest struct {
	Root string `json:"root"`
}

// Validate accepts every root: an unknown one is found by the exporter.
func (ExportRootRequest) Validate() error { return nil }

// ExportKeysOf returns the public signing keys of a configuration.
func (s *Services) ExportKeysOf(ctx context.Context, req ExportRootRequest) ([]exporter.PublishedKey, error) {
	keys, err := s.Exporter.PublicKeys(ctx, req.Root)
	if errors.Is(err, exporter.ErrNotFound) {
		return nil, Error(fmt.Sprintf("no export configuration %q", req.Root))
	}
	if err != nil {
		return nil, err
	}
	if keys == nil {
		keys = []exporter.PublishedKey{}
	}
	return keys, nil
}

// ExportRunRequest asks for one export pass.
type ExportRunRequest struct {
	// Now (RFC 3339) runs the pass as if at that time; the server's clock
	// when empty.
	Now string `json:"now,omitempty"`
	// AllowFuture accepts a Now after the server's clock.
	AllowFuture bool `json:"allowFuture,omitempty"`
	// Retain also runs retention.
	Retain bool `json:"retain,omitempty"`
	// Retention (a Go duration) is the retention period when no server
	// runs; a running server uses its own --retention.
	Retention string `json:"retention,omitempty"`
}

// Validate requires a Now that parses.
func (r ExportRunRequest) Validate() error {
	if r.Now == "" {
		return nil
	}
	if _, err := time.Parse(time.RFC3339, r.Now); err != nil {
		return Error("--now: " + err.Error())
	}
	return nil
}

// ExportRunResponse is what an export pass, and retention, did.
type ExportRunResponse struct {
	Pass      *exporter.PassResult      `json:"pass"`
	Retention *exporter.RetentionResult `json:"retention,omitempty"`
	Errors    []string                  `json:"errors,omitempty"`
}

// RunExport runs one export pass, and with req.Retain retention; their
// errors are in the answer, next to what they did.
func (s *Services) RunExport(ctx context.Context, req ExportRunRequest) (ExportRunResponse, error) {
	now := s.Now()
	if req.Now != "" {
		t, _ := time.Parse(time.RFC3339, req.Now) // checked by Validate
		if t.After(now.Add(time.Minute)) && !req.AllowFuture {
			return ExportRunResponse{}, Error("--now is in the future: windows still open would be exported and keys published into them later never would; add --allow-future (tests and demos only)")
		}
		now = t
	}
	x := s.Exporter
	if req.Retention != "" && s.ExporterFor != nil { // no server: this process decides
		d, err := parseDuration("retention", req.Retention)
		if err != nil {
			return ExportRunResponse{}, err
		}
		if x, err = s.ExporterFor(d); err != nil {
			return ExportRunResponse{}, Error(err.Error())
		}
	}
	var resp ExportRunResponse
	pass, err := x.PassAt(ctx, now)
	resp.Pass = pass
	if err != nil {
		resp.Errors = append(resp.Errors, err.Error())
	}
	if req.Retain {
		r, err := x.RetainAt(ctx, now)
		resp.Retention = &r
		if err != nil {
			resp.Errors = append(resp.Errors, err.Error())
		}
	}
	return resp, nil
}
