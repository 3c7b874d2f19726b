package export

import (
	"archive/zip"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testKey is one signing key with its name.
type testKey struct {
	info SignatureInfo
	priv *ecdsa.PrivateKey
}

func newTestKey(t testing.TB, version string) testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{SignatureInfo{KeyVersion: version, KeyID: "310"}, priv}
}

func (k testKey) signer() Signer { return NewECDSASigner(k.info, k.priv) }

// writeFile writes f signed by keys and returns the zip bytes.
func writeFile(t testing.TB, f *File, keys ...testKey) ([]byte, Written) {
	t.Helper()
	var signers []Signer
	for _, k := range keys {
		signers = append(signers, k.signer())
	}
	var buf bytes.Buffer
	w, err := Write(&buf, f, signers)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w
}

func readFile(b []byte) (*File, []byte, []Signature, error) {
	return Read(bytes.NewReader(b), int64(len(b)))
}

func TestWriteReadVerify(t *testing.T) {
	k1 := newTestKey(t, "v1")
	f := testFile(10, 300)
	zipBytes, w := writeFile(t, f, k1)

	got, bin, sigs, err := readFile(zipBytes)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size != int64(len(zipBytes)) || w.ZipSHA256 != sha256.Sum256(zipBytes) || w.BinSHA256 != sha256.Sum256(bin) {
		t.Errorf("Written = %+v does not describe the zip (%d bytes)", w, len(zipBytes))
	}
	if w.KeyCount != len(f.Keys) || w.RevisedCount != len(f.RevisedKeys) {
		t.Errorf("Written counts = %d, %d", w.KeyCount, w.RevisedCount)
	}
	wantBin, err := MarshalBin(&File{
		StartTimestamp: f.StartTimestamp, EndTimestamp: f.EndTimestamp, Region: f.Region,
		BatchNum: f.BatchNum, BatchSize: f.BatchSize, SignatureInfos: []SignatureInfo{k1.info},
		Keys: f.Keys, RevisedKeys: f.RevisedKeys,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bin, wantBin) {
		t.Error("export.bin in the zip differs from MarshalBin")
	}
	if f.SignatureInfos != nil {
		t.Error("Write modified its input")
	}

	// The file read back is the input with sorted keys, explicit rolling
	// periods and the signers' infos.
	want := *f
	want.SignatureInfos = []SignatureInfo{k1.info}
	want.Keys = normalize(f.Keys)
	want.RevisedKeys = normalize(f.RevisedKeys)
	if !reflect.DeepEqual(got, &want) {
		t.Error("Read returned a different file than was written")
	}

	if len(sigs) != 1 {
		t.Fatalf("%d signatures, want 1", len(sigs))
	}
	if s := sigs[0]; s.Info != k1.info || s.BatchNum != 1 || s.BatchSize != 1 {
		t.Errorf("signature = %+v", s)
	}
	digest := sha256.Sum256(bin)
	if !ecdsa.VerifyASN1(&k1.priv.PublicKey, digest[:], sigs[0].Sig) {
		t.Error("signature does not verify with crypto/ecdsa.VerifyASN1")
	}
	if err := Verify(bin, sigs, map[SignatureInfo]*ecdsa.PublicKey{k1.info: &k1.priv.PublicKey}); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// normalize returns keys as Read returns them: sorted, with the default
// rolling period spelled out.
func normalize(keys []Key) []Key {
	f, err := UnmarshalBin(mustMarshal(&File{Keys: keys}))
	if err != nil {
		panic(err)
	}
	return f.Keys
}

func mustMarshal(f *File) []byte {
	b, err := MarshalBin(f)
	if err != nil {
		panic(err)
	}
	return b
}

func TestWriteRotation(t *testing.T) {
	oldKey, newKey := newTestKey(t, "v1"), newTestKey(t, "v2")
	zipBytes, _ := writeFile(t, testFile(11, 10), oldKey, newKey)
	f, bin, sigs, err := readFile(zipBytes)
	if err != nil {
		t.Fatal(err)
	}
	wantInfos := []SignatureInfo{oldKey.info, newKey.info}
	if !reflect.DeepEqual(f.SignatureInfos, wantInfos) {
		t.Errorf("export.bin names %v, want %v", f.SignatureInfos, wantInfos)
	}
	if len(sigs) != 2 || sigs[0].Info != oldKey.info || sigs[1].Info != newKey.info {
		t.Fatalf("signatures = %+v, want one by each key in order", sigs)
	}
	// A phone that knows only one of the keys accepts the file.
	for _, k := range []testKey{oldKey, newKey} {
		if err := Verify(bin, sigs, map[SignatureInfo]*ecdsa.PublicKey{k.info: &k.priv.PublicKey}); err != nil {
			t.Errorf("Verify with only %s: %v", k.info, err)
		}
	}
}

func TestVerify(t *testing.T) {
	k1, k2, other := newTestKey(t, "v1"), newTestKey(t, "v2"), newTestKey(t, "v3")
	zipBytes, _ := writeFile(t, testFile(12, 10), k1, k2)
	_, bin, sigs, err := readFile(zipBytes)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(bin)
	tampered[len(tampered)-1] ^= 1
	swapped := []Signature{sigs[0], sigs[1]}
	swapped[0].Sig, swapped[1].Sig = sigs[1].Sig, sigs[0].Sig
	both := map[SignatureInfo]*ecdsa.PublicKey{k1.info: &k1.priv.PublicKey, k2.info: &k2.priv.PublicKey}
	wrongKey := map[SignatureInfo]*ecdsa.PublicKey{k1.info: &other.priv.PublicKey}
	tests := []struct {
		name    string
		bin     []byte
		sigs    []Signature
		keys    map[SignatureInfo]*ecdsa.PublicKey
		wantErr error
		inMsg   string
	}{
		{"both keys known", bin, sigs, both, nil, ""},
		{"tampered bin", tampered, sigs, both, ErrBadSignature, "310/v1"},
		{"tampered bin, one key known", tampered, sigs, map[SignatureInfo]*ecdsa.PublicKey{k2.info: &k2.priv.PublicKey}, ErrBadSignature, "310/v2"},
		{"signatures swapped", bin, swapped, both, ErrBadSignature, ""},
		{"wrong public key", bin, sigs[:1], wrongKey, ErrBadSignature, ""},
		{"no known key", bin, sigs, map[SignatureInfo]*ecdsa.PublicKey{other.info: &other.priv.PublicKey}, ErrUnknownKey, "310/v1, 310/v2"},
		{"no keys at all", bin, sigs, nil, ErrUnknownKey, "310/v1"},
		{"no signatures", bin, nil, both, ErrNoSignature, ""},
		{"empty signature", bin, []Signature{{Info: k1.info}}, both, ErrBadSignature, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.bin, tt.sigs, tt.keys)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.inMsg) {
				t.Errorf("error %q does not mention %q", err, tt.inMsg)
			}
		})
	}
}

