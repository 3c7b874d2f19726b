package main

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/storage/redis/redistest"
	"github.com/candor-en/candor/verification"
)

// The attacks on the device endpoints' promises, against the real binary:
// that whoever holds the app's public device key cannot lock every phone out
// of /api/verify, and that decoys (X-Chaff) cannot be told from real
// requests by the time or the size of their answers, whatever clients send.

// e2eClientFrom is an HTTP client whose connections leave from ip (any
// 127.0.0.0/8 address works on loopback): another client address.
func e2eClientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}}
}

// e2eShot is one request and its answer as the network shows it.
type e2eShot struct {
	path, key string
	body      []byte
	decoy     bool
	// base is the server's URL when not the one e2eSendAll is given.
	base string

	status  int
	answer  []byte
	latency time.Duration
	err     error
}

// send posts the request with cl and times it until the answer is read.
func (r *e2eShot) send(cl *http.Client, base string) {
	req, _ := http.NewRequest(http.MethodPost, cmp.Or(r.base, base)+r.path, bytes.NewReader(r.body))
	req.Header.Set("Content-Type", "application/json")
	if r.key != "" {
		req.Header.Set(api.APIKeyHeader, r.key)
	}
	if r.decoy {
		req.Header.Set(api.ChaffHeader, "1")
	}
	start := time.Now()
	resp, err := cl.Do(req)
	if err != nil {
		r.err = err
		return
	}
	r.answer, r.err = io.ReadAll(resp.Body)
	resp.Body.Close()
	r.latency, r.status = time.Since(start), resp.StatusCode
}

// e2eSendAll sends shots with workers at once, in the order given, and
// fails the test on a transport error.
func e2eSendAll(t *testing.T, cl *http.Client, base string, workers int, shots []*e2eShot) {
	t.Helper()
	next := make(chan *e2eShot)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for r := range next {
				r.send(cl, base)
			}
		})
	}
	for _, r := range shots {
		next <- r
	}
	close(next)
	wg.Wait()
	for _, r := range shots {
		if r.err != nil {
			t.Fatalf("%s: %v", r.path, r.err)
		}
	}
}

