package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/client"
	"github.com/candor-en/candor/internal/operator"
)

// loadtestRealm is the realm the verify load creates its API keys in when
// none are given.
const loadtestRealm = "loadtest"

// verifyKeys returns the admin and device API keys of the verify load:
// those of c, or, when c gives none, new ones in the realm loadtestRealm,
// created (with no daily quota, so issuing is not cut off) if missing.
func verifyKeys(ctx context.Context, c *Config) (admin, device string, err error) {
	if c.AdminKey != "" {
		return c.AdminKey, c.DeviceKey, nil
	}
	if c.Operator == nil {
		return "", "", errors.New("verify load: no API keys and no operator to create them")
	}
	var realms []operator.RealmInfo
	if err := c.Operator(ctx, "realm.list", operator.Empty{}, &realms); err != nil {
		return "", "", fmt.Errorf("list realms: %w", err)
	}
	if !slices.ContainsFunc(realms, func(r operator.RealmInfo) bool { return r.Name == loadtestRealm }) {
		var created json.RawMessage
		noQuota := 0
		req := operator.RealmAddRequest{Name: loadtestRealm, Region: "LOADTEST", RealmPolicy: operator.RealmPolicy{DailyQuota: &noQuota}}
		if err := c.Operator(ctx, "realm.add", req, &created); err != nil {
			return "", "", fmt.Errorf("create realm %s: %w", loadtestRealm, err)
		}
	}
	for kind, dst := range map[string]*string{"admin": &admin, "device": &device} {
		var key operator.APIKeyInfo
		req := operator.APIKeyAddRequest{Realm: loadtestRealm, Kind: kind, Name: "loadtest " + kind}
		if err := c.Operator(ctx, "apikey.add", req, &key); err != nil {
			return "", "", fmt.Errorf("create %s API key: %w", kind, err)
		}
		if key.Secret == "" {
			return "", "", fmt.Errorf("create %s API key: no secret in the answer", kind)
		}
		*dst = key.Secret
	}
	return admin, device, nil
}

// verifyLoad runs the app's verification flow (issue, verify, certificate)
// with each level's concurrency and times each step.
func verifyLoad(ctx context.Context, c *Config) ([]Result, error) {
	admin, device, err := verifyKeys(ctx, c)
	if err != nil {
		return nil, err
	}
	var results []Result
	for _, n := range c.Levels {
		cl, err := client.New(c.URL, client.WithHTTPClient(NewClient(n)))
		if err != nil {
			return nil, err
		}
		flow := func(ctx context.Context, rec *flowRecorder) {
			today := time.Now().UTC().Format(time.DateOnly)
			t0 := time.Now()
			iss, err := cl.Issue(ctx, admin, &api.IssueCodeRequest{TestType: api.TestTypeConfirmed, SymptomDate: today})
			if !rec.step(ctx, "issue", t0, err) {
				return
			}
			t1 := time.Now()
			v, err := cl.Verify(ctx, device, iss.VerificationCode, nil)
			if !rec.step(ctx, "verify", t1, err) {
				return
			}
			hmac := make([]byte, 32)
			rand.Read(hmac)
			t2 := time.Now()
			_, err = cl.Certificate(ctx, device, v.VerificationToken, base64.StdEncoding.EncodeToString(hmac))
			if rec.step(ctx, "certificate", t2, err) {
				rec.step(ctx, "flow", t0, nil)
			}
		}
		// Warm up, then measure.
		runFlows(ctx, n, 2*time.Second, flow)
		rec := runFlows(ctx, n, c.Duration, flow)
		for _, step := range []string{"issue", "verify", "certificate", "flow"} {
			res := rec.result(step, "verify: "+step, n)
			c.print(res)
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

// result summarises one step, under name, like Run does a request.
func (r *flowRecorder) result(step, name string, concurrency int) Result {
	res := summarise(slices.Clone(r.lat[step]))
	res.Name, res.Concurrency, res.Errors, res.Statuses, res.Elapsed = name, concurrency, r.errs[step], r.statuses[step], r.elapsed
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
