package transparency

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/candor-en/candor/api/logentry"
)

// Filter selects the entries the public page lists.
type Filter struct {
	// Type is an entry type, or empty for every type.
	Type string
	// Day is a UTC date (YYYY-MM-DD) of the entries' time, or empty.
	Day string
	// Query is text the entry's JSON must contain (case-insensitive), or
	// empty.
	Query string
	// Page is the page of results, from 1, newest entries first.
	Page int
}

// PageSize is the number of entries per page of the list.
const PageSize = 50

// chartDays is how many days the charts cover.
const chartDays = 30

// maxQuery bounds Filter.Query.
const maxQuery = 200

// ParseFilter reads a Filter from the page's query parameters (type, day,
// q, page), refusing values that cannot match anything.
func ParseFilter(q url.Values) (Filter, error) {
	f := Filter{Type: q.Get("type"), Day: q.Get("day"), Query: strings.TrimSpace(q.Get("q")), Page: 1}
	if f.Type != "" && !slices.Contains(logentry.Types(), f.Type) {
		return Filter{}, fmt.Errorf("unknown entry type %q", f.Type)
	}
	if f.Day != "" {
		if _, err := time.Parse(logentry.DayLayout, f.Day); err != nil {
			return Filter{}, fmt.Errorf("day %q: want YYYY-MM-DD", f.Day)
		}
	}
	if len(f.Query) > maxQuery {
		return Filter{}, fmt.Errorf("search text is longer than %d characters", maxQuery)
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 1_000_000 {
			return Filter{}, fmt.Errorf("page %q: want a positive number", p)
		}
		f.Page = n
	}
	return f, nil
}

// Matches reports whether r passes the filter (ignoring Page).
func (f Filter) Matches(r Record) bool {
	if f.Type != "" && r.Entry.Type != f.Type {
		return false
	}
	if f.Day != "" && (r.Entry.Time.IsZero() || r.Entry.Time.Format(logentry.DayLayout) != f.Day) {
		return false
	}
	if f.Query != "" && !strings.Contains(strings.ToLower(string(r.Raw)), strings.ToLower(f.Query)) {
		return false
	}
	return true
}

// query returns the filter as query parameters for page p.
func (f Filter) query(p int) string {
	v := url.Values{}
	if f.Type != "" {
		v.Set("type", f.Type)
	}
	if f.Day != "" {
		v.Set("day", f.Day)
	}
	if f.Query != "" {
		v.Set("q", f.Query)
	}
	if p > 1 {
		v.Set("page", strconv.Itoa(p))
	}
	if len(v) == 0 {
		return PagePath
	}
	return PagePath + "?" + v.Encode()
}

// pageData is what the public page template shows.
type pageData struct {
	Origin        string
	VerifierKey   string
	Checkpoint    string
	Size          uint64
	RootHash      string
	CheckpointErr string
	// Base is the server's URL as the reader reached it, for the
	// copy-paste commands.
	Base      string
	Filter    Filter
	FilterErr string
	Types     []string
	Rows      []row
	Matches   int
	Page      int
	Pages     int
	PrevURL   string
	NextURL   string
	Charts    []chart
	Counts    []typeCount
	Generated string
	// Newest is the time of the newest entry, for the summary.
	Newest string
	// Explained says in plain words what each entry type claims.
	Explained []typeInfo
}

// typeInfo is an entry type as the page explains it to lay readers.
type typeInfo struct {
	Type        string
	Name        string
	Explanation string
	Count       int
}

