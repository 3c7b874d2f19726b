package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/client"
	"github.com/candor-en/candor/internal/loadgen"
	"github.com/candor-en/candor/keyserver"
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
	var vk verifyKeys
	fs.StringVar(&vk.admin, "admin-key", "", "verify mode: admin API key of a realm (default: create a realm and keys with --data)")
	fs.StringVar(&vk.device, "device-key", "", "verify mode: device API key of the same realm")
	root := fs.String("exports-root", "", "download mode: export root to download (default: publish keys and export them with --data)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var levels []int
	for _, s := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return usageError{fmt.Sprintf("--concurrency %q", *conc)}
		}
		levels = append(levels, n)
	}
	var modes []string
	for _, m := range strings.Split(*mode, ",") {
		switch m = strings.TrimSpace(m); m {
		case "publish", "verify", "download":
			modes = append(modes, m)
		default:
			return usageError{fmt.Sprintf("--mode %q: want publish, verify or download", m)}
		}
	}
	if (vk.admin == "") != (vk.device == "") {
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
		stop, u, err := spawnServer(ctx, dir)
		if err != nil {
			return err
		}
		defer stop()
		*url, *data = u, dir
	}
	if *url == "" {
		return usageError{"give --url of a running server (and --data), or --spawn"}
	}
	*url = strings.TrimSuffix(*url, "/")
	started := time.Now()
	var results []loadgen.Result
	for _, m := range modes {
		var res []loadgen.Result
		var err error
		switch m {
		case "publish":
			res, err = publishLoadtest(ctx, io, *url, *data, levels, *duration, *keysPer, *rate)
		case "verify":
			res, err = verifyLoadtest(ctx, io, *url, *data, vk, levels, *duration)
		case "download":
			res, err = downloadLoadtest(ctx, io, *url, *data, *root, levels, *duration)
		}
		if err != nil {
			return fmt.Errorf("%s load: %w", m, err)
		}
		results = append(results, res...)
	}
	if *markdown {
		fmt.Fprintln(io.Out)
		writeResultTable(io.Out, results)
	}
	if *report != "" {
		if err := writeLoadReport(*report, modes, results, args, started); err != nil {
			return err
		}
		fmt.Fprintf(io.Err, "wrote %s\n", *report)
	}
	return nil
}

func publishLoadtest(ctx context.Context, io IO, url, data string, levels []int, duration time.Duration, keysPer, rate int) ([]loadgen.Result, error) {
	if data == "" {
		return nil, usageError{"publish mode needs --data of the server (to register its authority), or --spawn"}
	}
	pl, err := newPublishLoad(ctx, url, data, loadApp, loadRegion)
	if err != nil {
		return nil, err
	}
	var results []loadgen.Result
	for _, c := range levels {
		n := int(duration.Seconds()) * rate
		fmt.Fprintf(io.Err, "building %d publish requests with certificates...\n", n)
		reqs, err := pl.requests(n, keysPer)
		if err != nil {
			return nil, err
		}
		// Warm the connections and the server before measuring.
		loadgen.Run(ctx, loadgen.NewClient(c), "warmup", loadgen.NewSlice(reqs[:min(len(reqs), 500)]), c, 5*time.Second, okStatus)
		res := loadgen.Run(ctx, loadgen.NewClient(c), "publish "+strconv.Itoa(keysPer)+" keys", loadgen.NewSlice(reqs[min(len(reqs), 500):]), c, duration, okStatus)
		printResult(io, res)
		results = append(results, res)
	}
	return results, nil
}

func printResult(io IO, res loadgen.Result) {
	fmt.Fprintln(io.Out, res)
	if res.Errors > 0 {
		fmt.Fprintf(io.Out, "  statuses: %v\n", res.Statuses)
	}
}

// writeResultTable writes results as a Markdown table.
func writeResultTable(w io.Writer, results []loadgen.Result) {
	fmt.Fprintln(w, "| load | concurrency | requests/s | p50 ms | p90 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %d | %.0f | %.1f | %.1f | %.1f | %d |\n", r.Name, r.Concurrency, r.RPS(),
			float64(r.P50)/1e6, float64(r.P90)/1e6, float64(r.P99)/1e6, r.Errors)
	}
}

