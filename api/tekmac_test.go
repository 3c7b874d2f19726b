package api_test

import (
	"bufio"
	"encoding/base64"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/candor-en/candor/api"
)

// openVectors opens the repository's copy of a shared test-vector file, or
// the shared one beside the repository.
func openVectors(t *testing.T, name string) *os.File {
	t.Helper()
	for _, p := range []string{"testdata/" + name, "../../shared/vectors/" + name} {
		if f, err := os.Open(p); err == nil {
			t.Cleanup(func() { f.Close() })
			return f
		}
	}
	t.Fatalf("test vectors %s not found in testdata/ or ../../shared/vectors/", name)
	return nil
}

func TestTEKMACVectors(t *testing.T) {
	sc := bufio.NewScanner(openVectors(t, "tekmac.tsv"))
	rows := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 5 {
			t.Fatalf("bad vector row %q", line)
		}
		secret, err := base64.StdEncoding.DecodeString(cols[0])
		if err != nil {
			t.Fatal(err)
		}
		var keys []api.ExposureKey
		for _, k := range strings.Fields(cols[1]) {
			f := strings.Split(k, ":")
			rsn, _ := strconv.Atoi(f[1])
			rp, _ := strconv.Atoi(f[2])
			tr, _ := strconv.Atoi(f[3])
			keys = append(keys, api.ExposureKey{Key: f[0], IntervalNumber: int32(rsn), IntervalCount: int32(rp), TransmissionRisk: tr})
		}
		withRisk := cols[2] == "4"
		if got := api.TEKMACCleartext(keys, withRisk); got != cols[3] {
			t.Errorf("row %d cleartext = %q, want %q", rows, got, cols[3])
		}
		mac := api.TEKMAC(secret, keys, withRisk)
		if got := base64.StdEncoding.EncodeToString(mac); got != cols[4] {
			t.Errorf("row %d HMAC = %s, want %s", rows, got, cols[4])
		}
		if !api.VerifyTEKMAC(secret, mac, keys) {
			t.Errorf("row %d: VerifyTEKMAC refuses its own HMAC", rows)
		}
		rows++
	}
	if rows == 0 {
		t.Fatal("no vectors read")
	}
}