// typeInfoOf returns the plain-language name and explanation of an entry
// type, for lay readers.
func typeInfoOf(t string) (name, explanation string, ok bool) {
	switch t {
	case logentry.TypeExportPublished:
		return "Export file published",
			"A file of anonymous keys that phones download to check for exposures was published. The entry names the file and its fingerprint (SHA-256), how many keys it holds and which key signed it, so anyone can check that the file they downloaded is the one logged.", true
	case logentry.TypeRetentionDeleted:
		return "Old data deleted",
			"Keys older than the retention period (stated in the realm entries; 14 days by default) were deleted, and the export files that held them removed. Auditors check that nothing older is still served.", true
	case logentry.TypeExportRootAdded:
		return "Export files of a region added",
			"A new set of export files (a “root”, for one region's app) is now served to phones. Every root the server lists must be logged here, so auditors check the files of each of them.", true
	case logentry.TypeSigningKeyAdded:
		return "Signing key added",
			"A new public key appeared that signs export files or a health authority's verification certificates. Phones and key servers trust signatures only from keys logged here.", true
	case logentry.TypeSigningKeyRotated:
		return "Signing key replaced",
			"A signing key was replaced by a new one, as keys are regularly; the old key still checks what it signed before.", true
	case logentry.TypeSigningKeyRetired:
		return "Signing key retired",
			"A signing key was taken out of use: nothing it signs after this time is valid.", true
	case logentry.TypeRealmAdded:
		return "Health authority's code service added",
			"A health authority (a “realm”) started issuing verification codes here. The entry states its rules: how long codes work, how many may be issued a day, and the keys of its certificates.", true
	case logentry.TypeRealmChanged:
		return "Health authority's rules changed",
			"A realm's rules changed, for example how long its codes work or its daily quota. The entry states the new rules in full.", true
	case logentry.TypeAuthorityAdded:
		return "Health authority trusted",
			"The key server started accepting uploads certified by this health authority, with the public keys it checks the certificates with.", true
	case logentry.TypeAuthorityChanged:
		return "Health authority updated",
			"A trusted health authority's settings or public keys changed.", true
	case logentry.TypeStatsDaily:
		return "Daily counts",
			"How many verification codes a realm issued and how many people used them, on one day. Counts below 10 are shown as “<10”, so that no small group can be singled out.", true
	case logentry.TypeSoftwareStarted:
		return "Software started",
			"The server started, with the exact version of the software. A change of software shows up here.", true
	}
	return "", "", false
}

// typeName is the plain-language name of an entry type.
func typeName(t string) string {
	if name, _, ok := typeInfoOf(t); ok {
		return name
	}
	return t
}

type row struct {
	Index    uint64
	Time     string
	Type     string
	TypeName string
	Summary  string
	Link     string
	Bad      string
}

type typeCount struct {
	Type  string
	Count int
}

// buildPage assembles the page for the entries below the checkpoint's size.
func buildPage(l *Log, cp Checkpoint, cpErr error, f Filter, filterErr error, base string, now time.Time) pageData {
	d := pageData{
		Origin: l.Origin(), VerifierKey: l.VerifierKey(), Base: base, Filter: f,
		Types: logentry.Types(), Generated: now.UTC().Format(time.RFC3339),
	}
	if cpErr != nil {
		d.CheckpointErr = cpErr.Error()
	} else {
		d.Checkpoint = string(cp.Raw)
		d.Size = cp.Size
		d.RootHash = base64.StdEncoding.EncodeToString(cp.Hash)
	}
	if filterErr != nil {
		d.FilterErr = filterErr.Error()
	}
	counts := map[string]int{}
	skip := (f.Page - 1) * PageSize
	l.Each(d.Size, func(r Record) bool {
		if d.Newest == "" && r.DecodeErr == "" && !r.Entry.Time.IsZero() {
			d.Newest = r.Entry.Time.Format("2 January 2006, 15:00 UTC")
		}
		counts[r.Entry.Type]++
		if filterErr != nil || !f.Matches(r) {
			return true
		}
		d.Matches++
		if d.Matches > skip && len(d.Rows) < PageSize {
			d.Rows = append(d.Rows, rowOf(r))
		}
		return true
	})
	for _, t := range logentry.Types() {
		if counts[t] > 0 {
			d.Counts = append(d.Counts, typeCount{t, counts[t]})
		}
		if name, expl, ok := typeInfoOf(t); ok {
			d.Explained = append(d.Explained, typeInfo{Type: t, Name: name, Explanation: expl, Count: counts[t]})
		}
	}
	d.Page = f.Page
	d.Pages = max(1, (d.Matches+PageSize-1)/PageSize)
	if f.Page > 1 {
		d.PrevURL = f.query(f.Page - 1)
	}
	if f.Page < d.Pages {
		d.NextURL = f.query(f.Page + 1)
	}
	d.Charts = dailyCharts(l, d.Size, now)
	return d
}

func rowOf(r Record) row {
	rw := row{Index: r.Index, Link: fmt.Sprintf("%s/entries/%d", PagePath, r.Index)}
	if r.DecodeErr != "" {
		rw.Type = "(undecodable)"
		rw.Bad = r.DecodeErr
		return rw
	}
	rw.Time = r.Entry.Time.Format("2006-01-02 15:00Z")
	rw.Type = r.Entry.Type
	rw.TypeName = typeName(r.Entry.Type)
	rw.Summary = Summary(r.Entry)
	return rw
}

