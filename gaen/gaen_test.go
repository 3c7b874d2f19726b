package gaen

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vectorFiles are the places of the GAEN test vectors, best first: the copy
// in testdata keeps the repository self-contained, the shared folder next to
// the repository root is the source it was copied from.
var vectorFiles = []string{
	"testdata/gaen-crypto.tsv",
	"../../shared/vectors/gaen-crypto.tsv",
}

// vectors is the parsed content of gaen-crypto.tsv.
type vectors struct {
	keyGenerationUnix int64
	intervalNumber    uint32
	tek               TEK
	rpik, aemk        [KeyLength]byte
	metadata          []byte
	rows              []vectorRow
}

// vectorRow is one "i RPI AEM" line, for interval intervalNumber+i.
type vectorRow struct {
	i        uint32
	rpi      [KeyLength]byte
	aem      []byte
	lineText string
}

// loadVectors reads the first vector file that exists. A missing file fails
// the test in CI and skips it elsewhere.
func loadVectors(t *testing.T) vectors {
	t.Helper()
	for _, name := range vectorFiles {
		b, err := os.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		return parseVectors(t, name, b)
	}
	msg := "GAEN test vectors not found in " + strings.Join(vectorFiles, " or ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return vectors{}
}

func parseVectors(t *testing.T, name string, b []byte) vectors {
	t.Helper()
	var v vectors
	fields := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		fail := func(err error) { t.Fatalf("%s:%d: %q: %v", name, n, line, err) }
		if len(f) == 3 {
			i, err := strconv.ParseUint(f[0], 10, 32)
			if err != nil {
				fail(err)
			}
			row := vectorRow{i: uint32(i), lineText: line}
			row.rpi, err = hex16(f[1])
			if err != nil {
				fail(err)
			}
			if row.aem, err = hex.DecodeString(f[2]); err != nil {
				fail(err)
			}
			v.rows = append(v.rows, row)
			continue
		}
		if len(f) != 2 {
			fail(errors.New("want 2 or 3 tab-separated fields"))
		}
		var err error
		switch f[0] {
		case "KEY_GENERATION_UNIX":
			v.keyGenerationUnix, err = strconv.ParseInt(f[1], 10, 64)
		case "INTERVAL_NUMBER":
			var x uint64
			x, err = strconv.ParseUint(f[1], 10, 32)
			v.intervalNumber = uint32(x)
		case "TEMPORARY_TRACING_KEY":
			v.tek, err = hex16(f[1])
		case "RPIK":
			v.rpik, err = hex16(f[1])
		case "AEMK":
			v.aemk, err = hex16(f[1])
		case "BLE_METADATA":
			v.metadata, err = hex.DecodeString(f[1])
		default:
			err = errors.New("unknown field")
		}
		if err != nil {
			fail(err)
		}
		fields[f[0]] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(fields) != 6 {
		t.Fatalf("%s: header has %d of the 6 fields", name, len(fields))
	}
	if len(v.rows) != MaxRollingPeriod {
		t.Fatalf("%s: %d rows, want %d", name, len(v.rows), MaxRollingPeriod)
	}
	return v
}

func hex16(s string) ([KeyLength]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return [KeyLength]byte{}, err
	}
	if len(b) != KeyLength {
		return [KeyLength]byte{}, errors.New("want 16 bytes")
	}
	return [KeyLength]byte(b), nil
}

// TestVectorCopyCurrent makes sure testdata has not drifted from the shared
// vectors it was copied from, when both are present.
func TestVectorCopyCurrent(t *testing.T) {
	local, err := os.ReadFile(vectorFiles[0])
	if err != nil {
		t.Fatalf("the repository copy of the vectors is missing: %v", err)
	}
	shared, err := os.ReadFile(vectorFiles[1])
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no shared vectors next to the repository")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(local, shared) {
		t.Fatalf("%s differs from %s: copy it again", vectorFiles[0], vectorFiles[1])
	}
}

func TestVectorKeys(t *testing.T) {
	v := loadVectors(t)
	gen := time.Unix(v.keyGenerationUnix, 0)
	if got := IntervalNumber(gen); got != v.intervalNumber {
		t.Errorf("IntervalNumber = %d, want %d", got, v.intervalNumber)
	}
	if got := RollingStart(gen); got != v.intervalNumber {
		t.Errorf("RollingStart = %d, want %d", got, v.intervalNumber)
	}
	if got := RPIK(v.tek); got != v.rpik {
		t.Errorf("RPIK = %x, want %x", got, v.rpik)
	}
	if got := AEMK(v.tek); got != v.aemk {
		t.Errorf("AEMK = %x, want %x", got, v.aemk)
	}
}

