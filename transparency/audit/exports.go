package audit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/api/logentry"
)

// exportSite is one place export files are served: a base URL under which
// <root>/index.txt and the files it lists live, and the roots to check.
type exportSite struct {
	base  *url.URL
	roots []string
	// explicit reports whether the roots were given (an index URL) rather
	// than taken from the log.
	explicit bool
}

// sites resolves cfg.Exports: an index URL names its root, a base URL gets
// every root the log mentions.
func (a *auditor) sites() ([]exportSite, []string) {
	var logRoots []string
	for f := range a.files {
		logRoots = append(logRoots, rootOf(f))
	}
	for f := range a.deleted {
		logRoots = append(logRoots, rootOf(f))
	}
	slices.Sort(logRoots)
	logRoots = slices.Compact(logRoots)
	var out []exportSite
	var problems []string
	for _, raw := range a.cfg.Exports {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, fmt.Sprintf("exports URL %q: want an http(s) URL", raw))
			continue
		}
		if strings.HasSuffix(u.Path, "/index.txt") {
			dir := strings.TrimSuffix(u.Path, "/index.txt")
			root := dir[strings.LastIndex(dir, "/")+1:]
			base := *u
			base.Path = strings.TrimSuffix(dir, root)
			out = append(out, exportSite{base: &base, roots: []string{root}, explicit: true})
			continue
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		out = append(out, exportSite{base: u, roots: logRoots})
	}
	return out, problems
}

func rootOf(file string) string {
	root, _, _ := strings.Cut(file, "/")
	return root
}

// listed is one line of an index.txt.
type listed struct {
	site exportSite
	name string // <root>/<file>.zip
}

// checkExports checks the export sites against the log: every listed file
// is logged, has the logged bytes and verifies with logged keys; nothing past
// the retention period is listed or served.
func (a *auditor) checkExports(ctx context.Context) {
	if len(a.cfg.Exports) == 0 {
		a.report.add(Check{Name: "export files", Status: StatusSkip, Detail: "no --exports given"})
		return
	}
	sites, problems := a.sites()
	cutoff := a.now.Add(-a.cfg.Retention - a.cfg.RetentionGrace)

	idx := Check{Name: "every listed file is logged"}
	idx.Problems = problems
	var files []listed
	indexes := 0
	for _, s := range sites {
		for _, root := range s.roots {
			u := s.base.JoinPath(root, "index.txt").String()
			body, err := getURL(ctx, a.cfg.Client, u, maxIndex)
			if errors.Is(err, os.ErrNotExist) && !s.explicit {
				continue // a root the log mentions that is not served here
			}
			if err != nil {
				idx.Problems = append(idx.Problems, fmt.Sprintf("%s: %v", u, err))
				continue
			}
			indexes++
			for _, line := range strings.Split(string(body), "\n") {
				line = strings.TrimSpace(line)
				if line == "" {
					continue
				}
				files = append(files, listed{site: s, name: line})
				if _, ok := a.files[line]; !ok {
					idx.Problems = append(idx.Problems, fmt.Sprintf("%s lists %s, which the log does not have: an export served but not logged", u, line))
				}
			}
		}
	}
	a.report.FilesChecked = len(files)
	if len(idx.Problems) > 0 {
		idx.Status, idx.Detail, idx.Problems = StatusFail, "files are listed for phones without an export.published entry", limit(idx.Problems)
	} else {
		idx.Status, idx.Detail = StatusOK, fmt.Sprintf("%d files listed in %d index.txt files, each logged", len(files), indexes)
	}
	a.report.add(idx)

	a.checkFiles(ctx, files)

	listedOld := Check{Name: "nothing past retention is listed"}
	for _, f := range files {
		lf, ok := a.files[f.name]
		if !ok {
			continue
		}
		if !lf.body.WindowEnd.After(cutoff) {
			listedOld.Problems = append(listedOld.Problems, fmt.Sprintf("%s (uploads until %s) is still listed %v after the retention period",
				f.name, lf.body.WindowEnd.Format(time.RFC3339), a.now.Sub(lf.body.WindowEnd.Add(a.cfg.Retention)).Round(time.Minute)))
		}
		if di, ok := a.deleted[f.name]; ok {
			listedOld.Problems = append(listedOld.Problems, fmt.Sprintf("%s is still listed although entry %d logged its deletion", f.name, di))
		}
	}
	if len(listedOld.Problems) > 0 {
		listedOld.Status, listedOld.Detail, listedOld.Problems = StatusFail, "index.txt lists files that should be deleted", limit(listedOld.Problems)
	} else {
		listedOld.Status = StatusOK
		listedOld.Detail = fmt.Sprintf("no listed file holds uploads older than the retention period of %v (+%v grace)", a.cfg.Retention, a.cfg.RetentionGrace)
	}
	a.report.add(listedOld)

	a.checkServedOld(ctx, sites, cutoff)
}

