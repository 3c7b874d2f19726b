package export

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestListings(t *testing.T) {
	for _, tc := range []struct {
		name, root, in string
		ok             bool
	}{
		{"empty index", "us", "", true},
		{"one file", "us", "us/1-2-00001.zip", true},
		{"sorted files", "us", "us/1-2-00001.zip\nus/1-2-00002.zip\nus/2-3-00001.zip", true},
		{"carriage return", "us", "us/1-2-00001.zip\r", false},
		{"crlf", "us", "us/1-2-00001.zip\r\nus/1-2-00002.zip", false},
		{"space", "us", "us/1-2-00001.zip ", false},
		{"trailing newline", "us", "us/1-2-00001.zip\n", false},
		{"blank line", "us", "us/1-2-00001.zip\n\nus/1-2-00002.zip", false},
		{"another root", "us", "uk/1-2-00001.zip", false},
		{"a path", "us", "us/../us/1-2-00001.zip", false},
		{"not sorted", "us", "us/1-2-00002.zip\nus/1-2-00001.zip", false},
		{"twice", "us", "us/1-2-00001.zip\nus/1-2-00001.zip", false},
		{"roots", "", "demo\nus-wa", true},
		{"no roots", "", "", true},
		{"root with slash", "", "us/wa", false},
		{"reserved root", "", "roots.txt", false},
		{"root with cr", "", "us\r", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			var err error
			if tc.root == "" {
				got, err = ParseRoots([]byte(tc.in))
			} else {
				got, err = ParseIndex([]byte(tc.in), tc.root)
			}
			if !tc.ok {
				if !errors.Is(err, ErrBadListing) {
					t.Errorf("%q: %q, %v; want ErrBadListing", tc.in, got, err)
				}
				return
			}
			if err != nil || string(FormatListing(got)) != tc.in {
				t.Errorf("%q: %q, %v", tc.in, got, err)
			}
			if tc.in != "" && !slices.Equal(got, strings.Split(tc.in, "\n")) {
				t.Errorf("%q: %q", tc.in, got)
			}
		})
	}
}

// FuzzListings feeds arbitrary bytes to the listing parsers, which read what
// any server or CDN sends: whatever they accept must format back to exactly
// the bytes read, so no two byte strings are taken for one listing.
func FuzzListings(f *testing.F) {
	f.Add([]byte("a/1-2-00001.zip\na/3-4-00001.zip"), "a")
	f.Add([]byte("a/1-2-00001.zip\r"), "a")
	f.Add([]byte("demo\nus-wa"), "demo")
	f.Add([]byte(""), "a")
	f.Fuzz(func(t *testing.T, b []byte, root string) {
		if lines, err := ParseRoots(b); err == nil {
			if got := FormatListing(lines); string(got) != string(b) {
				t.Fatalf("roots %q parsed to %q, which formats to %q", b, lines, got)
			}
			for _, l := range lines {
				if !ValidRoot(l) {
					t.Fatalf("roots %q: accepted invalid root %q", b, l)
				}
			}
		}
		if lines, err := ParseIndex(b, root); err == nil {
			if got := FormatListing(lines); string(got) != string(b) {
				t.Fatalf("index %q parsed to %q, which formats to %q", b, lines, got)
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, root+"/") {
					t.Fatalf("index of %q accepted %q", root, l)
				}
			}
		}
	})
}
