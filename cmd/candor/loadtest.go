package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/candor-en/candor/internal/loadgen"
)

func runLoadtest(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("loadtest [flags]", "Drive load against a Candor server and print requests/s and latency percentiles.\nWith --spawn it starts a fresh `candor serve` in a temporary directory first.\n\n"+
		"Modes: publish (uploads with prebuilt certificates), verify (the app's flow: issue a code with the admin API,\n"+
		"verify it, get a certificate; each step timed), download (the export index and zips, as phones fetch them).", io.Err)
	url := fs.String("url", "", "base URL of a running server (not with --spawn)")
	data := fs.String("data", "", "data directory of that server, to register the load test's authority, realm and API keys")
	spawn := fs.Bool("spawn", false, "start a fresh server for the test and stop it afterwards")
	mode := fs.String("mode", "publish", "what to load, comma-separated: publish, verify, download")
	conc := fs.String("concurrency", "16,64", "comma-separated concurrency levels")
	duration := fs.Duration("duration", 10*time.Second, "how long each level runs")
	keysPer := fs.Int("keys", 14, "keys per publish")
	rate := fs.Int("max-rate", 10000, "requests prebuilt per second of duration (an upper bound on the rate)")
	markdown := fs.Bool("markdown", false, "print a Markdown table")
	report := fs.String("report", "", "also write the results as a Markdown page to this file (e.g. docs/PERFORMANCE.md)")
	cfg := loadgen.Config{Out: io.Out, Progress: io.Err}
	fs.StringVar(&cfg.AdminKey, "admin-key", "", "verify mode: admin API key of a realm (default: create a realm and keys with --data)")
	fs.StringVar(&cfg.DeviceKey, "device-key", "", "verify mode: device API key of the same realm")
	fs.StringVar(&cfg.ExportsRoot, "exports-root", "", "download mode: export root to download (default: publish keys and export them with --data)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.Duration, cfg.KeysPerPublish, cfg.MaxRate = *duration, *keysPer, *rate
	for _, s := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return usageError{fmt.Sprintf("--concurrency %q", *conc)}
		}
		cfg.Levels = append(cfg.Levels, n)
	}
	for _, m := range strings.Split(*mode, ",") {
		switch m = strings.TrimSpace(m); m {
		case loadgen.ModePublish, loadgen.ModeVerify, loadgen.ModeDownload:
			cfg.Modes = append(cfg.Modes, m)
		default:
			return usageError{fmt.Sprintf("--mode %q: want publish, verify or download", m)}
		}
	}
	if (cfg.AdminKey == "") != (cfg.DeviceKey == "") {
		return usageError{"give both --admin-key and --device-key, or neither"}
	}
	if *spawn {
		if *url != "" {
			return usageError{"--url and --spawn exclude each other"}
		}
		dir, err := os.MkdirTemp("", "candor-loadtest-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		stop, u, err := loadgen.Spawn(exe, dir)
		if err != nil {
			return err
		}
		defer stop()
		*url, *data = u, dir
	}
	if *url == "" {
		return usageError{"give --url of a running server (and --data), or --spawn"}
	}
	cfg.URL = *url
	if *data != "" {
		cfg.Operator = func(ctx context.Context, op string, req, resp any) error { return callOp(ctx, *data, op, req, resp) }
	}
	// What each load needs without --data, said in flags.
	for _, m := range cfg.Modes {
		switch {
		case *data != "":
		case m == loadgen.ModePublish:
			return usageError{"publish mode needs --data of the server (to register its authority), or --spawn"}
		case m == loadgen.ModeVerify && cfg.AdminKey == "":
			return usageError{"verify mode needs --admin-key and --device-key, or --data of the server (to create them), or --spawn"}
		case m == loadgen.ModeDownload && cfg.ExportsRoot == "":
			return usageError{"download mode needs --exports-root of a root with files, or --data of the server (to make one), or --spawn"}
		}
	}
	started := time.Now()
	results, err := loadgen.RunLoads(ctx, cfg)
	if err != nil {
		return err
	}
	if *markdown {
		fmt.Fprintln(io.Out)
		loadgen.WriteTable(io.Out, results)
	}
	if *report != "" {
		if err := loadgen.WriteReport(*report, cfg.Modes, results, args, started); err != nil {
			return err
		}
		fmt.Fprintf(io.Err, "wrote %s\n", *report)
	}
	return nil
}
