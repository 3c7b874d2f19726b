package loadgen

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Markers of the load-test section that WriteReport maintains in a page.
const (
	ReportBegin = "<!-- candor loadtest: begin (generated, do not edit) -->"
	ReportEnd   = "<!-- candor loadtest: end -->"
)

// WriteTable writes results as a Markdown table.
func WriteTable(w io.Writer, results []Result) {
	fmt.Fprintln(w, "| load | concurrency | requests/s | p50 ms | p90 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %d | %.0f | %.1f | %.1f | %.1f | %d |\n", r.Name, r.Concurrency, r.RPS(),
			float64(r.P50)/1e6, float64(r.P90)/1e6, float64(r.P99)/1e6, r.Errors)
	}
}

// WriteReport writes the results of modes as a Markdown section (what ran
// where and how, then the table) into the page at path: it replaces the
// section a previous run wrote, or is appended to the page, or makes a new
// page; the rest of the page is kept. args are the `candor loadtest`
// arguments the page quotes.
func WriteReport(path string, modes []string, results []Result, args []string, started time.Time) error {
	var b bytes.Buffer
	b.WriteString(ReportBegin + "\n")
	fmt.Fprintf(&b, "## Load tests\n\nMeasured %s on %s, %d CPUs, %s/%s, %s, by `candor loadtest %s`\n(`make bench` regenerates this section).\n\n",
		started.UTC().Format("2006-01-02 15:04 MST"), cmp.Or(cpuModel(), "an unknown CPU"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), strings.Join(args, " "))
	b.WriteString("The load generator runs on the same machine as the server, so both compete for the CPUs; with\n" +
		"`--spawn` the server is a fresh `candor serve` with embedded storage in a temporary directory. Latency is\n" +
		"measured at the client, requests/s counts completed requests, errors are answers other than 200.\n\n")
	for _, m := range modes {
		switch m {
		case ModePublish:
			b.WriteString("- **publish**: `POST /v1/publish` of 14 keys with certificates prebuilt for a registered authority, so no\n" +
				"  client-side signing is timed; a 200 means the keys are durable (fsync'd by the group-commit writer).\n")
		case ModeVerify:
			b.WriteString("- **verify**: the app's flow against the verification service, each step timed on its own: `POST /api/issue`\n" +
				"  (admin API key), `POST /api/verify` (device API key, single-use code), `POST /api/certificate`\n" +
				"  (single-use token and key HMAC); **flow** is the three in sequence, each worker looping.\n")
		case ModeDownload:
			b.WriteString("- **download**: `GET /exports/<root>/index.txt` and the zips it lists, as phones fetch them (static files).\n")
		}
	}
	b.WriteString("\n")
	WriteTable(&b, results)
	b.WriteString(ReportEnd + "\n")

	page, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		page = append([]byte("# Performance\n\n"), b.Bytes()...)
	case err != nil:
		return fmt.Errorf("report: %w", err)
	default:
		i, j := bytes.Index(page, []byte(ReportBegin)), bytes.Index(page, []byte(ReportEnd))
		if i >= 0 && j > i {
			rest := page[j+len(ReportEnd):]
			rest = bytes.TrimPrefix(rest, []byte("\n"))
			page = slices.Concat(page[:i], b.Bytes(), rest)
		} else {
			page = slices.Concat(bytes.TrimRight(page, "\n"), []byte("\n\n"), b.Bytes())
		}
	}
	if err := os.WriteFile(path, page, 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// cpuModel returns the CPU model name on Linux, or "".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
