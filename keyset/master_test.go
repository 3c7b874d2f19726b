package keyset

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestOpenMasterFileCreatesAndReuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.json")
	m1, err := OpenMasterFile(path)
	if err != nil {
		t.Fatalf("OpenMasterFile (create): %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the master file (temp file left behind?)", len(entries))
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(content), "AesGcmKey") {
		t.Errorf("master file is not an AES-GCM JSON keyset: %s", content)
	}

	ct, err := m1.Encrypt([]byte("secret"), []byte("ad"))
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	m2, err := OpenMasterFile(path)
	if err != nil {
		t.Fatalf("OpenMasterFile (reuse): %v", err)
	}
	pt, err := m2.Decrypt(ct, []byte("ad"))
	if err != nil {
		t.Fatalf("reopened master cannot decrypt: %v", err)
	}
	if !bytes.Equal(pt, []byte("secret")) {
		t.Errorf("Decrypt = %q, want %q", pt, "secret")
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, content) {
		t.Error("reopening rewrote the master file")
	}
}

func TestOpenMasterFileRefuses(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX permissions")
	}
	// A valid master file to copy into the cases.
	good := filepath.Join(t.TempDir(), "good.json")
	if _, err := OpenMasterFile(good); err != nil {
		t.Fatal(err)
	}
	valid, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		setup   func(t *testing.T, path string)
		wantErr string // empty: must succeed
	}{
		{"owner only", writeFile(valid, 0o600), ""},
		{"owner read only", writeFile(valid, 0o400), ""},
		{"group readable", writeFile(valid, 0o640), "group or others"},
		{"other readable", writeFile(valid, 0o604), "group or others"},
		{"group writable", writeFile(valid, 0o620), "group or others"},
		{"garbage", writeFile([]byte("not a keyset"), 0o600), "parse master key"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"missing parent", func(t *testing.T, path string) {}, "create master key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "master.json")
			if tc.name == "missing parent" {
				path = filepath.Join(t.TempDir(), "nope", "master.json")
			}
			tc.setup(t, path)
			_, err := OpenMasterFile(path)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("OpenMasterFile: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("OpenMasterFile error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func writeFile(content []byte, mode os.FileMode) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.WriteFile(path, content, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // not subject to umask
			t.Fatal(err)
		}
	}
}
