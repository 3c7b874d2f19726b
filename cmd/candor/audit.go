package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candor-en/candor/transparency/audit"
)

// runAudit is `candor audit`: verify a server's transparency log and export
// files from the outside.
func runAudit(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("audit --log URL [--exports URL]... [--key KEY] [--state FILE] [--json]",
		"Audit a Candor server from the outside: verify its transparency log's checkpoint signature and its\n"+
			"consistency with the checkpoint of the previous run (--state), rebuild the Merkle tree from every entry,\n"+
			"and check that every root roots.txt lists is logged, that every export file listed in index.txt (byte for\n"+
			"byte) is logged with the same SHA-256 and verifies with a logged signing key, and that nothing older than\n"+
			"the retention period is still listed or served.\n"+
			"Prints a table (or JSON) and exits non-zero when a check fails.", io.Err)
	var cfg audit.Config
	var exports stringList
	fs.StringVar(&cfg.LogURL, "log", "", "base URL of the log, e.g. https://example.org/log/")
	fs.Var(&exports, "exports", "export files to check: a base URL (https://example.org/exports/, roots from its roots.txt and the log) or an index URL (…/exports/<root>/index.txt); repeatable")
	key := fs.String("key", "", "the log's public key, <origin>+<hash>+<base64> as /transparency/key serves it, or a file holding it (default: the one in --state)")
	fs.StringVar(&cfg.StatePath, "state", "", "file remembering the last verified checkpoint, for the consistency check (created when missing)")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	fs.DurationVar(&cfg.Retention, "retention", audit.DefaultRetention, "retention period the server promises")
	fs.DurationVar(&cfg.RetentionGrace, "retention-grace", audit.DefaultRetentionGrace, "how long past the retention period a file may still be listed or served (retention runs periodically)")
	fs.DurationVar(&cfg.ServedLookback, "served-lookback", audit.DefaultServedLookback, "how far past the retention period logged files are checked to be gone")
	timeout := fs.Duration("timeout", time.Minute, "timeout of each HTTP request")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.LogURL == "" {
		return usageError{"--log is required"}
	}
	cfg.Exports = exports
	k, err := readVerifierKey(*key)
	if err != nil {
		return err
	}
	cfg.Key = k
	cfg.Client = &http.Client{Timeout: *timeout}
	rep, err := audit.Run(ctx, cfg)
	if errors.Is(err, audit.ErrNoKey) {
		return usageError{err.Error()}
	}
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(io.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(io.Out); err != nil {
		return err
	}
	if failed := rep.Failed(); len(failed) > 0 {
		names := make([]string, len(failed))
		for i, c := range failed {
			names[i] = c.Name
		}
		return fmt.Errorf("audit failed: %s", strings.Join(names, "; "))
	}
	return nil
}

// readVerifierKey returns s when it is a note verifier key, else the key in
// the file named s.
func readVerifierKey(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if _, err := note.NewVerifier(s); err == nil {
		return s, nil
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return "", usageError{fmt.Sprintf("--key %q is neither a log key (<origin>+<hash>+<base64>) nor a readable file", s)}
	}
	k := strings.TrimSpace(string(b))
	if _, err := note.NewVerifier(k); err != nil {
		return "", usageError{fmt.Sprintf("--key file %s: %v", s, err)}
	}
	return k, nil
}
