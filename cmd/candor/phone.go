package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/client"
	"github.com/candor-en/candor/gaen"
	"github.com/candor-en/candor/phone"
)

// `candor phone` simulates exposure-notification phones, each a state file;
// package phone does the work.

type phoneCommand struct {
	summary string
	run     func(ctx context.Context, args []string, io IO) error
}

func phoneCommands() map[string]phoneCommand {
	return map[string]phoneCommand{
		"keys":      {"create the phone (or bring it to today) and print its 14 daily keys", phoneKeys},
		"encounter": {"record another phone's Bluetooth identifiers for a while, as meeting it would", phoneEncounter},
		"report":    {"upload the phone's keys with a verification code (verify, certificate, publish)", phoneReport},
		"sync":      {"download new export files, verify them, and print the exposures found", phoneSync},
		"show":      {"print what the phone holds", phoneShow},
	}
}

func runPhone(ctx context.Context, args []string, io IO) error {
	t := phoneCommands()
	if len(args) == 0 || t[args[0]].run == nil {
		fmt.Fprintln(io.Err, "Usage: candor phone <command> --state FILE [flags]\n\nSimulate a phone of an exposure-notification app. Each phone is a JSON state file.\n\nCommands:")
		for _, name := range slices.Sorted(maps.Keys(t)) {
			fmt.Fprintf(io.Err, "  %-10s %s\n", name, t[name].summary)
		}
		fmt.Fprintln(io.Err, "\nRun `candor phone <command> --help` for its flags.")
		if len(args) == 0 {
			return usageError{"phone needs a command"}
		}
		if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			return nil
		}
		return usageError{fmt.Sprintf("unknown phone command %q", args[0])}
	}
	return t[args[0]].run(ctx, args[1:], io)
}

// phoneFlags are the flags every phone command has, and the app
// configuration flags, which are saved in the state when given.
type phoneFlags struct {
	state  string
	now    string
	server string
	apiKey string
	app    string
	root   string
}

func (p *phoneFlags) register(fs *flag.FlagSet, app bool) {
	fs.StringVar(&p.state, "state", "", "the phone's state file (created 0600 by keys)")
	fs.StringVar(&p.now, "now", "", "the phone's clock, RFC 3339 (default: the system clock)")
	if app {
		fs.StringVar(&p.server, "server", "", "base URL of the Candor server (saved in the state)")
		fs.StringVar(&p.apiKey, "api-key", "", "the app's device API key (saved in the state)")
		fs.StringVar(&p.app, "app", "", "the app's healthAuthorityID at the key server (saved in the state)")
		fs.StringVar(&p.root, "exports-root", "", "the export root of the phone's region (saved in the state)")
	}
}

func (p *phoneFlags) clock() (time.Time, error) {
	if p.now == "" {
		return time.Now(), nil
	}
	t, err := time.Parse(time.RFC3339, p.now)
	if err != nil {
		return time.Time{}, usageError{fmt.Sprintf("--now %q: want RFC 3339, e.g. 2026-05-01T12:00:00Z", p.now)}
	}
	return t, nil
}

// load reads the state (creating it when create is set), applies the app
// flags and rolls the keys to now.
func (p *phoneFlags) load(create bool, now time.Time) (*phone.State, error) {
	if p.state == "" {
		return nil, usageError{"--state FILE is required"}
	}
	st, err := phone.Load(p.state)
	if errors.Is(err, phone.ErrNoState) {
		if !create {
			return nil, fmt.Errorf("%w; create the phone with `candor phone keys --state %s`", err, p.state)
		}
		st, err = &phone.State{}, nil
	}
	if err != nil {
		return nil, err
	}
	for _, set := range []struct {
		flag  string
		field *string
	}{
		{p.server, &st.App.Server}, {p.apiKey, &st.App.APIKey}, {p.app, &st.App.HealthAuthorityID}, {p.root, &st.App.ExportsRoot},
	} {
		if set.flag != "" {
			*set.field = set.flag
		}
	}
	if _, err := st.Roll(now, rand.Reader); err != nil {
		return nil, err
	}
	return st, nil
}

func (p *phoneFlags) client(st *phone.State, opts ...client.Option) (*client.Client, error) {
	if st.App.Server == "" {
		return nil, usageError{"the phone has no server: give --server URL once"}
	}
	return client.New(st.App.Server, opts...)
}

func phoneKeys(ctx context.Context, args []string, io IO) error {
	var p phoneFlags
	fs := newFlagSet("phone keys [flags]", "Create the phone if its state file does not exist, make sure it has a key for each of the last 14 days,\nsave the app settings given, and print the keys.", io.Err)
	p.register(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	now, err := p.clock()
	if err != nil {
		return err
	}
	st, err := p.load(true, now)
	if err != nil {
		return err
	}
	if err := st.Save(p.state); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "phone %s: %d daily keys\n", p.state, len(st.Keys))
	for _, k := range st.Keys {
		fmt.Fprintf(io.Out, "  %s  rolling start %d  period %d  TEK %s\n", k.Day().Format(time.DateOnly), k.RollingStart, k.RollingPeriod, k.TEK)
	}
	return nil
}