func TestVectorRows(t *testing.T) {
	v := loadVectors(t)
	all := RPIs(v.tek, v.intervalNumber, MaxRollingPeriod)
	if len(all) != len(v.rows) {
		t.Fatalf("RPIs returned %d, want %d", len(all), len(v.rows))
	}
	for _, r := range v.rows {
		interval := v.intervalNumber + r.i
		if got := RPI(v.rpik, interval); got != r.rpi {
			t.Errorf("%s: RPI = %x", r.lineText, got)
		}
		if got := all[r.i]; got != r.rpi {
			t.Errorf("%s: RPIs[%d] = %x", r.lineText, r.i, got)
		}
		aem := EncryptAEM(v.aemk, r.rpi, v.metadata)
		if !bytes.Equal(aem, r.aem) {
			t.Errorf("%s: AEM = %x", r.lineText, aem)
		}
		if got := DecryptAEM(v.aemk, r.rpi, r.aem); !bytes.Equal(got, v.metadata) {
			t.Errorf("%s: DecryptAEM = %x, want %x", r.lineText, got, v.metadata)
		}
	}
}

func TestIntervals(t *testing.T) {
	tests := []struct {
		name          string
		t             time.Time
		interval      uint32
		rollingStart  uint32
		rollingStartT time.Time
	}{
		{"epoch", time.Unix(0, 0), 0, 0, time.Unix(0, 0)},
		{"last second of first interval", time.Unix(599, 0), 0, 0, time.Unix(0, 0)},
		{"second interval", time.Unix(600, 0), 1, 0, time.Unix(0, 0)},
		{"vector day", time.Date(2020, 4, 2, 0, 0, 0, 0, time.UTC), 2642976, 2642976, time.Date(2020, 4, 2, 0, 0, 0, 0, time.UTC)},
		{"end of vector day", time.Date(2020, 4, 2, 23, 59, 59, 0, time.UTC), 2642976 + 143, 2642976, time.Date(2020, 4, 2, 0, 0, 0, 0, time.UTC)},
		{"time zone ignored", time.Date(2020, 4, 2, 1, 30, 0, 0, time.FixedZone("CEST", 2*3600)), 2642832 + 141, 2642832, time.Date(2020, 4, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IntervalNumber(tt.t); got != tt.interval {
				t.Errorf("IntervalNumber = %d, want %d", got, tt.interval)
			}
			if got := RollingStart(tt.t); got != tt.rollingStart {
				t.Errorf("RollingStart = %d, want %d", got, tt.rollingStart)
			}
			if got := IntervalNumber(tt.rollingStartT); got != tt.rollingStart {
				t.Errorf("test table: %v is interval %d, not %d", tt.rollingStartT, got, tt.rollingStart)
			}
		})
	}
}

func TestNewTEK(t *testing.T) {
	src := bytes.NewReader(bytes.Repeat([]byte{7}, KeyLength+1))
	k, err := NewTEK(src)
	if err != nil {
		t.Fatal(err)
	}
	if k != TEK(bytes.Repeat([]byte{7}, KeyLength)) {
		t.Errorf("NewTEK = %x", k)
	}
	if _, err := NewTEK(src); err == nil {
		t.Error("NewTEK from a short reader: no error")
	}
}

func TestAppendRPIsReusesBuffer(t *testing.T) {
	var tek TEK
	buf := make([][KeyLength]byte, 0, 2*MaxRollingPeriod)
	buf = AppendRPIs(buf, tek, 0, 3)
	buf = AppendRPIs(buf, tek, 10, 2)
	want := [][KeyLength]byte{
		RPI(RPIK(tek), 0), RPI(RPIK(tek), 1), RPI(RPIK(tek), 2),
		RPI(RPIK(tek), 10), RPI(RPIK(tek), 11),
	}
	if len(buf) != len(want) {
		t.Fatalf("len = %d, want %d", len(buf), len(want))
	}
	for i := range want {
		if buf[i] != want[i] {
			t.Errorf("[%d] = %x, want %x", i, buf[i], want[i])
		}
	}
	if got := RPIs(tek, 5, 0); len(got) != 0 {
		t.Errorf("RPIs with period 0 = %d entries", len(got))
	}
}

func BenchmarkRPIs(b *testing.B) {
	var tek TEK
	buf := make([][KeyLength]byte, 0, MaxRollingPeriod)
	for b.Loop() {
		buf = AppendRPIs(buf[:0], tek, 2642976, MaxRollingPeriod)
	}
}
