package web

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// Decoys. An app sends decoy requests (X-Chaff) shaped like real uploads so
// that an observer of its encrypted traffic cannot tell who reports a
// diagnosis. That observer sees when an answer leaves and how large it is,
// so the endpoints that take decoys make both independent of what happened:
//
//   - every answer, real or decoy, success or error, is released at a floor
//     drawn from one fixed distribution (uniform in [ReleaseFloorMin,
//     ReleaseFloorMax]) measured from the end of the body read, so neither
//     the client's upload speed nor the server's work shows;
//   - when real work overruns its floor, the answer leaves when the work is
//     done; a decoy then overruns as often and as much, because it waits for
//     the larger of its floor and the processing time of a recent real
//     success (ReleaseTimer);
//   - every answer is padded to a size drawn from one fixed distribution
//     (PadJSON).
//
// Nothing a client sends moves either distribution: failed requests are
// not kept, and kept processing times start after the body read and are
// clamped at maxKeptWork.
const (
	ReleaseFloorMin = 100 * time.Millisecond
	ReleaseFloorMax = 300 * time.Millisecond
	// PaddedSizeMin and PaddedSizeMax bound the padded size of answers, in
	// bytes: above the largest success answer (a publish answer with a
	// revision token and a warning for each of 30 keys is about 2,200).
	PaddedSizeMin = 3072
	PaddedSizeMax = 4096
	// maxKeptWork clamps a kept processing time, and so any decoy's wait.
	maxKeptWork = time.Second
	// minKeptWork is how many processing times are kept before decoys copy
	// them: with fewer, one slow first request (keys loading, a cold cache)
	// would weigh on most decoys.
	minKeptWork = 64
)

// Padding returns 1–2 KiB of random base64, added to answers outside the
// endpoints with decoys so that their size does not reveal the outcome.
func Padding() string { return randomPadding(1024 + rand.IntN(1025)) }

// randomPadding returns n characters of random base64.
func randomPadding(n int) string {
	b := make([]byte, n) // its base64 is longer than n; cut to n
	crand.Read(b)        // never fails since Go 1.24
	return base64.StdEncoding.EncodeToString(b)[:n]
}

// PadJSON marshals v, whose padding field pad points to, padded so that the
// JSON is a size drawn uniformly from [PaddedSizeMin, PaddedSizeMax],
// whatever v holds; an answer larger than that (never a success of an
// endpoint with decoys) gets one byte of padding.
func PadJSON(v any, pad *string) ([]byte, error) {
	*pad = "x"
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	target := PaddedSizeMin + rand.IntN(PaddedSizeMax-PaddedSizeMin+1)
	// Padding is base64, which JSON does not escape: each character is a byte.
	*pad = randomPadding(max(1, target-(len(b)-1)))
	return json.Marshal(v)
}

// RandomBase64 returns the standard base64 of n random bytes.
func RandomBase64(n int) string {
	b := make([]byte, n)
	crand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// ReadBody reads the request body (up to one byte over MaxBodyBytes, so
// that DecodeJSON still refuses a larger one) and puts it back for
// DecodeJSON; it returns when the read ended, where ReleaseTimer measures
// from. A decoy's body is read the same way and discarded.
func ReadBody(c echo.Context) time.Time {
	r := c.Request()
	body, _ := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	r.Body = io.NopCloser(bytes.NewReader(body))
	return time.Now()
}

// ReleaseTimer holds the answers of one endpoint with decoys until their
// release (see the package's decoy notes). The zero value is ready.
type ReleaseTimer struct {
	mu   sync.Mutex
	work [256]time.Duration
	n    int
}

// releaseFloor draws a floor from the fixed distribution.
func releaseFloor() time.Duration {
	return ReleaseFloorMin + rand.N(ReleaseFloorMax-ReleaseFloorMin)
}

// Real holds a real answer until start (the end of its body read) plus a
// drawn floor, or does not hold it when the work took longer. ok says
// whether the request succeeded: only then is its processing time kept,
// for decoys to copy overruns.
func (t *ReleaseTimer) Real(ctx context.Context, start time.Time, ok bool) {
	if ok {
		w := min(time.Since(start), maxKeptWork)
		t.mu.Lock()
		t.work[t.n%len(t.work)] = w
		t.n++
		t.mu.Unlock()
	}
	waitUntil(ctx, start.Add(releaseFloor()))
}

// Decoy holds a decoy answer until start plus the larger of a drawn floor
// and the processing time of a recent real success (none before
// minKeptWork were kept).
func (t *ReleaseTimer) Decoy(ctx context.Context, start time.Time) {
	var w time.Duration
	t.mu.Lock()
	if t.n >= minKeptWork {
		w = t.work[rand.IntN(min(t.n, len(t.work)))]
	}
	t.mu.Unlock()
	waitUntil(ctx, start.Add(max(releaseFloor(), w)))
}

// waitUntil returns at release, or sooner when ctx ends (the client left).
func waitUntil(ctx context.Context, release time.Time) {
	d := time.Until(release)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}
