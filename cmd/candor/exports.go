package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/internal/operator"
	"github.com/candor-en/candor/keyserver/exporter"
)

// ExportConfig is the export role's part of Config.
type ExportConfig struct {
	// ExportInterval is how often export passes run.
	ExportInterval time.Duration
	// Retention is how long keys and export files are kept.
	Retention time.Duration
	// RetentionInterval is how often retention runs.
	RetentionInterval time.Duration
}

// Defaults of ExportConfig.
const (
	DefaultExportInterval    = 5 * time.Minute
	DefaultRetentionInterval = time.Hour
	// ExportsDirName is the directory of the export roots in the data
	// directory.
	ExportsDirName = "exports"
)

func (c *Config) exportFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.ExportInterval, "export-interval", DefaultExportInterval, "how often an export pass runs (it exports every window that is due)")
	fs.DurationVar(&c.Retention, "retention", exporter.DefaultRetention, "how long keys and export files are kept (at least 240h)")
	fs.DurationVar(&c.RetentionInterval, "retention-interval", DefaultRetentionInterval, "how often keys and export files past the retention are deleted")
}

// exportParts are the export role's pieces of Main.
type exportParts struct {
	// Exporter produces, indexes and expires the export files.
	Exporter *exporter.Exporter
	// ExportKeys holds the export signing keys.
	ExportKeys *exporter.Keysets
}

// openExports builds the export service: files under <data>/exports, keys in
// the store's keysets, metrics on the registry, events logged.
func (m *Main) openExports(ctx context.Context) error {
	x, err := m.newExporter(m.Config.Retention, true)
	if err != nil {
		return err
	}
	m.Exporter = x
	return nil
}

// newExporter returns an exporter over m's store with the given retention
// (the default when zero); register says whether it registers its metrics.
func (m *Main) newExporter(retention time.Duration, register bool) (*exporter.Exporter, error) {
	cfg := &m.Config
	if retention == 0 {
		retention = exporter.DefaultRetention
	}
	if err := exporter.ValidateRetention(retention); err != nil {
		return nil, usageError{"--retention: " + err.Error()}
	}
	if m.ExportKeys == nil {
		m.ExportKeys = exporter.NewKeysets(m.Keysets, m.Master, cfg.now)
	}
	dir, err := filepath.Abs(filepath.Join(cfg.DataDir, ExportsDirName))
	if err != nil {
		return nil, fmt.Errorf("exports: %w", err)
	}
	// Leases are owned by host and directory, so a server restarted after
	// a crash takes its unfinished batches back at once, while exporters
	// on other hosts wait for the lease to expire.
	host, _ := os.Hostname()
	opts := exporter.Options{
		Dir:       dir,
		Retention: retention,
		Owner:     host + ":" + dir,
		Now:       cfg.now,
		Log:       m.Log,
	}
	// Each event is logged for the operator and recorded in the public
	// transparency log — here, or through the outbox by the process that
	// runs the log (outbox.go) — before the exporter considers it
	// delivered.
	logged := m.exportLogHooks()
	opts.Events = exporter.Events{
		OnFilePublished: func(ctx context.Context, f exporter.FilePublished) error {
			m.Log.InfoContext(ctx, "export file published", "file", f.Name, "region", f.Region,
				"window_start", f.Start, "window_end", f.End, "keys", f.Keys, "revised_keys", f.RevisedKeys,
				"zip_sha256", f.ZipSHA256.String(), "bin_sha256", f.BinSHA256.String(), "signing_keys", signingKeys(f))
			return logged.OnFilePublished(ctx, f)
		},
		OnRetention: func(ctx context.Context, r exporter.RetentionResult) error {
			m.Log.InfoContext(ctx, "retention deleted", "cutoff", r.Cutoff, "keys_removed", r.KeysRemoved, "files_removed", r.FilesRemoved)
			return logged.OnRetention(ctx, r)
		},
		OnRootAdded: func(ctx context.Context, r exporter.RootAdded) error {
			m.Log.InfoContext(ctx, "export root added", "root", r.Root, "region", r.Region)
			return logged.OnRootAdded(ctx, r)
		},
	}
	if register {
		opts.Registerer = m.Registry
	}
	x, err := exporter.New(m.ExportStore, m.ExportKeys, opts)
	if err != nil {
		return nil, fmt.Errorf("exports: %w", err)
	}
	return x, nil
}

func signingKeys(f exporter.FilePublished) string {
	names := make([]string, len(f.SigningKeys))
	for i, s := range f.SigningKeys {
		names[i] = s.String()
	}
	return strings.Join(names, ",")
}

// registerExports adds the export routes: /exports/roots.txt,
// /exports/<root>/index.txt, the zips it lists, and /exports/<root>/keys.
func (m *Main) registerExports(e *echo.Echo) {
	exporter.NewHandler(m.Exporter).Register(e)
}

