package web

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type padded struct {
	Message string `json:"message,omitempty"`
	Padding string `json:"padding,omitempty"`
}

// TestPadJSON: whatever an answer holds, its padded JSON is a size within
// [PaddedSizeMin, PaddedSizeMax]; one larger than that gets one byte.
func TestPadJSON(t *testing.T) {
	for _, tc := range []struct {
		name    string
		message string
		want    func(n int) bool
	}{
		{"empty", "", func(n int) bool { return n >= PaddedSizeMin && n <= PaddedSizeMax }},
		{"short", "code_invalid", func(n int) bool { return n >= PaddedSizeMin && n <= PaddedSizeMax }},
		{"escaped", strings.Repeat("<&>", 100), func(n int) bool { return n >= PaddedSizeMin && n <= PaddedSizeMax }},
		{"2,900 bytes", strings.Repeat("x", 2900), func(n int) bool { return n >= PaddedSizeMin && n <= PaddedSizeMax }},
		{"larger than the range", strings.Repeat("x", PaddedSizeMax), func(n int) bool { return n == PaddedSizeMax+len(`{"message":"","padding":"x"}`) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sizes := map[int]bool{}
			for range 20 {
				v := &padded{Message: tc.message}
				b, err := PadJSON(v, &v.Padding)
				if err != nil {
					t.Fatal(err)
				}
				var back padded
				if err := json.Unmarshal(b, &back); err != nil || back.Message != tc.message || back.Padding == "" {
					t.Fatalf("%s: %v", b, err)
				}
				if !tc.want(len(b)) {
					t.Fatalf("%d bytes", len(b))
				}
				sizes[len(b)] = true
			}
			if tc.name != "larger than the range" && len(sizes) < 10 {
				t.Errorf("20 answers took only %d sizes: not drawn", len(sizes))
			}
		})
	}
}

// TestReleaseTimer: only successes are kept, clamped, and decoys copy them
// only once minKeptWork are; a decoy waits at least the floor.
func TestReleaseTimer(t *testing.T) {
	gone, cancel := context.WithCancel(context.Background())
	cancel() // the waits return at once; what is kept is the point here
	var rt ReleaseTimer
	for range 100 {
		rt.Real(gone, time.Now().Add(-30*time.Second), false)
	}
	if rt.n != 0 {
		t.Fatalf("%d failed requests kept", rt.n)
	}
	for range minKeptWork - 1 {
		rt.Real(gone, time.Now().Add(-30*time.Second), true)
	}
	if rt.n != minKeptWork-1 || rt.work[0] != maxKeptWork {
		t.Fatalf("kept %d, the first %v: want %d clamped at %v", rt.n, rt.work[0], minKeptWork-1, maxKeptWork)
	}
	// Too few kept: a decoy waits its floor only.
	start := time.Now()
	rt.Decoy(context.Background(), start)
	if d := time.Since(start); d < ReleaseFloorMin || d >= maxKeptWork {
		t.Errorf("decoy with %d kept waited %v, want its floor", rt.n, d)
	}
	// Enough kept, all slow: a decoy overruns like them.
	rt.Real(gone, time.Now().Add(-30*time.Second), true)
	start = time.Now()
	rt.Decoy(context.Background(), start)
	if d := time.Since(start); d < maxKeptWork {
		t.Errorf("decoy waited %v, want the kept %v", d, maxKeptWork)
	}
	// A real answer waits at least its floor.
	start = time.Now()
	rt.Real(context.Background(), start, true)
	if d := time.Since(start); d < ReleaseFloorMin {
		t.Errorf("real answer waited %v, want ≥ %v", d, ReleaseFloorMin)
	}
}