// Markers of the load-test section that --report maintains in a page.
const (
	reportBegin = "<!-- candor loadtest: begin (generated, do not edit) -->"
	reportEnd   = "<!-- candor loadtest: end -->"
)

// writeLoadReport writes the results of modes as a Markdown section (what
// ran where and how, then the table) into the page at path: it replaces the
// section a previous run wrote, or is appended to the page, or makes a new
// page; the rest of the page is kept.
func writeLoadReport(path string, modes []string, results []loadgen.Result, args []string, started time.Time) error {
	var b bytes.Buffer
	b.WriteString(reportBegin + "\n")
	fmt.Fprintf(&b, "## Load tests\n\nMeasured %s on %s, %d CPUs, %s/%s, %s, by `candor loadtest %s`\n(`make bench` regenerates this section).\n\n",
		started.UTC().Format("2006-01-02 15:04 MST"), cmp.Or(cpuModel(), "an unknown CPU"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), strings.Join(args, " "))
	b.WriteString("The load generator runs on the same machine as the server, so both compete for the CPUs; with\n" +
		"`--spawn` the server is a fresh `candor serve` with embedded storage in a temporary directory. Latency is\n" +
		"measured at the client, requests/s counts completed requests, errors are answers other than 200.\n\n")
	for _, m := range modes {
		switch m {
		case "publish":
			b.WriteString("- **publish**: `POST /v1/publish` of 14 keys with certificates prebuilt for a registered authority, so no\n" +
				"  client-side signing is timed; a 200 means the keys are durable (fsync'd by the group-commit writer).\n")
		case "verify":
			b.WriteString("- **verify**: the app's flow against the verification service, each step timed on its own: `POST /api/issue`\n" +
				"  (admin API key), `POST /api/verify` (device API key, single-use code), `POST /api/certificate`\n" +
				"  (single-use token and key HMAC); **flow** is the three in sequence, each worker looping.\n")
		case "download":
			b.WriteString("- **download**: `GET /exports/<root>/index.txt` and the zips it lists, as phones fetch them (static files).\n")
		}
	}
	b.WriteString("\n")
	writeResultTable(&b, results)
	b.WriteString(reportEnd + "\n")

	page, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		page = append([]byte("# Performance\n\n"), b.Bytes()...)
	case err != nil:
		return fmt.Errorf("report: %w", err)
	default:
		i, j := bytes.Index(page, []byte(reportBegin)), bytes.Index(page, []byte(reportEnd))
		if i >= 0 && j > i {
			rest := page[j+len(reportEnd):]
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

func okStatus(s int) bool { return s == http.StatusOK }

// spawnServer starts this binary's `serve` on a free loopback port in dir.
func spawnServer(ctx context.Context, dir string) (stop func(), url string, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	// The load comes from one address with one pair of API keys: lift the
	// request rate limits (the server takes everything else, such as
	// --store, from CANDOR_* variables).
	cmd := exec.Command(exe, "serve", "--data", dir, "--addr", addr, "--metrics-addr", "127.0.0.1:0", "--log-level", "warn",
		"--rate-limit-per-address", "0", "--rate-limit-per-device-key", "0", "--rate-limit-per-admin-key", "0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	go func() { // drain the banner
		sc := bufio.NewScanner(out)
		for sc.Scan() {
		}
	}()
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	url = "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/health"); err == nil {
			resp.Body.Close()
			return stop, url, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return nil, "", errors.New("spawned server did not become healthy")
}

// publishLoad builds publish requests as a verification server and a phone
// would: a certificate signed by an authority the load test registers.
type publishLoad struct {
	url  string
	priv *ecdsa.PrivateKey
	kid  string
	app  string
}

const (
	loadIssuer   = "loadtest.candor.invalid"
	loadAudience = "loadtest.keyserver"
	loadApp      = "loadtest.app"
	loadRegion   = "LOAD"
)

// newPublishLoad registers the load test's authority and an app of it,
// app in region, and returns the builder of its publish requests.
func newPublishLoad(ctx context.Context, url, data, app, region string) (*publishLoad, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pemText, err := api.MarshalPublicKeyPEM(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	version := "load-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var ar authorityAddResponse
	if err := callOp(ctx, data, "authority.add", authorityAddRequest{Issuer: loadIssuer, Audience: loadAudience, KeyVersion: version, PublicKeyPEM: pemText}, &ar); err != nil {
		return nil, fmt.Errorf("register load-test authority: %w", err)
	}
	var added json.RawMessage
	if err := callOp(ctx, data, "app.add", appAddRequest{ID: app, Authority: loadIssuer, Region: region}, &added); err != nil {
		return nil, fmt.Errorf("register load-test app: %w", err)
	}
	return &publishLoad{url: strings.TrimSuffix(url, "/"), priv: priv, kid: version, app: app}, nil
}

func (p *publishLoad) requests(n, keysPer int) ([]*loadgen.Request, error) {
	now := time.Now()
	today := keyserver.IntervalNumber(now)
	today -= today % keyserver.IntervalsPerDay
	header := http.Header{"Content-Type": {"application/json"}}
	out := make([]*loadgen.Request, n)
	raw := make([]byte, 16*keysPer)
	secret := make([]byte, 32)
	for i := range out {
		rand.Read(raw)
		rand.Read(secret)
		keys := make([]api.ExposureKey, keysPer)
		for j := range keys {
			keys[j] = api.ExposureKey{
				Key:              base64.StdEncoding.EncodeToString(raw[16*j : 16*j+16]),
				IntervalNumber:   today - int32(keysPer-1-j)*keyserver.IntervalsPerDay,
				IntervalCount:    keyserver.IntervalsPerDay,
				TransmissionRisk: 1 + j%8,
			}
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
			"reportType": api.ReportTypeConfirmed,
			"tekmac":     base64.StdEncoding.EncodeToString(api.TEKMAC(secret, keys, true)),
			"iss":        loadIssuer,
			"aud":        loadAudience,
			"iat":        now.Add(-5 * time.Second).Unix(),
			"nbf":        now.Add(-5 * time.Second).Unix(),
			"exp":        now.Add(15 * time.Minute).Unix(),
		})
		tok.Header["kid"] = p.kid
		cert, err := tok.SignedString(p.priv)
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(api.Publish{
			Keys: keys, HealthAuthorityID: p.app, VerificationPayload: cert,
			HMACKey: base64.StdEncoding.EncodeToString(secret),
		})
		if err != nil {
			return nil, err
		}
		out[i] = &loadgen.Request{Method: http.MethodPost, URL: p.url + api.PublishPath, Header: header, Body: body}
	}
	return out, nil
}

// verifyKeys are the API keys of the verify load: given by flags, or
// created in the realm loadtestRealm through the operator commands.
type verifyKeys struct{ admin, device string }

const loadtestRealm = "loadtest"

// ensureVerifyKeys creates, when the keys were not given, the load test's
// realm (no daily quota, so issuing is not cut off) and an admin and a
// device API key in it.
func ensureVerifyKeys(ctx context.Context, data string, vk verifyKeys) (verifyKeys, error) {
	if vk.admin != "" {
		return vk, nil
	}
	if data == "" {
		return vk, usageError{"verify mode needs --admin-key and --device-key, or --data of the server (to create them), or --spawn"}
	}
	var realms []struct {
		Name string `json:"name"`
	}
	if err := callOp(ctx, data, "realm.list", struct{}{}, &realms); err != nil {
		return vk, fmt.Errorf("list realms: %w", err)
	}
	if !slices.ContainsFunc(realms, func(r struct {
		Name string `json:"name"`
	}) bool {
		return r.Name == loadtestRealm
	}) {
		var created json.RawMessage
		req := map[string]any{"name": loadtestRealm, "region": "LOADTEST", "dailyQuota": 0}
		if err := callOp(ctx, data, "realm.add", req, &created); err != nil {
			return vk, fmt.Errorf("create realm %s: %w", loadtestRealm, err)
		}
	}
	for kind, dst := range map[string]*string{"admin": &vk.admin, "device": &vk.device} {
		var key struct {
			Secret string `json:"secret"`
		}
		req := map[string]string{"realm": loadtestRealm, "kind": kind, "name": "loadtest " + kind}
		if err := callOp(ctx, data, "apikey.add", req, &key); err != nil {
			return vk, fmt.Errorf("create %s API key: %w", kind, err)
		}
		if key.Secret == "" {
			return vk, fmt.Errorf("create %s API key: no secret in the answer", kind)
		}
		*dst = key.Secret
	}
	return vk, nil
}

// verifyLoadtest runs the app's verification flow (issue, verify,
// certificate) with each level's concurrency and times each step.
func verifyLoadtest(ctx context.Context, io IO, url, data string, vk verifyKeys, levels []int, duration time.Duration) ([]loadgen.Result, error) {
	vk, err := ensureVerifyKeys(ctx, data, vk)
	if err != nil {
		return nil, err
	}
	var results []loadgen.Result
	for _, c := range levels {
		cl, err := client.New(url, client.WithHTTPClient(loadgen.NewClient(c)))
		if err != nil {
			return nil, err
		}
		flow := func(ctx context.Context, rec *flowRecorder) {
			today := time.Now().UTC().Format(time.DateOnly)
			t0 := time.Now()
			iss, err := cl.Issue(ctx, vk.admin, &api.IssueCodeRequest{TestType: api.TestTypeConfirmed, SymptomDate: today})
			if !rec.step(ctx, "issue", t0, err) {
				return
			}
			t1 := time.Now()
			v, err := cl.Verify(ctx, vk.device, iss.VerificationCode, nil)
			if !rec.step(ctx, "verify", t1, err) {
				return
			}
			hmac := make([]byte, 32)
			rand.Read(hmac)
			t2 := time.Now()
			_, err = cl.Certificate(ctx, vk.device, v.VerificationToken, base64.StdEncoding.EncodeToString(hmac))
			if rec.step(ctx, "certificate", t2, err) {
				rec.step(ctx, "flow", t0, nil)
			}
		}
		// Warm up, then measure.
		runFlows(ctx, c, 2*time.Second, flow)
		rec := runFlows(ctx, c, duration, flow)
		for _, step := range []string{"issue", "verify", "certificate", "flow"} {
			res := rec.result(step, "verify: "+step, c)
			printResult(io, res)
			results = append(results, res)
		}
	}
	return results, nil
}

// flowRecorder collects the latencies and outcomes of named steps.
type flowRecorder struct {
	mu       sync.Mutex
	elapsed  time.Duration
	lat      map[string][]time.Duration
	statuses map[string]map[int]int
	errs     map[string]int
}

// step records a step that began at start and ended with err, and reports
// whether the flow may go on. A step cut off by the end of the run is not
// recorded.
func (r *flowRecorder) step(ctx context.Context, name string, start time.Time, err error) bool {
	d := time.Since(start)
	if ctx.Err() != nil {
		return false
	}
	status := http.StatusOK
	if err != nil {
		status = 0 // a transport error
		var apiErr *client.APIError
		if errors.As(err, &apiErr) {
			status = apiErr.Status
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat[name] = append(r.lat[name], d)
	if r.statuses[name] == nil {
		r.statuses[name] = map[int]int{}
	}
	r.statuses[name][status]++
	if err != nil {
		r.errs[name]++
	}
	return err == nil
}

// result summarises one step, under name, like loadgen.Run does a request.
func (r *flowRecorder) result(step, name string, concurrency int) loadgen.Result {
	lat := slices.Clone(r.lat[step])
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	res := loadgen.Result{Name: name, Concurrency: concurrency, Requests: len(lat), Errors: r.errs[step], Statuses: r.statuses[step],
		Elapsed: r.elapsed, P50: pct(.50), P90: pct(.90), P99: pct(.99)}
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	return res
}

// runFlows runs flow in concurrency workers, each in a loop, for duration.
func runFlows(ctx context.Context, concurrency int, duration time.Duration, flow func(context.Context, *flowRecorder)) *flowRecorder {
	rec := &flowRecorder{lat: map[string][]time.Duration{}, statuses: map[string]map[int]int{}, errs: map[string]int{}}
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				flow(ctx, rec)
			}
		})
	}
	wg.Wait()
	rec.elapsed = time.Since(start)
	return rec
}