// funcSigner signs with an arbitrary function.
type funcSigner func([]byte) ([]byte, error)

func (f funcSigner) Sign(b []byte) ([]byte, error) { return f(b) }

func TestWriteErrors(t *testing.T) {
	k := newTestKey(t, "v1")
	mismatched := testFile(13, 2)
	mismatched.SignatureInfos = []SignatureInfo{{"v9", "310"}}
	matching := testFile(13, 2)
	matching.SignatureInfos = []SignatureInfo{k.info}
	p1363 := NewSigner(k.info, funcSigner(func([]byte) ([]byte, error) { return make([]byte, 64), nil }))
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	failing := NewSigner(k.info, funcSigner(func([]byte) ([]byte, error) { return nil, errors.New("kms down") }))
	tests := []struct {
		name    string
		f       *File
		signers []Signer
		wantErr error  // nil: no error unless inMsg is set
		inMsg   string // text the error must contain
	}{
		{"matching infos", matching, []Signer{k.signer()}, nil, ""},
		{"no signers", testFile(13, 2), nil, ErrNoSignature, ""},
		{"infos differ from signers", mismatched, []Signer{k.signer()}, ErrInvalid, "310/v9"},
		{"invalid key", &File{Keys: []Key{{Data: []byte{1}}}}, []Signer{k.signer()}, ErrInvalid, "key 0 is 1 bytes"},
		{"signer returns P1363", testFile(13, 2), []Signer{p1363}, ErrBadSignature, "310/v1"},
		{"signer fails", testFile(13, 2), []Signer{failing}, nil, "kms down"},
		{"P-384 key", testFile(13, 2), []Signer{NewECDSASigner(k.info, p384)}, nil, "want P-256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Write(io.Discard, tt.f, tt.signers)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Write error = %v, want %v", err, tt.wantErr)
			}
			switch {
			case tt.inMsg == "" && tt.wantErr == nil && err != nil:
				t.Fatalf("Write: %v", err)
			case tt.inMsg != "" && (err == nil || !strings.Contains(err.Error(), tt.inMsg)):
				t.Fatalf("Write error = %v, want one mentioning %q", err, tt.inMsg)
			}
		})
	}
}