// Summary describes an entry in one line for people.
func Summary(e logentry.Entry) string {
	switch b := e.Body.(type) {
	case logentry.ExportPublished:
		keys := make([]string, len(b.SigningKeys))
		for i, k := range b.SigningKeys {
			keys[i] = k.String()
		}
		return fmt.Sprintf("%s: %s keys (%s revised), region %s, uploads of %s–%s, signed by %s, zip sha256 %s…",
			b.File, formatInt(int64(b.Keys)), formatInt(int64(b.RevisedKeys)), b.Region,
			b.WindowStart.Format("2006-01-02 15:04"), b.WindowEnd.Format("15:04Z"), strings.Join(keys, ", "), short(b.ZipSHA256))
	case logentry.RetentionDeleted:
		s := fmt.Sprintf("keys uploaded before %s deleted: %s keys, %d files", b.Cutoff.Format(time.RFC3339), b.KeysDeleted, b.FilesDeleted)
		if len(b.Files) > 0 {
			s += " (" + strings.Join(b.Files, ", ") + ")"
		}
		return s
	case logentry.ExportRootAdded:
		return fmt.Sprintf("export root %s added: files of region %s served under /exports/%s/", b.Root, b.Region, b.Root)
	case logentry.SigningKeyAdded:
		return fmt.Sprintf("%s key %s added%s", b.Purpose, b.Ref(), scope(b.Scope))
	case logentry.SigningKeyRotated:
		old := make([]string, len(b.Replaces))
		for i, k := range b.Replaces {
			old[i] = k.String()
		}
		return fmt.Sprintf("%s key %s added%s, succeeding %s", b.Purpose, b.Ref(), scope(b.Scope), strings.Join(old, ", "))
	case logentry.SigningKeyRetired:
		return fmt.Sprintf("%s key %s%s retired at %s", b.Purpose, b.Ref(), scope(b.Scope), b.RetiredAt.Format(time.RFC3339))
	case logentry.RealmAdded:
		return "realm added: " + realmSummary(b.Realm)
	case logentry.RealmChanged:
		return "realm changed: " + realmSummary(b.Realm)
	case logentry.AuthorityAdded:
		return "authority added: " + authoritySummary(b.Authority)
	case logentry.AuthorityChanged:
		return "authority changed: " + authoritySummary(b.Authority)
	case logentry.StatsDaily:
		s := fmt.Sprintf("%s on %s: %s codes issued, %s claimed, %s certificates", b.Realm, b.Day, b.CodesIssued, b.CodesClaimed, b.CertificatesIssued)
		if b.UploadsAccepted != nil {
			s += fmt.Sprintf(", %s uploads", b.UploadsAccepted)
		}
		if b.KeysPublished != nil {
			s += fmt.Sprintf(", %s keys published", b.KeysPublished)
		}
		return s
	case logentry.SoftwareStarted:
		s := fmt.Sprintf("%s %s started (%s", b.Module, b.Version, b.GoVersion)
		if b.Revision != "" {
			s += ", revision " + short(b.Revision)
			if b.Modified {
				s += " with local changes"
			}
		}
		return s + ")"
	case logentry.Unknown:
		return "an entry type this version does not know"
	}
	return ""
}

func realmSummary(r logentry.Realm) string {
	quota := "no daily quota"
	if r.DailyQuota > 0 {
		quota = fmt.Sprintf("at most %s codes a day", formatInt(int64(r.DailyQuota)))
	}
	return fmt.Sprintf("%s (%s): short codes valid %s, long codes %s, %s, certificates by %s valid %s, %d public keys",
		r.Name, r.Region, time.Duration(r.ShortCodeLifetime), time.Duration(r.LongCodeLifetime), quota,
		r.CertificateIssuer, time.Duration(r.CertificateLifetime), len(r.CertificateKeys))
}

func authoritySummary(a logentry.Authority) string {
	return fmt.Sprintf("%s (audience %s), %d public keys", a.Issuer, a.Audience, len(a.Keys))
}

func scope(s string) string {
	if s == "" {
		return ""
	}
	return " for " + s
}

func short(hexs string) string {
	if len(hexs) > 12 {
		return hexs[:12]
	}
	return hexs
}