func phoneEncounter(ctx context.Context, args []string, io IO) error {
	var p phoneFlags
	fs := newFlagSet("phone encounter --state FILE --with OTHER --minutes N [flags]",
		"Record on this phone what Bluetooth would receive from the phone OTHER during N minutes: one RPI per\n"+
			"10-minute interval touched, from a scan each minute. Only this phone's state changes; run it the\n"+
			"other way round too for a mutual meeting.", io.Err)
	p.register(fs, false)
	with := fs.String("with", "", "state file of the phone met")
	minutes := fs.Int("minutes", 15, "how long the phones were close, in minutes")
	at := fs.String("at", "", "when the encounter began, RFC 3339 (default: it ends now)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *with == "" {
		return usageError{"--with OTHER_STATE is required"}
	}
	if *minutes < 1 {
		return usageError{"--minutes must be at least 1"}
	}
	now, err := p.clock()
	if err != nil {
		return err
	}
	d := time.Duration(*minutes) * time.Minute
	start := now.Add(-d)
	if *at != "" {
		if start, err = time.Parse(time.RFC3339, *at); err != nil {
			return usageError{fmt.Sprintf("--at %q: want RFC 3339", *at)}
		}
	}
	if start.Add(d).After(now) {
		return usageError{fmt.Sprintf("the encounter would end at %s, after the phone's clock %s", start.Add(d).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	st, err := p.load(false, now)
	if err != nil {
		return err
	}
	other, err := phone.Load(*with)
	if err != nil {
		return err
	}
	res, err := st.Encounter(other, start, d)
	if err != nil {
		return err
	}
	if err := st.Save(p.state); err != nil {
		return err
	}
	first := intervalStart(res.First)
	end := intervalStart(res.Last + 1)
	fmt.Fprintf(io.Out, "heard %s for %d minutes: %d RPIs recorded, one per 10-minute interval from %s to %s UTC (%d one-minute scans)\n",
		*with, *minutes, res.Intervals, first.Format("2006-01-02 15:04"), end.Format("15:04"), res.Scans)
	return nil
}

func phoneReport(ctx context.Context, args []string, io IO) error {
	var p phoneFlags
	fs := newFlagSet("phone report --state FILE --code CODE [flags]",
		"Upload the phone's keys as the app does after a positive test: verify the code, get a certificate for\n"+
			"the keys' HMAC, publish them. A later report with a new code revises the earlier one (likely → confirmed).", io.Err)
	p.register(fs, true)
	code := fs.String("code", "", "the verification code (short or long) from the health authority")
	var accept stringList
	fs.Var(&accept, "accept", "test types the app accepts: confirmed, likely, negative, user-report (default: all)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *code == "" {
		return usageError{"--code is required"}
	}
	now, err := p.clock()
	if err != nil {
		return err
	}
	st, err := p.load(false, now)
	if err != nil {
		return err
	}
	c, err := p.client(st)
	if err != nil {
		return err
	}
	res, err := st.Report(ctx, c, phone.ReportOptions{Code: *code, Accept: accept, Now: now})
	if err != nil {
		return err
	}
	if err := st.Save(p.state); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "code verified: %s", res.TestType)
	if res.SymptomDate != "" {
		fmt.Fprintf(io.Out, ", symptoms since %s", res.SymptomDate)
	}
	if res.TestDate != "" {
		fmt.Fprintf(io.Out, ", tested %s", res.TestDate)
	}
	fmt.Fprintln(io.Out)
	if res.Revision {
		fmt.Fprintf(io.Out, "revised the earlier report: %d keys sent as %s, %d new\n", res.Keys, res.TestType, res.Inserted)
	} else {
		fmt.Fprintf(io.Out, "uploaded %d keys: %d stored\n", res.Keys, res.Inserted)
	}
	if res.PartialFailure != "" {
		fmt.Fprintf(io.Out, "some keys were dropped: %s\n", res.PartialFailure)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(io.Out, "warning: %s\n", w)
	}
	return nil
}

// exportKeyFlag is a repeatable --export-key KEYID/VERSION=FILE.
type exportKeyFlag map[export.SignatureInfo]string

func (f exportKeyFlag) String() string { return "" }
func (f exportKeyFlag) Set(v string) error {
	name, file, ok := strings.Cut(v, "=")
	id, version, ok2 := strings.Cut(name, "/")
	if !ok || !ok2 || id == "" || version == "" || file == "" {
		return fmt.Errorf("want KEYID/VERSION=PEMFILE, got %q", v)
	}
	f[export.SignatureInfo{KeyID: id, KeyVersion: version}] = file
	return nil
}

func phoneSync(ctx context.Context, args []string, io IO) error {
	var p phoneFlags
	fs := newFlagSet("phone sync --state FILE [flags]",
		"Download the export files listed since the last sync, check their signatures against the pinned keys,\n"+
			"match every key against what the phone heard, and print the exposures. Rejected files are named with\n"+
			"the reason and retried by the next sync.", io.Err)
	p.register(fs, true)
	pins := exportKeyFlag{}
	fs.Var(pins, "export-key", "pin an export signing key: KEYID/VERSION=PEMFILE (repeatable; saved in the state)")
	trust := fs.Bool("trust-server-keys", false, "pin the keys the server lists under /exports/<root>/keys (trust on first use; for tests and demos)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	now, err := p.clock()
	if err != nil {
		return err
	}
	st, err := p.load(false, now)
	if err != nil {
		return err
	}
	if st.App.ExportsRoot == "" {
		return usageError{"the phone has no export root: give --exports-root ROOT once"}
	}
	for si, file := range pins {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--export-key %s: %w", si, err)
		}
		pub, err := api.ParsePublicKeyPEM(string(b))
		if err != nil {
			return fmt.Errorf("--export-key %s: %w", si, err)
		}
		if err := st.PinExportKey(si, pub); err != nil {
			return err
		}
	}
	if *trust {
		c, err := p.client(st)
		if err != nil {
			return err
		}
		keys, err := c.ExportKeys(ctx, st.App.ExportsRoot)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return fmt.Errorf("the server lists no export keys for %s", st.App.ExportsRoot)
		}
		for si, pub := range keys {
			if err := st.PinExportKey(si, pub); err != nil {
				return err
			}
			fmt.Fprintf(io.Out, "pinned export key %s as the server lists it\n", si)
		}
	}
	pinned, err := st.PinnedExportKeys()
	if err != nil {
		return err
	}
	if len(pinned) == 0 {
		return usageError{"no export signing key is pinned: give --export-key KEYID/VERSION=PEMFILE, or --trust-server-keys"}
	}
	c, err := p.client(st, client.WithExportKeys(pinned))
	if err != nil {
		return err
	}
	res, err := st.Sync(ctx, c, phone.SyncOptions{})
	if res == nil {
		return err
	}
	if err := errors.Join(err, st.Save(p.state)); err != nil {
		return err // interrupted: the files processed so far are saved
	}
	fmt.Fprintf(io.Out, "index %s: %d files listed, %d new\n", st.App.ExportsRoot, res.Listed, len(res.Files)+len(res.Rejected))
	for _, f := range res.Files {
		fmt.Fprintf(io.Out, "  %s: %d keys, %d revised keys, signed by %s: %d matched, %d revised\n",
			f.Name, f.Keys, f.RevisedKeys, strings.Join(f.SignedBy, ", "), f.Matches, f.Revisions)
	}
	for _, r := range res.Rejected {
		fmt.Fprintf(io.Out, "  REJECTED %s: %s\n      %v\n", r.Name, r.Reason, r.Err)
	}
	printExposures(io, res.Exposures)
	if len(res.Rejected) > 0 {
		return fmt.Errorf("sync: %d export file(s) rejected: %s", len(res.Rejected), res.Rejected[0].Reason)
	}
	return nil
}

func printExposures(io IO, exps []phone.Exposure) {
	if len(exps) == 0 {
		fmt.Fprintln(io.Out, "no exposures")
		return
	}
	fmt.Fprintf(io.Out, "exposures on %d day(s):\n", len(exps))
	for _, e := range exps {
		fmt.Fprintf(io.Out, "  %s  %d min  (%d matched 10-minute intervals; heard in %d one-minute scans)  %s, %d key(s), transmission risk %d\n",
			e.Day.Format(time.DateOnly), int(e.Duration/time.Minute), e.Intervals, e.ScanMinutes, phone.ReportTypeName(e.ReportType), e.Keys, e.TransmissionRisk)
	}
}

func phoneShow(ctx context.Context, args []string, io IO) error {
	var p phoneFlags
	fs := newFlagSet("phone show --state FILE", "Print what the phone holds: its app settings, keys, what it heard, its uploads and exposures.", io.Err)
	p.register(fs, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if p.state == "" {
		return usageError{"--state FILE is required"}
	}
	st, err := phone.Load(p.state)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "phone %s\n  server %q, app %q, exports root %q, device API key set: %t\n", p.state, st.App.Server, st.App.HealthAuthorityID, st.App.ExportsRoot, st.App.APIKey != "")
	if len(st.Keys) > 0 {
		fmt.Fprintf(io.Out, "  %d daily keys, %s to %s\n", len(st.Keys), st.Keys[0].Day().Format(time.DateOnly), st.Keys[len(st.Keys)-1].Day().Format(time.DateOnly))
	}
	fmt.Fprintf(io.Out, "  heard %d RPIs; %d export files processed; %d pinned export keys\n", len(st.Heard), len(st.Synced), len(st.ExportKeys))
	for _, r := range st.Reports {
		fmt.Fprintf(io.Out, "  report %s: %s, %d keys sent, %d stored, revision %t\n", r.Day, r.TestType, r.Keys, r.Inserted, r.Revision)
	}
	printExposures(io, st.Exposures())
	return nil
}

// intervalStart returns the start of ENInterval n.
func intervalStart(n uint32) time.Time {
	return time.Unix(0, 0).UTC().Add(time.Duration(n) * gaen.IntervalDuration)
}