func e2eJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func e2eRandomBase64(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// e2ePadding is the request padding a phone adds, real or decoy alike.
func e2ePadding() string { return e2eRandomBase64(768 + mrand.IntN(768)) }

// e2eIssue issues n codes with the admin key, ten to a batch.
func e2eIssue(t *testing.T, s *e2eServer, r *e2eRealm, n int) []string {
	t.Helper()
	var codes []string
	for len(codes) < n {
		req := api.BatchIssueCodeRequest{}
		for range min(api.MaxBatchIssue, n-len(codes)) {
			req.Codes = append(req.Codes, &api.IssueCodeRequest{TestType: api.TestTypeConfirmed, SymptomDate: time.Now().UTC().AddDate(0, 0, -3).Format(time.DateOnly)})
		}
		status, raw := s.postJSON(api.BatchIssuePath, req, map[string]string{api.APIKeyHeader: r.admin})
		var resp api.BatchIssueCodeResponse
		if err := json.Unmarshal(raw, &resp); status != http.StatusOK || err != nil {
			t.Fatalf("batch issue: %d %s", status, raw)
		}
		for _, c := range resp.Codes {
			codes = append(codes, c.VerificationCode)
		}
	}
	return codes
}

// e2eVerifyShot redeems code like a phone.
func e2eVerifyShot(r *e2eRealm, code string) *e2eShot {
	return &e2eShot{path: api.VerifyPath, key: r.device, body: e2eJSON(api.VerifyCodeRequest{VerificationCode: code, AcceptTestTypes: []string{api.TestTypeConfirmed}, Padding: e2ePadding()})}
}

// e2eUpload is a phone's upload in the making: its keys and HMAC secret.
type e2eUpload struct {
	keys   []api.ExposureKey
	secret []byte
	token  string
}

func (u *e2eUpload) certificateShot(r *e2eRealm) *e2eShot {
	mac := base64.StdEncoding.EncodeToString(api.TEKMAC(u.secret, u.keys, true))
	return &e2eShot{path: api.CertificatePath, key: r.device, body: e2eJSON(api.VerificationCertificateRequest{VerificationToken: u.token, ExposureKeyHMAC: mac, Padding: e2ePadding()})}
}

func (u *e2eUpload) publishShot(r *e2eRealm, cert string) *e2eShot {
	return &e2eShot{path: api.PublishPath, body: e2eJSON(api.Publish{Keys: u.keys, HealthAuthorityID: r.app, VerificationPayload: cert,
		HMACKey: base64.StdEncoding.EncodeToString(u.secret), Padding: e2ePadding()})}
}

// e2eDecoyShot is an X-Chaff request to path shaped like a real one, as
// client.Chaff sends it.
func e2eDecoyShot(r *e2eRealm, path string) *e2eShot {
	s := &e2eShot{path: path, decoy: true, key: r.device}
	switch path {
	case api.VerifyPath:
		s.body = e2eJSON(api.VerifyCodeRequest{VerificationCode: fmt.Sprintf("%08d", mrand.IntN(100_000_000)), Padding: e2ePadding()})
	case api.CertificatePath:
		s.body = e2eJSON(api.VerificationCertificateRequest{VerificationToken: e2eRandomBase64(300), ExposureKeyHMAC: e2eRandomBase64(32), Padding: e2ePadding()})
	case api.PublishPath:
		s.key = ""
		s.body = e2eJSON(api.Publish{Keys: e2eKeys(14), HealthAuthorityID: r.app, VerificationPayload: e2eRandomBase64(400),
			HMACKey: e2eRandomBase64(32), Padding: e2ePadding()})
	}
	return s
}

// e2eDecoySupply makes what real requests need: codes, tokens, certificates.
type e2eDecoySupply struct {
	t  *testing.T
	s  *e2eServer
	r  *e2eRealm
	cl *http.Client
	// workers send measured requests at once; making the material of
	// another endpoint's requests goes faster (it feeds other timers).
	workers, prepWorkers int
}

// uploads returns n uploads, with tokens when stage is past verify and
// certificates (in the map) when past certificate.
func (p *e2eDecoySupply) uploads(n int, certificates bool) ([]*e2eUpload, map[*e2eUpload]string) {
	p.t.Helper()
	codes := e2eIssue(p.t, p.s, p.r, n)
	shots := make([]*e2eShot, n)
	for i, c := range codes {
		shots[i] = e2eVerifyShot(p.r, c)
	}
	e2eSendAll(p.t, p.cl, p.s.url, p.prepWorkers, shots)
	ups := make([]*e2eUpload, n)
	for i, sh := range shots {
		var v api.VerifyCodeResponse
		if err := json.Unmarshal(sh.answer, &v); sh.status != http.StatusOK || err != nil || v.VerificationToken == "" {
			p.t.Fatalf("verify: %d %s", sh.status, sh.answer)
		}
		secret := make([]byte, 32)
		rand.Read(secret)
		ups[i] = &e2eUpload{keys: e2eKeys(14), secret: secret, token: v.VerificationToken}
	}
	if !certificates {
		return ups, nil
	}
	for i, u := range ups {
		shots[i] = u.certificateShot(p.r)
	}
	e2eSendAll(p.t, p.cl, p.s.url, p.prepWorkers, shots)
	certs := map[*e2eUpload]string{}
	for i, sh := range shots {
		var c api.VerificationCertificateResponse
		if err := json.Unmarshal(sh.answer, &c); sh.status != http.StatusOK || err != nil || c.Certificate == "" {
			p.t.Fatalf("certificate: %d %s", sh.status, sh.answer)
		}
		certs[ups[i]] = c.Certificate
	}
	return ups, certs
}

// reals returns n real requests to path that succeed.
func (p *e2eDecoySupply) reals(path string, n int) []*e2eShot {
	shots := make([]*e2eShot, n)
	switch path {
	case api.VerifyPath:
		for i, c := range e2eIssue(p.t, p.s, p.r, n) {
			shots[i] = e2eVerifyShot(p.r, c)
		}
	case api.CertificatePath:
		ups, _ := p.uploads(n, false)
		for i, u := range ups {
			shots[i] = u.certificateShot(p.r)
		}
	case api.PublishPath:
		ups, certs := p.uploads(n, true)
		for i, u := range ups {
			shots[i] = u.publishShot(p.r, certs[u])
		}
	}
	return shots
}

// decoysBeside sends n decoys to path on the supply's server and n on
// control, in one random order, and compares their latencies: sent
// together, the machine's load weighs on both alike.
func (p *e2eDecoySupply) decoysBeside(control *e2eServer, path string, n int) []string {
	shots := make([]*e2eShot, 2*n)
	for i := range shots {
		shots[i] = e2eDecoyShot(p.r, path)
		if i >= n {
			shots[i].base = control.url
		}
	}
	mrand.Shuffle(len(shots), func(i, j int) { shots[i], shots[j] = shots[j], shots[i] })
	e2eSendAll(p.t, p.cl, p.s.url, p.workers, shots)
	var here, there []float64
	for _, sh := range shots {
		if sh.status != http.StatusOK {
			p.t.Fatalf("decoy %s: %d %s", path, sh.status, sh.answer)
		}
		if sh.base == "" {
			here = append(here, sh.latency.Seconds())
		} else {
			there = append(there, sh.latency.Seconds())
		}
	}
	return e2eKS(p.t, "decoy latency (s), poisoned and fresh server", here, there)
}

// e2eKSAlpha is the significance of each KS check: one in a hundred
// checks of equal distributions fails by chance.
const e2eKSAlpha = 0.01

// e2eCheckTwice runs check, and once more on fresh samples when it fails,
// and fails the test when both runs fail. A run of a KS check on equal
// distributions fails with probability e2eKSAlpha (at most, with ties),
// so k checks in a run fail it by chance with probability ≤ k·1%, and the
// test only when the second run fails too: ≤ (k·1%)², 4e-4 for the two
// checks of a decoy comparison. A real difference fails both.
func e2eCheckTwice(t *testing.T, name string, check func() []string) {
	t.Helper()
	for run := 1; ; run++ {
		failed := check()
		if len(failed) == 0 {
			return
		}
		if run == 2 {
			t.Errorf("%s, twice on fresh samples: %v", name, failed)
			return
		}
		t.Logf("%s: %v; once more on fresh samples", name, failed)
	}
}

// e2eKS compares two samples and returns a failure when KS says, at
// e2eKSAlpha, that they come from different distributions.
func e2eKS(t *testing.T, what string, a, b []float64) []string {
	d, p := ksTwoSample(a, b)
	t.Logf("%s: n=%d, %d; medians %.4g, %.4g; D=%.3f p=%.3g", what, len(a), len(b), median(a), median(b), d, p)
	if p <= e2eKSAlpha {
		return []string{fmt.Sprintf("%s differ (D=%.3f, p=%.2g)", what, d, p)}
	}
	return nil
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(x))
	return s[len(s)/2]
}

