package storetest

import (
	"crypto/rand"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/candor-en/candor/keyserver"
)

// Linkage is the outcome of the order attack on the exposures of one
// publish window: an insider who can read the store, and who knows the order
// of the uploads (from claim times of codes, say), cuts the stored order of
// the window's keys into runs, one per upload, and gives the i-th run to the
// i-th upload.
//
// Bound. Every upload has K keys, M = N·K in all. When the stored order is a
// uniformly random permutation, independent of the upload order, then for
// each of the first M/2 positions, whatever the positions before it hold,
// the chance that it holds a key of the upload its run is given to is at
// most K/(M/2) = 2/N, so Attributed is stochastically at most
// Binomial(M/2, 2/N), of mean K; likewise, for each of the first M/4
// disjoint adjacent pairs the chance that both keys are of one upload is at
// most (K−1)/(M/2−1), so Paired is at most Binomial(M/4, (K−1)/(M/2−1)).
// Limits are the smallest counts whose Chernoff bound
// e^−μ·(eμ/t)^t is at most FalseAlarm: each check fails by chance with at
// most that probability. With the old layout (one upload's keys a
// consecutive run, in upload order) Attributed is M/2 and, for even K,
// Paired is M/4.
type Linkage struct {
	Uploads, KeysPerUpload int
	// Attributed counts the keys among the first half of the stored order
	// that the runs give to the right upload.
	Attributed int
	// Paired counts the first M/4 disjoint adjacent pairs (positions 2j and
	// 2j+1) whose two keys are of one upload.
	Paired int
	// AttributedLimit and PairedLimit are the chance limits (see Bound).
	AttributedLimit, PairedLimit int
}

// FalseAlarm bounds the chance that a random order fails one check of
// Linkage.
const FalseAlarm = 1e-9

// MatchByOrder runs the order attack: stored is the window's keys in the
// order the store holds them; uploads are the uploads' keys, in the order
// the attacker believes they were made. Every upload must have the same
// number of keys, all of them in stored.
func MatchByOrder(stored [][keyserver.KeyLength]byte, uploads [][][keyserver.KeyLength]byte) (Linkage, error) {
	n := len(uploads)
	if n == 0 {
		return Linkage{}, fmt.Errorf("no uploads")
	}
	k := len(uploads[0])
	owner := make(map[[keyserver.KeyLength]byte]int, n*k)
	for i, u := range uploads {
		if len(u) != k {
			return Linkage{}, fmt.Errorf("upload %d has %d keys, upload 0 has %d", i, len(u), k)
		}
		for _, key := range u {
			owner[key] = i
		}
	}
	m := n * k
	if len(stored) != m || len(owner) != m {
		return Linkage{}, fmt.Errorf("%d stored keys, %d distinct uploaded keys, want %d", len(stored), len(owner), m)
	}
	l := Linkage{Uploads: n, KeysPerUpload: k}
	for pos, key := range stored[:m/2] {
		o, ok := owner[key]
		if !ok {
			return Linkage{}, fmt.Errorf("stored key %x was not uploaded", key)
		}
		if o == pos/k {
			l.Attributed++
		}
	}
	for j := 0; j < m/4; j++ {
		if owner[stored[2*j]] == owner[stored[2*j+1]] {
			l.Paired++
		}
	}
	l.AttributedLimit = chanceLimit(float64(m/2), 2/float64(n))
	l.PairedLimit = chanceLimit(float64(m/4), float64(k-1)/float64(m/2-1))
	return l, nil
}

// Err reports an attack that did better than chance.
func (l Linkage) Err() error {
	if l.Attributed >= l.AttributedLimit || l.Paired >= l.PairedLimit {
		return fmt.Errorf("the stored order links keys to uploads: %d of the first %d keys attributed to the right upload (chance limit %d), %d of %d adjacent pairs from one upload (chance limit %d)",
			l.Attributed, l.Uploads*l.KeysPerUpload/2, l.AttributedLimit, l.Paired, l.Uploads*l.KeysPerUpload/4, l.PairedLimit)
	}
	return nil
}

// chanceLimit is the smallest t > np with e^−μ·(eμ/t)^t ≤ FalseAlarm, the
// Chernoff bound of P(Binomial(n, p) ≥ t), μ = np.
func chanceLimit(n, p float64) int {
	mu := n * p
	for t := math.Floor(mu) + 1; ; t++ {
		if -mu+t*(1+math.Log(mu/t)) <= math.Log(FalseAlarm) {
			return int(t)
		}
	}
}

// testExposureOrder: the keys of one window come back from the scan in an
// order that links none of them to its upload (see Linkage), and the
// attack itself finds the link in the old, sequential layout.
func testExposureOrder(t *testing.T, s ExposureStore) {
	const uploads, perUpload = 40, 14
	created := base.Add(5 * time.Hour)
	var all [][][keyserver.KeyLength]byte
	for u := range uploads {
		es := make([]*keyserver.Exposure, perUpload)
		keys := make([][keyserver.KeyLength]byte, perUpload)
		for i := range es {
			es[i] = exposure(u*perUpload+i, created)
			rand.Read(es[i].Key[:]) // phones' keys are random
			keys[i] = es[i].Key
		}
		insert(t, s, es...)
		all = append(all, keys)
	}
	var stored [][keyserver.KeyLength]byte
	for _, e := range collect(t, createdScan(s), created, created.Add(time.Hour)) {
		stored = append(stored, e.Key)
	}
	l, err := MatchByOrder(stored, all)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Err(); err != nil {
		t.Error(err)
	}
	t.Logf("attributed %d (limit %d), paired %d (limit %d)", l.Attributed, l.AttributedLimit, l.Paired, l.PairedLimit)

	// The attack is not toothless: on the upload order itself it wins.
	var sequential [][keyserver.KeyLength]byte
	for _, u := range all {
		sequential = append(sequential, u...)
	}
	if l, _ := MatchByOrder(sequential, all); l.Err() == nil {
		t.Errorf("the attack misses the sequential layout: %+v", l)
	}
}