// downloadLoadtest fetches the export index and the files it lists, as
// phones do, with each level's concurrency.
func downloadLoadtest(ctx context.Context, stdio IO, url, data, root string, levels []int, duration time.Duration) ([]loadgen.Result, error) {
	if root == "" {
		if data == "" {
			return nil, usageError{"download mode needs --exports-root of a root with files, or --data of the server (to make one), or --spawn"}
		}
		var err error
		if root, err = prepareDownloads(ctx, stdio, url, data); err != nil {
			return nil, err
		}
	}
	cl, err := client.New(url)
	if err != nil {
		return nil, err
	}
	names, err := cl.Index(ctx, root)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("export root %s lists no files", root)
	}
	index := []*loadgen.Request{{Method: http.MethodGet, URL: url + client.ExportsPath + root + "/index.txt"}}
	var zips []*loadgen.Request
	var size int64
	for _, n := range names {
		r := &loadgen.Request{Method: http.MethodGet, URL: url + client.ExportsPath + n}
		zips = append(zips, r)
		resp, err := http.Get(r.URL)
		if err != nil {
			return nil, err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("get %s: %d %v", r.URL, resp.StatusCode, err)
		}
		size += n
	}
	zipLoad := fmt.Sprintf("download: %d zip file(s), avg %.0f KiB", len(zips), float64(size)/float64(len(zips))/1024)
	var results []loadgen.Result
	for _, c := range levels {
		hc := loadgen.NewClient(c)
		loadgen.Run(ctx, hc, "warmup", &cycle{reqs: zips}, c, 2*time.Second, okStatus)
		for _, l := range []struct {
			name string
			reqs []*loadgen.Request
		}{{"download: index.txt", index}, {zipLoad, zips}} {
			res := loadgen.Run(ctx, hc, l.name, &cycle{reqs: l.reqs}, c, duration, okStatus)
			printResult(stdio, res)
			results = append(results, res)
		}
	}
	return results, nil
}