// checkFiles downloads every listed file and compares it with its entry.
func (a *auditor) checkFiles(ctx context.Context, files []listed) {
	c := Check{Name: "listed files match the log and verify"}
	var mu sync.Mutex
	sem := make(chan struct{}, a.cfg.Workers)
	var wg sync.WaitGroup
	checked := 0
	for _, f := range files {
		lf, ok := a.files[f.name]
		if !ok {
			continue // reported above
		}
		checked++
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			u := f.site.base.JoinPath(strings.Split(f.name, "/")...).String()
			problems := a.checkFile(ctx, u, lf)
			mu.Lock()
			c.Problems = append(c.Problems, problems...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(c.Problems)
	if len(c.Problems) > 0 {
		c.Status, c.Detail, c.Problems = StatusFail, "served files differ from what the log says", limit(c.Problems)
	} else {
		c.Status = StatusOK
		c.Detail = fmt.Sprintf("%d files have the logged SHA-256, contents and signatures by logged keys", checked)
	}
	a.report.add(c)
}

// checkFile checks one served file against its export.published entry.
func (a *auditor) checkFile(ctx context.Context, u string, lf *loggedFile) []string {
	b := lf.body
	zip, err := getURL(ctx, a.cfg.Client, u, maxZip)
	if err != nil {
		return []string{fmt.Sprintf("%s: listed but not served: %v", b.File, err)}
	}
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, b.File+": "+fmt.Sprintf(format, args...))
	}
	sum := sha256.Sum256(zip)
	if hex.EncodeToString(sum[:]) != b.ZipSHA256 {
		bad("the served bytes (sha256 %x) are not the logged ones (%s): the file changed after it was logged", sum, b.ZipSHA256)
		return problems
	}
	f, bin, sigs, err := export.Read(bytes.NewReader(zip), int64(len(zip)))
	if err != nil {
		bad("%v", err)
		return problems
	}
	if binSum := sha256.Sum256(bin); hex.EncodeToString(binSum[:]) != b.BinSHA256 {
		bad("export.bin sha256 %x, logged %s", binSum, b.BinSHA256)
	}
	if len(f.Keys) != b.Keys || len(f.RevisedKeys) != b.RevisedKeys {
		bad("holds %d keys and %d revised keys, logged %d and %d", len(f.Keys), len(f.RevisedKeys), b.Keys, b.RevisedKeys)
	}
	if f.Region != b.Region {
		bad("region %q, logged %q", f.Region, b.Region)
	}
	if f.StartTimestamp != uint64(b.WindowStart.Unix()) || f.EndTimestamp < uint64(b.WindowEnd.Unix()) {
		bad("window %d–%d, logged %s–%s", f.StartTimestamp, f.EndTimestamp, b.WindowStart.Format(time.RFC3339), b.WindowEnd.Format(time.RFC3339))
	}
	logged := map[export.SignatureInfo]bool{}
	for _, k := range b.SigningKeys {
		logged[export.SignatureInfo{KeyID: k.KeyID, KeyVersion: k.KeyVersion}] = true
	}
	keys := map[export.SignatureInfo]*ecdsa.PublicKey{}
	for _, s := range sigs {
		if !logged[s.Info] {
			bad("signed by %s, which its entry does not name", s.Info)
		}
		lk, ok := a.keys[keyIndex(logentry.PurposeExport, s.Info.KeyID, s.Info.KeyVersion)]
		switch {
		case !ok:
			bad("signed by %s, a key the log does not have", s.Info)
			continue
		case lk.index > lf.index:
			bad("signed by %s, logged (entry %d) only after the file (entry %d)", s.Info, lk.index, lf.index)
		case lk.retired && lk.retiredIndex < lf.index && lf.time.After(lk.retiredAt):
			bad("signed by %s, retired at %s by entry %d before this file", s.Info, lk.retiredAt.Format(time.RFC3339), lk.retiredIndex)
		}
		keys[s.Info] = lk.pub
	}
	if len(keys) > 0 {
		if err := export.Verify(bin, sigs, keys); err != nil {
			bad("%v", err)
		}
	}
	return problems
}

// checkServedOld checks that logged files past the retention period (and
// files whose deletion is logged) are no longer served.
func (a *auditor) checkServedOld(ctx context.Context, sites []exportSite, cutoff time.Time) {
	c := Check{Name: "nothing past retention is served"}
	oldest := cutoff.Add(-a.cfg.ServedLookback)
	var names []string
	for name, lf := range a.files {
		end := lf.body.WindowEnd
		if !end.After(cutoff) && end.After(oldest) {
			names = append(names, name)
		}
	}
	for name := range a.deleted {
		if _, ok := a.files[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	checked := 0
	for _, s := range sites {
		for _, name := range names {
			if !slices.Contains(s.roots, rootOf(name)) {
				continue
			}
			u := s.base.JoinPath(strings.Split(name, "/")...).String()
			st, err := status(ctx, a.cfg.Client, u)
			checked++
			switch {
			case err != nil:
				c.Problems = append(c.Problems, fmt.Sprintf("%s: %v", u, err))
			case st == http.StatusOK || st == http.StatusPartialContent || st == http.StatusNotModified:
				c.Problems = append(c.Problems, fmt.Sprintf("%s is still served (HTTP %d) after the retention period or its logged deletion", u, st))
			}
		}
	}
	if len(c.Problems) > 0 {
		c.Status, c.Detail, c.Problems = StatusFail, "files past the retention period can still be downloaded", limit(c.Problems)
	} else {
		c.Status = StatusOK
		c.Detail = fmt.Sprintf("%d logged files past the retention period are gone", checked)
	}
	a.report.add(c)
}
