package ui

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/verification"
	"github.com/candor-en/candor/verification/account"
)

// zoneCases are health workers on either side of UTC midnight: in Auckland
// the local date is a day ahead of UTC, in Los Angeles a day behind.
var zoneCases = []struct {
	zone       string
	now        time.Time
	localDate  string
	clock      string // the short code's expiry (15 minutes) on the page
	earlier    string // a date two days before the local date
	notYetThen string // the day after the local date: refused
}{
	{"Pacific/Auckland", time.Date(2026, 12, 4, 14, 1, 0, 0, time.UTC), "2026-12-05", "03:16 NZDT", "2026-12-03", "2026-12-06"},
	{"America/Los_Angeles", time.Date(2026, 12, 5, 1, 30, 0, 0, time.UTC), "2026-12-04", "17:45 PST", "2026-12-02", "2026-12-05"},
}

var (
	zoneFieldRE = regexp.MustCompile(`name="zone" value="([^"]*)"`)
	testDateRE  = regexp.MustCompile(`<input id="testDate" name="testDate" type="date" value="([^"]*)" min="([^"]*)" max="([^"]*)"`)
)

// A new user is asked for a time zone before issuing; the issue form then
// shows today, the bounds and the prefilled date in that zone, a submitted
// form is checked and issued in it, the codes carry the local dates, and
// the expiry is shown with its zone. Without any script.
func TestIssueInTheUsersTimeZone(t *testing.T) {
	for _, tc := range zoneCases {
		t.Run(tc.zone, func(t *testing.T) {
			now := tc.now
			f := newFixture(t, func(o *Options) { o.Now = func() time.Time { return now } })
			b := f.firstSignIn("ana@example.org")

			// Asked for the time zone before the first page that needs it.
			st, page := b.get("/ui/issue")
			if st != 200 || !strings.Contains(page, "<h1>Your time zone</h1>") || !strings.Contains(page, `name="next" value="/ui/issue"`) {
				t.Fatalf("first issue page: %d, want the time-zone question\n%s", st, page)
			}
			if !strings.Contains(page, `<span class="no-js-hint">This page could not read your device's time zone`) {
				t.Error("the time-zone question does not say, without its script, that the device's zone is unknown")
			}
			// Names that are not a zone of the world are refused.
			for _, bad := range []string{"", "Local", "Mars/Olympus", "../../etc/passwd"} {
				if st, page := b.post("/ui/account/timezone", url.Values{"timezone": {bad}, "next": {"/ui/issue"}}); st != 400 || !strings.Contains(page, `id="tz-error"`) {
					t.Errorf("time zone %q: %d, want 400 with the error", bad, st)
				}
			}
			st, page = b.post("/ui/account/timezone", url.Values{"timezone": {tc.zone}, "next": {"/ui/issue"}})
			if st != 200 || !strings.Contains(page, "Issue a verification code") {
				t.Fatalf("after choosing the zone: %d, want the issue form", st)
			}

			// Today, the bounds and the prefilled date are local, and the page
			// says which zone they are in.
			m := testDateRE.FindStringSubmatch(page)
			if m == nil || m[1] != tc.localDate || m[3] != tc.localDate {
				t.Errorf("test date field %q, want value and max %s", m, tc.localDate)
			}
			if z := zoneFieldRE.FindStringSubmatch(page); z == nil || z[1] != tc.zone {
				t.Errorf("form's zone %q, want %s", z, tc.zone)
			}
			if !strings.Contains(page, `<strong id="date-zone">`+tc.zone+`</strong>`) || !strings.Contains(page, `<time datetime="`+tc.localDate+`">`) {
				t.Errorf("the form does not state its zone %s and today %s", tc.zone, tc.localDate)
			}

			// The day after the local date is refused; the local date and
			// one two days earlier are issued and stored as given.
			form := url.Values{"testType": {"confirmed"}, "zone": {tc.zone}, "testDate": {tc.notYetThen}, "uuid": {formUUIDRE.FindStringSubmatch(page)[1]}}
			if st, page := b.post("/ui/issue", form); st != 400 || !strings.Contains(page, `id="testDate-error"`) {
				t.Errorf("tomorrow's date %s: %d, want 400 at the field", tc.notYetThen, st)
			}
			form.Set("testDate", tc.localDate)
			form.Set("symptomDate", tc.earlier)
			st, page = b.post("/ui/issue", form)
			code := codeRE.FindStringSubmatch(page)
			if st != 200 || code == nil {
				t.Fatalf("issue with the local date %s: %d\n%s", tc.localDate, st, page)
			}
			if !strings.Contains(page, ">"+tc.clock+"</time>") {
				t.Errorf("issued page lacks the expiry with its zone %q", tc.clock)
			}
			caller, err := f.ver.Authenticate(f.ctx, f.device, verification.DeviceKey)
			if err != nil {
				t.Fatal(err)
			}
			v, err := f.ver.Verify(f.ctx, caller, &api.VerifyCodeRequest{VerificationCode: strings.ReplaceAll(code[1], " ", "")})
			if err != nil {
				t.Fatal(err)
			}
			if v.TestDate != tc.localDate || v.SymptomDate != tc.earlier {
				t.Errorf("stored dates: test %s, symptom %s; want %s and %s", v.TestDate, v.SymptomDate, tc.localDate, tc.earlier)
			}
		})
	}
}

// A form is checked in the zone it was shown in, even when the account's
// zone changed before it was sent (another tab): what the health worker saw
// is what is recorded.
func TestIssueFormKeepsItsZone(t *testing.T) {
	tc := zoneCases[0]
	now := tc.now
	f := newFixture(t, func(o *Options) { o.Now = func() time.Time { return now } })
	b := f.firstSignIn("ana@example.org")
	b.get("/ui/issue")
	b.post("/ui/account/timezone", url.Values{"timezone": {tc.zone}, "next": {"/ui/issue"}})
	_, page := b.get("/ui/issue")
	uuid := formUUIDRE.FindStringSubmatch(page)[1]
	b.get("/ui/account/timezone")
	b.post("/ui/account/timezone", url.Values{"timezone": {"UTC"}})
	st, page := b.post("/ui/issue", url.Values{"testType": {"confirmed"}, "zone": {tc.zone}, "testDate": {tc.localDate}, "uuid": {uuid}})
	if st != 200 || !strings.Contains(page, ">"+tc.clock+"</time>") {
		t.Fatalf("form shown in %s, sent after the account moved to UTC: %d", tc.zone, st)
	}
}

// firstSignIn adds a health worker and signs in for the first time,
// choosing a password, and stops there: the time zone is not chosen yet.
func (f *fixture) firstSignIn(email string) *browser {
	f.t.Helper()
	_, otp, err := f.acct.AddUser(f.ctx, account.Operator(), account.NewUser{Email: email, Realm: "wa", Role: account.RoleWorker})
	if err != nil {
		f.t.Fatal(err)
	}
	b := f.browser()
	b.get("/ui/signin")
	b.post("/ui/signin", url.Values{"email": {email}, "password": {otp}})
	if st, _ := b.post("/ui/account/password", url.Values{"current": {otp}, "new": {"correct horse battery staple"}, "confirm": {"correct horse battery staple"}}); st != 200 {
		f.t.Fatalf("choose password: %d", st)
	}
	return b
}