// cycle is a loadgen.Source that hands out its requests round and round.
type cycle struct {
	reqs []*loadgen.Request
	i    atomic.Int64
}

// Next implements loadgen.Source.
func (c *cycle) Next() (*loadgen.Request, bool) {
	i := c.i.Add(1) - 1
	return c.reqs[i%int64(len(c.reqs))], true
}

// Shape of the export the download load makes: one hour's file of
// downloadUploads uploads of 14 keys, from an app and region of its own so
// that the publish load's keys do not end up in it.
const (
	downloadRoot    = "loadtest"
	downloadApp     = "loadtest.download"
	downloadRegion  = "LOADDL"
	downloadUploads = 2000
)

// prepareDownloads makes an export file to download: it publishes keys as
// the publish load does, adds the export configuration downloadRoot for
// them and runs an export pass as if the window had closed (as `candor
// export run --now … --allow-future` does).
func prepareDownloads(ctx context.Context, io IO, url, data string) (string, error) {
	pl, err := newPublishLoad(ctx, url, data, downloadApp, downloadRegion)
	if err != nil {
		return "", err
	}
	var created json.RawMessage
	add := map[string]any{"root": downloadRoot, "region": downloadRegion, "keyId": "load", "keyVersion": "v1"}
	if err := callOp(ctx, data, "export.add", add, &created); err != nil {
		return "", fmt.Errorf("add export configuration: %w", err)
	}
	fmt.Fprintf(io.Err, "publishing %d uploads of 14 keys and exporting them...\n", downloadUploads)
	reqs, err := pl.requests(downloadUploads, 14)
	if err != nil {
		return "", err
	}
	res := loadgen.Run(ctx, loadgen.NewClient(16), "prepare", loadgen.NewSlice(reqs), 16, time.Minute, okStatus)
	if res.Errors > 0 || res.Requests != downloadUploads {
		return "", fmt.Errorf("publish for the download load: %d of %d failed: %v", res.Errors, res.Requests, res.Statuses)
	}
	at := time.Now().UTC().Truncate(time.Hour).Add(time.Hour + 16*time.Minute)
	var ran struct {
		Errors []string `json:"errors"`
	}
	if err := callOp(ctx, data, "export.run", map[string]any{"now": at.Format(time.RFC3339), "allowFuture": true}, &ran); err != nil {
		return "", fmt.Errorf("export run: %w", err)
	}
	if len(ran.Errors) > 0 {
		return "", fmt.Errorf("export run: %s", strings.Join(ran.Errors, "; "))
	}
	return downloadRoot, nil
}