// ksTwoSample is the two-sample Kolmogorov–Smirnov test: the largest
// distance D between the empirical distributions of a and b, and the
// probability p of a distance at least D if both came from one continuous
// distribution (the Kolmogorov distribution with Stephens' small-sample
// correction). Tied values are stepped over together, which only makes p
// larger (conservative) for discrete data such as sizes.
func ksTwoSample(a, b []float64) (d, p float64) {
	x, y := slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		v := min(x[i], y[j])
		for i < len(x) && x[i] == v {
			i++
		}
		for j < len(y) && y[j] == v {
			j++
		}
		d = max(d, math.Abs(float64(i)/float64(len(x))-float64(j)/float64(len(y))))
	}
	ne := float64(len(x)*len(y)) / float64(len(x)+len(y))
	sq := math.Sqrt(ne)
	return d, kolmogorovQ((sq + 0.12 + 0.11/sq) * d)
}

// kolmogorovQ is P(K > x) for the Kolmogorov distribution:
// 2 Σ_{j≥1} (-1)^(j-1) e^(-2 j² x²).
func kolmogorovQ(x float64) float64 {
	if x < 0.2 {
		return 1 // 1 - Q(0.2) < 1e-20; the series converges slowly below
	}
	sum := 0.0
	for j := 1; j <= 100; j++ {
		term := math.Exp(-2 * float64(j*j) * x * x)
		if j%2 == 1 {
			sum += term
		} else {
			sum -= term
		}
		if term < 1e-17 {
			break
		}
	}
	return min(1, max(0, 2*sum))
}