// exportBackground starts the export role's periodic jobs: export passes
// (the first one at start, which also checks every listed file), repairs
// the handler asks for, retention, and reloading the signing keys changed
// by other processes.
func (m *Main) exportBackground(ctx context.Context) {
	interval := m.Config.ExportInterval
	if interval <= 0 {
		interval = DefaultExportInterval
	}
	m.every(ctx, interval, "export pass", func(ctx context.Context) error {
		_, err := m.Exporter.Pass(ctx)
		return err
	})
	// A damaged file the handler refuses to serve is regenerated now, not
	// at the next pass.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.Exporter.RunRepairs(ctx)
	}()
	retain := m.Config.RetentionInterval
	if retain <= 0 {
		retain = DefaultRetentionInterval
	}
	m.every(ctx, retain, "retention", func(ctx context.Context) error {
		_, err := m.Exporter.Retain(ctx)
		return err
	})
	m.every(ctx, m.keyMaintenanceInterval(time.Hour), "export key reload", m.ExportKeys.Reload)
}

// exportAdminCommands are the role's `candor admin` commands.
func exportAdminCommands() map[string]adminCommand {
	return map[string]adminCommand{
		"export add":        adminExportAdd,
		"export list":       adminExportList,
		"export rotate-key": adminExportRotateKey,
		"export retire-key": adminExportRetireKey,
		"export keys":       adminExportKeys,
	}
}

func adminExportAdd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin export add", "Add an export configuration: the files of one root, their windows, regions, padding, split and signing key. Prints the signing key's public key, which app developers register with the phone platforms.", io.Err)
	tgt := targetFlags(fs)
	var req operator.ExportAddRequest
	var regions stringList
	fs.StringVar(&req.Root, "root", "", "file root: files go to <data>/exports/<root>/ and are served under /exports/<root>/")
	fs.StringVar(&req.Region, "region", "", "region written into the files, e.g. 310 or US-WA")
	fs.Var(&regions, "input-regions", "app regions whose keys are exported, comma-separated (default: --region)")
	fs.BoolVar(&req.IncludeTravelers, "include-travelers", false, "also export keys that apps of other regions uploaded with the traveler flag")
	fs.StringVar(&req.Period, "period", exporter.DefaultPeriod.String(), "window length: a multiple of 1h that divides 24h")
	fs.StringVar(&req.MinWindowAge, "min-window-age", exporter.DefaultMinWindowAge.String(), "how long after its end a window is exported")
	fs.IntVar(&req.MinKeys, "min-keys", exporter.DefaultMinKeys, "windows with fewer keys are padded with random keys up to this many (1 disables padding)")
	fs.IntVar(&req.MaxKeysPerFile, "max-keys-per-file", exporter.DefaultMaxKeysPerFile, "larger batches are split into several files")
	fs.StringVar(&req.KeyID, "key-id", "", "verification key id in the files' signature info, as registered with the platforms (e.g. 310)")
	fs.StringVar(&req.KeyVersion, "key-version", "", "verification key version, e.g. v1")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	req.InputRegions = regions
	var resp operator.ExportConfigResponse
	if err := tgt.call(ctx, "export.add", req, &resp); err != nil {
		return err
	}
	verb := "exists unchanged"
	if resp.Created {
		verb = "added"
	}
	printConfig(io, verb, resp.Config)
	printKeys(io, resp.Keys)
	return nil
}

func printKeys(io IO, keys []exporter.PublishedKey) {
	for _, k := range keys {
		state := "active"
		if !k.Active {
			state = "retired " + k.Retired.Format(time.RFC3339)
		}
		fmt.Fprintf(io.Out, "signing key id %s version %s (%s, %s):\n%s", k.KeyID, k.KeyVersion, k.Algorithm, state, k.PublicKeyPEM)
	}
}

func adminExportList(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin export list", "List the export configurations and their signing keys.", io.Err)
	tgt := targetFlags(fs)
	asJSON := fs.Bool("json", false, "print the stored configurations as JSON (durations in nanoseconds)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp json.RawMessage
	if err := tgt.call(ctx, "export.list", struct{}{}, &resp); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(io, resp)
	}
	var configs []*exporter.Config
	if err := json.Unmarshal(resp, &configs); err != nil {
		return err
	}
	if len(configs) == 0 {
		fmt.Fprintln(io.Out, "no export configuration; add one with `candor admin export add`")
	}
	for _, c := range configs {
		printConfig(io, "", c)
		for _, si := range c.SignatureInfos {
			state := "active"
			if !si.Retired.IsZero() {
				state = "retired " + si.Retired.Format(time.RFC3339)
			}
			fmt.Fprintf(io.Out, "  signing key %s/%s (%s), added %s\n", si.KeyID, si.KeyVersion, state, si.Added.Format(time.RFC3339))
		}
	}
	return nil
}

