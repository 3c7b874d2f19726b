package export

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// The listings a deployment serves next to the files, under /exports/:
//
//	/exports/roots.txt         every export root served, one name a line
//	/exports/<root>/index.txt  the live files of root, one "<root>/<name>.zip" a line
//
// Both are lines separated by a single "\n", without a trailing newline,
// sorted and distinct; empty when there is nothing. A phone fetches
// /exports/ + each index line byte for byte, so a line is accepted only in
// exactly this form: a reader that trimmed "x.zip\r" would fetch, and an
// auditor check, another URL than the bytes say.
const (
	// RootsName is the list of export roots, at the top of the exports
	// directory. No root may take this name.
	RootsName = "roots.txt"
	// IndexName is the list of live files in every root directory.
	IndexName = "index.txt"
)

// ErrBadListing reports a roots.txt or index.txt that is not byte for byte
// in the documented form.
var ErrBadListing = errors.New("export listing is not in the exact form")

const rootExpr = `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`

var (
	rootRE      = regexp.MustCompile(`^` + rootExpr + `$`)
	indexLineRE = regexp.MustCompile(`^(` + rootExpr + `)/[0-9]{1,19}-[0-9]{1,19}-[0-9]{5}\.zip$`)
)

// ValidRoot reports whether s can name an export root: one path segment of
// letters, digits, ".", "_" and "-", safe in URLs, file names and listings,
// and not RootsName.
func ValidRoot(s string) bool { return rootRE.MatchString(s) && s != RootsName }

// FormatListing returns the bytes of a listing of lines, which must be
// sorted and distinct.
func FormatListing(lines []string) []byte { return []byte(strings.Join(lines, "\n")) }

// ParseRoots parses /exports/roots.txt.
func ParseRoots(b []byte) ([]string, error) {
	return parseListing(b, "roots.txt", func(line string) error {
		if !ValidRoot(line) {
			return fmt.Errorf("%q is not a root name", line)
		}
		return nil
	})
}

// ParseIndex parses root's index.txt: every line must be
// "<root>/<start>-<end>-<NNNNN>.zip" of this root.
func ParseIndex(b []byte, root string) ([]string, error) {
	return parseListing(b, root+"/index.txt", func(line string) error {
		m := indexLineRE.FindStringSubmatch(line)
		if m == nil {
			return fmt.Errorf("%q is not <root>/<start>-<end>-<NNNNN>.zip", line)
		}
		if m[1] != root {
			return fmt.Errorf("%q is not a file of root %q", line, root)
		}
		return nil
	})
}

func parseListing(b []byte, what string, check func(string) error) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		if err := check(line); err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %v", ErrBadListing, what, i+1, err)
		}
		if i > 0 && lines[i-1] >= line {
			return nil, fmt.Errorf("%w: %s line %d: %q is not after %q (lines are sorted and distinct)", ErrBadListing, what, i+1, line, lines[i-1])
		}
	}
	return lines, nil
}