// dailyCharts sums the entries below size over the last chartDays UTC days.
func dailyCharts(l *Log, size uint64, now time.Time) []chart {
	end := now.UTC().Truncate(24 * time.Hour)
	start := end.AddDate(0, 0, -(chartDays - 1))
	days := make([]time.Time, chartDays)
	for i := range days {
		days[i] = start.AddDate(0, 0, i)
	}
	dayIndex := func(t time.Time) (int, bool) {
		t = t.UTC().Truncate(24 * time.Hour)
		if t.Before(start) || t.After(end) {
			return 0, false
		}
		return int(t.Sub(start) / (24 * time.Hour)), true
	}
	newValues := func() []value { return make([]value, chartDays) }
	keysPublished, filesPublished, filesDeleted, keysDeleted := newValues(), newValues(), newValues(), newValues()
	issued, claimed := newValues(), newValues()
	addCount := func(vs []value, i int, c logentry.Count) {
		if n, ok := c.Exact(); ok {
			vs[i].N += n
		} else {
			vs[i].Lower = true
		}
	}
	// Daily statistics arrive up to a few days after their day; look back
	// a little further than the charts.
	horizon := start.AddDate(0, 0, -7)
	l.Each(size, func(r Record) bool {
		if r.DecodeErr != "" {
			return true
		}
		if r.Entry.Time.Before(horizon) {
			return false
		}
		switch b := r.Entry.Body.(type) {
		case logentry.ExportPublished:
			if i, ok := dayIndex(r.Entry.Time); ok {
				keysPublished[i].N += int64(b.Keys + b.RevisedKeys)
				filesPublished[i].N++
			}
		case logentry.RetentionDeleted:
			if i, ok := dayIndex(r.Entry.Time); ok {
				filesDeleted[i].N += int64(b.FilesDeleted)
				addCount(keysDeleted, i, b.KeysDeleted)
			}
		case logentry.StatsDaily:
			day, err := time.Parse(logentry.DayLayout, b.Day)
			if err != nil {
				return true
			}
			if i, ok := dayIndex(day); ok {
				addCount(issued, i, b.CodesIssued)
				addCount(claimed, i, b.CodesClaimed)
			}
		}
		return true
	})
	mk := func(title, note string, ss ...series) chart {
		c := chart{Title: title, Note: note, Series: ss, SVG: barChart(title, days, ss)}
		for i, d := range days {
			r := chartRow{Day: d.Format(logentry.DayLayout)}
			nonzero := false
			for _, s := range ss {
				v := s.Values[i]
				t := formatInt(v.N)
				if v.Lower {
					t = "at least " + t
				}
				nonzero = nonzero || v.N > 0 || v.Lower
				r.Values = append(r.Values, t)
			}
			if nonzero {
				c.Rows = append(c.Rows, r)
			}
		}
		for _, s := range ss {
			var total int64
			lower := false
			for _, v := range s.Values {
				total += v.N
				lower = lower || v.Lower
			}
			t := formatInt(total)
			if lower {
				t = "at least " + t
			}
			c.Totals = append(c.Totals, s.Name+": "+t)
		}
		return c
	}
	return []chart{
		mk("Keys published", "Keys in the export files published each day, padding included: what phones download.",
			series{Name: "keys", Class: "s1", Values: keysPublished}),
		mk("Export files published and deleted", "Files published, and files deleted by retention, each day.",
			series{Name: "published", Class: "s1", Values: filesPublished},
			series{Name: "deleted", Class: "s2", Values: filesDeleted}),
		mk("Keys deleted by retention", "Diagnosis keys deleted each day because they were older than the retention period.",
			series{Name: "keys deleted", Class: "s2", Values: keysDeleted}),
		mk("Verification codes issued and claimed", "Summed over realms from the daily statistics, by the day they count; a day with a realm's count below 10 is a lower bound.",
			series{Name: "issued", Class: "s1", Values: issued},
			series{Name: "claimed", Class: "s2", Values: claimed}),
	}
}

// pageTemplate renders pageData; parsed once per Handler.
func pageTemplate() (*template.Template, error) {
	return template.New("page.html").Funcs(template.FuncMap{
		"query":    func(f Filter, p int) string { return f.query(p) },
		"filterOf": func(t string) Filter { return Filter{Type: t, Page: 1} },
		"typeName": typeName,
	}).ParseFS(assets, "assets/page.html")
}