// printConfig prints one line describing c.
func printConfig(io IO, verb string, c *exporter.Config) {
	if verb != "" {
		verb = " " + verb
	}
	fmt.Fprintf(io.Out, "export %s%s: region %s, input regions %s, travelers %v, period %v, min window age %v, min keys %d, max keys per file %d\n",
		c.Root, verb, c.Region, strings.Join(c.InputRegions, ","), c.IncludeTravelers, c.Period, c.MinWindowAge, c.MinKeys, c.MaxKeysPerFile)
}

func printJSON(io IO, raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(io.Out, "%s\n", b)
	return err
}

func keyFlags(fs *flag.FlagSet, req *operator.ExportKeyRequest) *opTarget {
	tgt := targetFlags(fs)
	fs.StringVar(&req.Root, "root", "", "export configuration root")
	fs.StringVar(&req.KeyID, "key-id", "", "verification key id")
	fs.StringVar(&req.KeyVersion, "key-version", "", "verification key version")
	return tgt
}

func adminExportRotateKey(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin export rotate-key", "Start a signing-key rotation: create a new key (id, version) that signs every new file next to the current ones. Register its public key with the platforms, then retire the old key with `admin export retire-key`.", io.Err)
	var req operator.ExportKeyRequest
	tgt := keyFlags(fs, &req)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp operator.ExportConfigResponse
	if err := tgt.call(ctx, "export.key.add", req, &resp); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "export %s: key %s/%s added; new files are signed by every active key\n", req.Root, req.KeyID, req.KeyVersion)
	printKeys(io, resp.Keys)
	return nil
}

func adminExportRetireKey(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin export retire-key", "End a signing-key rotation: the key stops signing new files (now, or at --at). Its public key stays published for the retention period.", io.Err)
	var req operator.ExportKeyRequest
	tgt := keyFlags(fs, &req)
	fs.StringVar(&req.At, "at", "", "when the key stops signing, RFC 3339 (default now)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp operator.ExportConfigResponse
	if err := tgt.call(ctx, "export.key.retire", req, &resp); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "export %s: key %s/%s retired\n", req.Root, req.KeyID, req.KeyVersion)
	printKeys(io, resp.Keys)
	return nil
}

func adminExportKeys(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin export keys", "Print the public signing keys of an export configuration as JSON, as GET /exports/<root>/keys serves them.", io.Err)
	tgt := targetFlags(fs)
	var req operator.ExportKeyRequest
	fs.StringVar(&req.Root, "root", "", "export configuration root")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp json.RawMessage
	if err := tgt.call(ctx, "export.keys", req, &resp); err != nil {
		return err
	}
	return printJSON(io, resp)
}

// runExport is `candor export run`: one export pass, through the running
// server's socket or, with no server, directly on the data directory.
func runExport(ctx context.Context, args []string, io IO) error {
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprintln(io.Err, "Usage: candor export run --data DIR [--now RFC3339 [--allow-future]] [--retain] [--retention D]\n\nRun `candor export run --help` for the flags; docs/EXPORTS.md explains exports.")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return usageError{"export needs the verb run"}
	}
	fs := newFlagSet("export run", "Run one export pass: export every window that is due, regenerate missing or damaged files, rewrite index.txt, deliver events. Goes through the running server when there is one.", io.Err)
	tgt := targetFlags(fs)
	var req operator.ExportRunRequest
	fs.StringVar(&req.Now, "now", "", "run as if at this time (RFC 3339), for tests and demos")
	fs.BoolVar(&req.AllowFuture, "allow-future", false, "accept a --now in the future: exports windows still open, whose later keys are then never exported (tests and demos only)")
	fs.BoolVar(&req.Retain, "retain", false, "also delete keys and files past the retention period")
	fs.StringVar(&req.Retention, "retention", "", "retention period when no server runs (default 336h; a running server uses its own)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	var resp operator.ExportRunResponse
	if err := tgt.call(ctx, "export.run", req, &resp); err != nil {
		return err
	}
	for _, r := range resp.Pass.Roots {
		fmt.Fprintf(io.Out, "%s: %d batches, %d files (%d keys, %d revised, %d padding); index lists %d files",
			r.Root, r.Batches, r.Files, r.Keys, r.RevisedKeys, r.PaddingKeys, r.Listed)
		if r.Regenerated+r.Unavailable+r.Skipped+r.LeaseHeld > 0 {
			fmt.Fprintf(io.Out, "; %d regenerated, %d unavailable, %d bad records skipped, %d windows left to another exporter",
				r.Regenerated, r.Unavailable, r.Skipped, r.LeaseHeld)
		}
		fmt.Fprintln(io.Out)
	}
	if r := resp.Retention; r != nil {
		fmt.Fprintf(io.Out, "retention: cutoff %s, %d keys and %d files deleted\n", r.Cutoff.Format(time.RFC3339), r.KeysRemoved, r.FilesRemoved)
	}
	if len(resp.Errors) > 0 {
		return errors.New(strings.Join(resp.Errors, "; "))
	}
	return nil
}
