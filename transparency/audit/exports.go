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
// roots.txt, <root>/index.txt and the files it lists live, and the roots to
// check.
type exportSite struct {
	base  *url.URL
	roots []string
	// explicit reports whether the roots were given (an index URL) rather
	// than taken from roots.txt and the log.
	explicit bool
	// listed are the roots the site's roots.txt lists.
	listed []string
}

// sites resolves cfg.Exports: an index URL names its root, a base URL gets
// every root the log mentions (checkRoots adds those its roots.txt lists).
func (a *auditor) sites() ([]exportSite, []string) {
	var logRoots []string
	for f := range a.files {
		logRoots = append(logRoots, rootOf(f))
	}
	for f := range a.deleted {
		logRoots = append(logRoots, rootOf(f))
	}
	for r := range a.roots {
		logRoots = append(logRoots, r)
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

// rootsCheck is the check that every served root is logged.
type rootsCheck struct {
	Check
	served int
}

func (c *rootsCheck) done() Check {
	if len(c.Problems) > 0 {
		c.Status, c.Detail, c.Problems = StatusFail, "export roots are served without an export_root.added entry, or hidden from roots.txt", limit(c.Problems)
	} else {
		c.Status, c.Detail = StatusOK, fmt.Sprintf("%d served roots, each logged", c.served)
	}
	return c.Check
}

// checkRoots reads each base URL's roots.txt, the list of every root the
// site serves, and adds its roots to those checked. Every root served must
// be logged (export_root.added): otherwise an operator could serve files
// in a root no auditor looks at. The index loop adds the roots the log
// knows that are served without being listed.
func (a *auditor) checkRoots(ctx context.Context, sites []exportSite) *rootsCheck {
	c := &rootsCheck{Check: Check{Name: "every served root is logged"}}
	logged := func(root, where string) {
		if _, ok := a.roots[root]; !ok {
			c.Problems = append(c.Problems, fmt.Sprintf("%s serves root %s, which the log does not have: an export root served but not logged", where, root))
		}
	}
	for i := range sites {
		s := &sites[i]
		if s.explicit {
			for _, r := range s.roots {
				logged(r, s.base.JoinPath(r, "index.txt").String())
				c.served++
			}
			continue
		}
		u := s.base.JoinPath(export.RootsName).String()
		body, err := getURL(ctx, a.cfg.Client, u, maxIndex)
		if err != nil {
			c.Problems = append(c.Problems, fmt.Sprintf("%s: %v (a deployment lists the roots it serves there)", u, err))
			continue
		}
		served, err := export.ParseRoots(body)
		if err != nil {
			c.Problems = append(c.Problems, fmt.Sprintf("%s: %v", u, err))
			continue
		}
		for _, r := range served {
			logged(r, u)
		}
		c.served += len(served)
		s.listed = served
		s.roots = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(s.roots), served...))))
	}
	return c
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
	roots := a.checkRoots(ctx, sites)
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
			if !s.explicit && !slices.Contains(s.listed, root) {
				roots.Problems = append(roots.Problems, fmt.Sprintf("%s is served, but %s does not list root %s: files hidden from auditors", u, s.base.JoinPath(export.RootsName), root))
			}
			indexes++
			// Phones fetch each line as it is: a line that is a logged
			// name only once trimmed names another URL.
			lines, err := export.ParseIndex(body, root)
			if err != nil {
				idx.Problems = append(idx.Problems, fmt.Sprintf("%s: %v", u, err))
				continue
			}
			for _, line := range lines {
				files = append(files, listed{site: s, name: line})
				if _, ok := a.files[line]; !ok {
					idx.Problems = append(idx.Problems, fmt.Sprintf("%s lists %s, which the log does not have: an export served but not logged", u, line))
				}
			}
		}
	}
	a.report.add(roots.done())
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