// TestKSTwoSample: the statistic on small samples with ties, the
// Kolmogorov tail against published values, and the power to see a shift.
func TestKSTwoSample(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b []float64
		d    float64
	}{
		{"apart", []float64{1, 2, 3}, []float64{4, 5, 6}, 1},
		{"equal", []float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}, 0},
		{"ties", []float64{1, 1, 2}, []float64{1, 2, 2}, 1.0 / 3},
		{"interleaved", []float64{1, 3, 5, 7}, []float64{2, 4, 6, 8}, 0.25},
	} {
		if d, _ := ksTwoSample(tc.a, tc.b); math.Abs(d-tc.d) > 1e-12 {
			t.Errorf("%s: D = %g, want %g", tc.name, d, tc.d)
		}
	}
	if _, p := ksTwoSample([]float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}); p != 1 {
		t.Errorf("equal samples: p = %g, want 1", p)
	}
	// Values of the Kolmogorov distribution's tail.
	for x, want := range map[float64]float64{0.1: 1, 0.5: 0.9639452, 1.0: 0.2699997, 1.36: 0.0494859, 1.63: 0.0098464, 3: 3.05e-8} {
		if got := kolmogorovQ(x); math.Abs(got-want) > 1e-7 {
			t.Errorf("Q(%g) = %.8g, want %.8g", x, got, want)
		}
	}
	// 300 against 300: a shift of a fifth of the spread is seen, the same
	// distribution is not (a fixed seed keeps this deterministic).
	rnd := mrand.New(mrand.NewPCG(1, 2))
	sample := func(shift float64) []float64 {
		s := make([]float64, 300)
		for i := range s {
			s[i] = rnd.Float64() + shift
		}
		return s
	}
	if _, p := ksTwoSample(sample(0), sample(0.2)); p > 1e-4 {
		t.Errorf("shifted: p = %g, want tiny", p)
	}
	if _, p := ksTwoSample(sample(0), sample(0)); p <= e2eKSAlpha {
		t.Errorf("same distribution: p = %g", p)
	}
}

// TestE2EDecoysIndistinguishable: on the real binary, 300 real requests
// that succeed and 300 decoys (X-Chaff), sent at once in one random order,
// to /api/verify, /api/certificate and /v1/publish: the two-sample KS test
// finds no difference between real and decoy answers, neither in latency
// nor in size. Before that, on the fresh server, the poisoning that used to
// move decoy latencies (one upload sent a byte at a time, then 600 junk {}
// requests) leaves the decoys' latency distribution as on a server nobody
// poisoned.
func TestE2EDecoysIndistinguishable(t *testing.T) {
	// The test's load comes from one address.
	s := startE2EServer(t, "", "--rate-limit-per-address", "0", "--log-level", "warn")
	control := startE2EServer(t, "", "--rate-limit-per-address", "0", "--log-level", "warn")
	r := addE2ERealm(t, s.bin, s.data, "decoys", "US-DC")
	const n, workers = 300, 24
	sup := &e2eDecoySupply{t: t, s: s, r: r, cl: e2eClientFrom("127.0.0.1"), workers: workers, prepWorkers: 2 * workers}

	// Poisoning, before any real traffic: only the attacker's requests
	// could have moved the decoys. Decoys to the poisoned server are
	// compared with decoys sent at the same time to the control server, so
	// that the load of the machine, which changes from second to second,
	// weighs on both alike.
	for _, path := range []string{api.PublishPath, api.VerifyPath} {
		t.Run("poisoning "+path, func(t *testing.T) {
			sup.t = t
			defer func() { sup.t = nil }()
			const m = 100
			slow := sup.reals(path, 1)[0]
			e2eSlowSend(t, s.url, slow, 20, 100*time.Millisecond)
			if slow.status != http.StatusOK {
				t.Fatalf("slow upload: %d %s", slow.status, slow.answer)
			}
			e2eCheckTwice(t, "decoy latency after a slow upload", func() []string {
				return sup.decoysBeside(control, path, m)
			})
			// Junk from another address, so that the failures it makes on
			// /api/verify spend that address's budget, not the test's.
			junk := make([]*e2eShot, 600)
			for i := range junk {
				junk[i] = &e2eShot{path: path, key: r.device, body: []byte(`{}`)}
			}
			e2eSendAll(t, e2eClientFrom("127.0.0.9"), s.url, 4*workers, junk)
			e2eCheckTwice(t, "decoy latency after 600 junk requests", func() []string {
				return sup.decoysBeside(control, path, m)
			})
		})
	}

	for _, path := range []string{api.VerifyPath, api.CertificatePath, api.PublishPath} {
		t.Run("real and decoy "+path, func(t *testing.T) {
			sup.t = t
			defer func() { sup.t = nil }()
			e2eCheckTwice(t, "real and decoy answers", func() []string {
				shots := sup.reals(path, n)
				for range n {
					shots = append(shots, e2eDecoyShot(r, path))
				}
				mrand.Shuffle(len(shots), func(i, j int) { shots[i], shots[j] = shots[j], shots[i] })
				e2eSendAll(t, sup.cl, s.url, workers, shots)
				var lat, size [2][]float64 // [0] real, [1] decoy
				for _, sh := range shots {
					if sh.status != http.StatusOK {
						t.Fatalf("decoy %v: %d %s", sh.decoy, sh.status, sh.answer)
					}
					k := 0
					if sh.decoy {
						k = 1
					}
					lat[k] = append(lat[k], sh.latency.Seconds())
					size[k] = append(size[k], float64(len(sh.answer)))
				}
				return append(e2eKS(t, "latency (s), real and decoy", lat[0], lat[1]),
					e2eKS(t, "answer size (bytes), real and decoy", size[0], size[1])...)
			})
		})
	}
}

