package exporter_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/candor-en/candor/keyserver/exporter"
)

// requireOpenSSL returns the openssl binary; CI installs it, elsewhere the
// test is skipped.
func requireOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl is required in CI: %v", err)
		}
		t.Skip("openssl not installed: apt-get install openssl")
	}
	return path
}

// Every produced file verifies with openssl, an implementation that shares
// no code with ours: `openssl dgst -sha256 -verify <pem> -signature <der>
// export.bin`, once per signature (two during a rotation), against the PEM
// that GET /exports/<root>/keys publishes.
func TestOpenSSLVerifiesEveryFile(t *testing.T) {
	openssl := requireOpenSSL(t)
	f := newFixture(t)
	f.addConfig(func(c *exporter.Config) { c.MinKeys = 200; c.MaxKeysPerFile = 150 })
	if _, _, err := exporter.AddSignatureInfo(context.Background(), f.db, f.keys, "us-wa", "310", "v2", f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.publish(exposures(20, "US-WA", win8.Start)...)
	f.publish(exposures(3, "US-WA", win8.Start.Add(-3*time.Hour))...)
	f.pass()
	pks, err := f.x.PublicKeys(context.Background(), "us-wa")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	pems := map[string]string{}
	for _, pk := range pks {
		p := filepath.Join(work, pk.KeyID+"-"+pk.KeyVersion+".pem")
		if err := os.WriteFile(p, []byte(pk.PublicKeyPEM), 0o600); err != nil {
			t.Fatal(err)
		}
		pems[pk.KeyVersion] = p
	}
	idx := f.index("us-wa")
	if len(idx) != 4 {
		t.Fatalf("index %q, want 4 files (two windows padded to 200 keys, each split in two)", idx)
	}
	checked := 0
	for i, line := range idx {
		_, bin, sigs, _ := f.read(line)
		binPath := filepath.Join(work, "export.bin")
		if err := os.WriteFile(binPath, bin, 0o600); err != nil {
			t.Fatal(err)
		}
		if len(sigs) != 2 {
			t.Fatalf("%s: %d signatures, want 2", line, len(sigs))
		}
		for j, s := range sigs {
			sigPath := filepath.Join(work, "sig.der")
			os.WriteFile(sigPath, s.Sig, 0o600)
			out, err := exec.Command(openssl, "dgst", "-sha256", "-verify", pems[s.Info.KeyVersion], "-signature", sigPath, binPath).CombinedOutput()
			if err != nil {
				t.Fatalf("%s signature %d: openssl: %v\n%s", line, j, err, out)
			}
			checked++
			// A tampered export.bin must fail.
			if i == 0 && j == 0 {
				bad := append([]byte(nil), bin...)
				bad[len(bad)-1] ^= 1
				os.WriteFile(binPath, bad, 0o600)
				if out, err := exec.Command(openssl, "dgst", "-sha256", "-verify", pems[s.Info.KeyVersion], "-signature", sigPath, binPath).CombinedOutput(); err == nil {
					t.Fatalf("openssl accepted a tampered file: %s", out)
				}
				os.WriteFile(binPath, bin, 0o600)
			}
		}
	}
	t.Logf("openssl verified %d signatures over %d files", checked, len(idx))
}