// zipOf builds a zip with the given entries in order.
func zipOf(t testing.TB, entries ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadErrors(t *testing.T) {
	k := newTestKey(t, "v1")
	good, _ := writeFile(t, testFile(14, 100), k)
	_, bin, _, err := readFile(good)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := zr.File[1].Open()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	b, s := string(bin), string(sig)
	// A flipped byte inside the compressed export.bin fails its CRC.
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)/3] ^= 0xff

	tests := []struct {
		name    string
		zip     []byte
		wantErr error
	}{
		{"valid", good, nil},
		{"rebuilt valid", zipOf(t, [2]string{"export.bin", b}, [2]string{"export.sig", s}), nil},
		{"empty", nil, ErrNotZip},
		{"not a zip", []byte("EK Export v1    hello"), ErrNotZip},
		{"truncated end", good[:len(good)-10], ErrNotZip},
		{"truncated half", good[:len(good)/2], ErrNotZip},
		{"corrupt entry", corrupt, ErrNotZip},
		{"wrong order", zipOf(t, [2]string{"export.sig", s}, [2]string{"export.bin", b}), ErrEntryOrder},
		{"extra entry", zipOf(t, [2]string{"export.bin", b}, [2]string{"export.sig", s}, [2]string{"x", ""}), ErrEntryOrder},
		{"duplicate entry", zipOf(t, [2]string{"export.bin", b}, [2]string{"export.sig", s}, [2]string{"export.sig", s}), ErrEntryOrder},
		{"missing export.sig", zipOf(t, [2]string{"export.bin", b}), ErrMissingEntry},
		{"missing export.bin", zipOf(t, [2]string{"export.sig", s}), ErrMissingEntry},
		{"empty zip", zipOf(t), ErrMissingEntry},
		{"bad header", zipOf(t, [2]string{"export.bin", "EK Export v2    " + b[16:]}, [2]string{"export.sig", s}), ErrBadHeader},
		{"bad export.sig", zipOf(t, [2]string{"export.bin", b}, [2]string{"export.sig", "\xff"}), ErrMalformed},
		{"bad export.bin protobuf", zipOf(t, [2]string{"export.bin", Header + "\xff"}, [2]string{"export.sig", s}), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := readFile(tt.zip)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Read error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestReadTooLarge(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range []struct {
		name string
		size int
	}{{BinEntry, 16}, {SigEntry, MaxSigSize + 1}} {
		w, err := zw.Create(e.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, e.size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := readFile(buf.Bytes()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Read error = %v, want ErrTooLarge", err)
	}
}

// TestOpenSSLVerifies checks the signature with a verifier that shares no
// code with this package.
func TestOpenSSLVerifies(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not on PATH; install openssl: apt-get install openssl")
		}
		t.Skip("install openssl: apt-get install openssl")
	}
	k := newTestKey(t, "v1")
	zipBytes, _ := writeFile(t, testFile(15, 100), k)
	_, bin, sigs, err := readFile(zipBytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"export.bin": bin,
		"sig.der":    sigs[0].Sig,
		"pub.pem":    pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(openssl, "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.der", "export.bin")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verified OK") {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
}

func FuzzRead(f *testing.F) {
	k := newTestKey(f, "v1")
	good, _ := writeFile(f, testFile(16, 5), k)
	f.Add(good)
	for _, n := range []int{0, 1, 4, 22, 30, len(good) / 2, len(good) - 22, len(good) - 1} {
		f.Add(good[:n])
	}
	f.Add(zipOf(f, [2]string{"export.bin", Header}, [2]string{"export.sig", ""}))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, bin, sigs, err := readFile(b)
		if err != nil {
			return
		}
		if file == nil || len(bin) < len(Header) {
			t.Fatalf("Read succeeded with file %v and %d-byte bin", file, len(bin))
		}
		_ = Verify(bin, sigs, map[SignatureInfo]*ecdsa.PublicKey{k.info: &k.priv.PublicKey})
	})
}

// BenchmarkWrite1M turns a million random keys into a signed export file:
// the exporter's hot path.
func BenchmarkWrite1M(b *testing.B) {
	f := testFile(17, 1_000_000)
	f.RevisedKeys = nil
	signers := []Signer{newTestKey(b, "v1").signer()}
	var w Written
	for b.Loop() {
		var err error
		if w, err = Write(io.Discard, f, signers); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(w.Size)/(1<<20), "zipMiB")
}

// BenchmarkRead1M reads back a million-key file.
func BenchmarkRead1M(b *testing.B) {
	f := testFile(17, 1_000_000)
	f.RevisedKeys = nil
	zipBytes, _ := writeFile(b, f, newTestKey(b, "v1"))
	r := bytes.NewReader(zipBytes)
	for b.Loop() {
		if _, _, _, err := Read(r, int64(len(zipBytes))); err != nil {
			b.Fatal(err)
		}
	}
}