// e2eSlowSend sends the request's body in chunks pieces, one every gap,
// as a slow (or slowloris) client does.
func e2eSlowSend(t *testing.T, base string, r *e2eShot, chunks int, gap time.Duration) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() {
		step := (len(r.body) + chunks - 1) / chunks
		for b := r.body; len(b) > 0; b = b[min(step, len(b)):] {
			time.Sleep(gap)
			if _, err := pw.Write(b[:min(step, len(b))]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, base+r.path, pr)
	req.Header.Set("Content-Type", "application/json")
	if r.key != "" {
		req.Header.Set(api.APIKeyHeader, r.key)
	}
	resp, err := e2eHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r.answer, _ = io.ReadAll(resp.Body)
	r.status = resp.StatusCode
}

// TestE2EVerifyFailureBudget: whoever holds the app's device API key (it
// ships in every app) burns the failed-redemption budget of its own
// address only: meanwhile a phone on another address redeems its code. And
// however many addresses guess, together they make no more failed guesses
// than the API key's ceiling. In the embedded deployment (in memory) and
// with Redis (shared by replicas).
func TestE2EVerifyFailureBudget(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) []string
	}{
		{"embedded", func(*testing.T) []string { return nil }},
		{"redis", func(t *testing.T) []string { return []string{"--store", "redis://" + redistest.Start(t).Addr + "/0"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const ceiling = 50
			s := startE2EServer(t, "", append(tc.store(t), "--log-level", "warn",
				"--verify-key-failure-burst", fmt.Sprint(ceiling), "--verify-key-failure-interval", "1h")...)
			r := addE2ERealm(t, s.bin, s.data, "budget", "US-BG")
			codes := e2eIssue(t, s, r, 2)
			verify := func(cl *http.Client, code string) *e2eShot {
				sh := e2eVerifyShot(r, code)
				sh.send(cl, s.url)
				if sh.err != nil {
					t.Fatal(sh.err)
				}
				return sh
			}
			wrong := func() string { return fmt.Sprintf("%08d", mrand.IntN(100_000_000)) }

			// The attacker guesses until refused.
			attacker := e2eClientFrom("127.0.0.2")
			guesses := 0
			for ; ; guesses++ {
				sh := verify(attacker, wrong())
				if sh.status == http.StatusTooManyRequests {
					break
				}
				if guesses > 3*ceiling {
					t.Fatalf("no 429 after %d wrong codes from one address", guesses)
				}
			}
			if guesses != verification.DefaultFailureBurst {
				t.Errorf("one address made %d failed guesses, want %d", guesses, verification.DefaultFailureBurst)
			}
			// Locked out, even with a valid code.
			if sh := verify(attacker, codes[0]); sh.status != http.StatusTooManyRequests {
				t.Errorf("the attacker's address with a valid code: %d %s", sh.status, sh.answer)
			}
			// A phone on another address redeems its code.
			if sh := verify(e2eClientFrom("127.0.0.3"), codes[1]); sh.status != http.StatusOK {
				t.Fatalf("a phone on another address: %d %s", sh.status, sh.answer)
			}

			// Many addresses at once: the API key's ceiling bounds the
			// failed guesses of all (the first attacker's count too).
			var mu sync.Mutex
			failed := guesses
			var wg sync.WaitGroup
			for i := range 5 {
				cl := e2eClientFrom(fmt.Sprintf("127.0.0.%d", 10+i))
				wg.Go(func() {
					for range verification.DefaultFailureBurst {
						sh := &e2eShot{path: api.VerifyPath, key: r.device, body: e2eJSON(api.VerifyCodeRequest{VerificationCode: wrong()})}
						sh.send(cl, s.url)
						if sh.status == http.StatusBadRequest {
							mu.Lock()
							failed++
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			if failed != ceiling {
				t.Errorf("%d failed guesses from 6 addresses, want the ceiling of %d", failed, ceiling)
			}
		})
	}
}
