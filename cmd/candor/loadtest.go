package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/internal/loadgen"
	"github.com/candor-en/candor/keyserver"
)

func runLoadtest(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("loadtest [flags]", "Drive load against a Candor server and print requests/s and latency percentiles.\nWith --spawn it starts a fresh `candor serve` in a temporary directory first.", io.Err)
	url := fs.String("url", "", "base URL of a running server (not with --spawn)")
	data := fs.String("data", "", "data directory of that server, to register the load test's authority")
	spawn := fs.Bool("spawn", false, "start a fresh server for the test and stop it afterwards")
	mode := fs.String("mode", "publish", "what to load: publish")
	conc := fs.String("concurrency", "16,64", "comma-separated concurrency levels")
	duration := fs.Duration("duration", 10*time.Second, "how long each level runs")
	keysPer := fs.Int("keys", 14, "keys per publish")
	rate := fs.Int("max-rate", 10000, "requests prebuilt per second of duration (an upper bound on the rate)")
	markdown := fs.Bool("markdown", false, "print a Markdown table")
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
	if *spawn {
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
	if *url == "" || *data == "" {
		return usageError{"give --url and --data of a running server, or --spawn"}
	}
	if *mode != "publish" {
		return usageError{fmt.Sprintf("--mode %q: only publish is implemented", *mode)}
	}
	pl, err := newPublishLoad(ctx, *url, *data)
	if err != nil {
		return err
	}
	var results []loadgen.Result
	for _, c := range levels {
		n := int(duration.Seconds()) * *rate
		fmt.Fprintf(io.Err, "building %d publish requests with certificates...\n", n)
		reqs, err := pl.requests(n, *keysPer)
		if err != nil {
			return err
		}
		// Warm the connections and the server before measuring.
		loadgen.Run(ctx, loadgen.NewClient(c), "warmup", loadgen.NewSlice(reqs[:min(len(reqs), 500)]), c, 5*time.Second, okStatus)
		res := loadgen.Run(ctx, loadgen.NewClient(c), "publish "+strconv.Itoa(*keysPer)+" keys", loadgen.NewSlice(reqs[min(len(reqs), 500):]), c, *duration, okStatus)
		fmt.Fprintln(io.Out, res)
		if res.Errors > 0 {
			fmt.Fprintf(io.Out, "  statuses: %v\n", res.Statuses)
		}
		results = append(results, res)
	}
	if *markdown {
		fmt.Fprintln(io.Out, "\n| load | concurrency | requests/s | p50 ms | p90 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|---:|")
		for _, r := range results {
			fmt.Fprintf(io.Out, "| %s | %d | %.0f | %.1f | %.1f | %.1f | %d |\n", r.Name, r.Concurrency, r.RPS(),
				float64(r.P50)/1e6, float64(r.P90)/1e6, float64(r.P99)/1e6, r.Errors)
		}
	}
	return nil
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
	cmd := exec.Command(exe, "serve", "--data", dir, "--addr", addr, "--log-level", "warn")
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
}

const (
	loadIssuer   = "loadtest.candor.invalid"
	loadAudience = "loadtest.keyserver"
	loadApp      = "loadtest.app"
)

func newPublishLoad(ctx context.Context, url, data string) (*publishLoad, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pemText, err := keyserver.MarshalPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	version := "load-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var ar authorityAddResponse
	if err := callOp(ctx, data, "authority.add", authorityAddRequest{Issuer: loadIssuer, Audience: loadAudience, KeyVersion: version, PublicKeyPEM: pemText}, &ar); err != nil {
		return nil, fmt.Errorf("register load-test authority: %w", err)
	}
	var app json.RawMessage
	if err := callOp(ctx, data, "app.add", appAddRequest{ID: loadApp, Authority: loadIssuer, Region: "LOAD"}, &app); err != nil {
		return nil, fmt.Errorf("register load-test app: %w", err)
	}
	return &publishLoad{url: strings.TrimSuffix(url, "/"), priv: priv, kid: version}, nil
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
			"tekmac":     base64.StdEncoding.EncodeToString(keyserver.TEKMAC(secret, keys, true)),
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
			Keys: keys, HealthAuthorityID: loadApp, VerificationPayload: cert,
			HMACKey: base64.StdEncoding.EncodeToString(secret),
		})
		if err != nil {
			return nil, err
		}
		out[i] = &loadgen.Request{Method: http.MethodPost, URL: p.url + api.PublishPath, Header: header, Body: body}
	}
	return out, nil
}
