package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"strings"
	"text/tabwriter"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/internal/operator"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/verification"
	"github.com/candor-en/candor/verification/account"
)

// VerificationConfig is the verification role's part of Config.
type VerificationConfig struct {
	// PublicURL is the server's public base URL, for long-code links and the
	// JWKS URL of built-in realms; http://<addr> when empty.
	PublicURL string
	// AppLink is where /v?c=<long code> redirects phones.
	AppLink string
	// VerificationCleanupInterval is how often expired codes and tokens are removed.
	VerificationCleanupInterval time.Duration
	// CertificateKeyRotation and TokenKeyRotation: how often realms' signing
	// keys rotate (0 for certificates: only `candor admin realm rotate-key`).
	CertificateKeyRotation time.Duration
	TokenKeyRotation       time.Duration
	// VerifyFailureBurst and VerifyFailureInterval bound failed code
	// redemptions per client address: a burst, then one per interval;
	// VerifyKeyFailure* is the ceiling per API key, all clients together.
	VerifyFailureBurst       int
	VerifyFailureInterval    time.Duration
	VerifyKeyFailureBurst    int
	VerifyKeyFailureInterval time.Duration
}

// Defaults of VerificationConfig.
const (
	DefaultVerificationCleanupInterval = time.Minute
	// verificationKeyCheck is how often realms' signing keys are checked for rotation.
	verificationKeyCheck = 10 * time.Minute
)

func (c *Config) verificationFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.PublicURL, "public-url", "", "public base URL of this server, for long-code links https://<host>/v?c=… and realms' JWKS URLs (default http://<addr>)")
	fs.StringVar(&c.AppLink, "app-link", verification.DefaultAppLink, "where /v?c=<long code> redirects phones; {code} becomes the long code")
	fs.DurationVar(&c.VerificationCleanupInterval, "verification-cleanup-interval", DefaultVerificationCleanupInterval, "how often expired verification codes and used tokens are removed")
	fs.DurationVar(&c.CertificateKeyRotation, "certificate-key-rotation", 0, "how often realms' certificate signing keys rotate (0: only by `candor admin realm rotate-key`)")
	fs.DurationVar(&c.TokenKeyRotation, "token-key-rotation", verification.DefaultTokenKeyRotation, "how often realms' verification-token signing keys rotate")
	fs.IntVar(&c.VerifyFailureBurst, "verify-failure-burst", verification.DefaultFailureBurst, "failed code redemptions one client address may make at once")
	fs.DurationVar(&c.VerifyFailureInterval, "verify-failure-interval", verification.DefaultFailureInterval, "a client address regains one failed redemption per interval")
	fs.IntVar(&c.VerifyKeyFailureBurst, "verify-key-failure-burst", verification.DefaultKeyFailureBurst, "failed code redemptions one device API key may make at once, all client addresses together")
	fs.DurationVar(&c.VerifyKeyFailureInterval, "verify-key-failure-interval", verification.DefaultKeyFailureInterval, "a device API key regains one failed redemption per interval")
}

// verificationParts are the verification role's pieces of Main.
type verificationParts struct {
	Verification        *verification.Service
	verificationHandler *verification.Handler
}

// publicURL is the server's public base URL without a trailing slash.
func (m *Main) publicURL() string {
	if u := strings.TrimRight(m.Config.PublicURL, "/"); u != "" {
		return u
	}
	if m.http != nil {
		return m.URL()
	}
	addr := m.Config.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	return "http://" + addr
}

// openVerification builds the verification service.
func (m *Main) openVerification(ctx context.Context) error {
	cfg := m.Config.VerificationConfig
	svc, err := verification.New(ctx, m.VerificationStore, m.Keysets, m.Master, verification.Options{
		Now:                    m.Config.now,
		LinkBase:               m.publicURL,
		Limiter:                m.failureLimiter(cmp.Or(cfg.VerifyFailureBurst, verification.DefaultFailureBurst), cmp.Or(cfg.VerifyFailureInterval, verification.DefaultFailureInterval)),
		KeyLimiter:             m.failureLimiter(cmp.Or(cfg.VerifyKeyFailureBurst, verification.DefaultKeyFailureBurst), cmp.Or(cfg.VerifyKeyFailureInterval, verification.DefaultKeyFailureInterval)),
		CertificateKeyRotation: cfg.CertificateKeyRotation,
		TokenKeyRotation:       cfg.TokenKeyRotation,
		// The audit list is the accounts', opened after this service.
		Auditor: verification.AuditFunc(func(ctx context.Context, by account.Actor, realm, action, target, detail string) error {
			if m.Accounts == nil {
				return nil
			}
			return m.Accounts.Record(ctx, by, realm, action, target, detail)
		}),
	})
	if err != nil {
		return err
	}
	h, err := verification.NewHandler(svc, m.Log, m.Registry, verification.HandlerOptions{AppLink: cfg.AppLink, ClientKey: m.failureClientKey})
	if err != nil {
		return err
	}
	m.Verification, m.verificationHandler = svc, h
	return nil
}

// failureClientKey identifies a client for the failed-redemption budget
// as the request limits do: its address (after --trusted-proxies) HMAC'd
// under the day's key, shared by replicas through Redis.
func (m *Main) failureClientKey(c echo.Context) (string, error) {
	if m.rateLimiter == nil {
		return "", errors.New("request limits not set up")
	}
	return m.rateLimiter.ClientKey(c, verification.ClientKeyName)
}

// registerVerification adds the verification routes.
func (m *Main) registerVerification(e *echo.Echo) { m.verificationHandler.Register(e) }

// verificationBackground starts the verification role's periodic jobs:
// removing expired codes and tokens, and rotating signing keys (pushing new
// certificate keys to the built-in key server). First it (re)registers every
// realm with the built-in key server, so that a changed --public-url or
// --addr reaches the JWKS URL and realms added while no server ran are
// trusted.
func (m *Main) verificationBackground(ctx context.Context) {
	interval := m.Config.VerificationCleanupInterval
	if interval <= 0 {
		interval = DefaultVerificationCleanupInterval
	}
	m.every(ctx, interval, "verification cleanup", func(ctx context.Context) error {
		res, err := m.Verification.Cleanup(ctx)
		if res.CodeHashes+res.CodeRecords+res.Tokens > 0 {
			m.Log.Debug("verification cleanup", "code_hashes", res.CodeHashes, "code_records", res.CodeRecords, "tokens", res.Tokens)
		}
		return err
	})
	// Before the key server's first JWKS poll: register every realm with
	// the address this server has now.
	if err := m.trustRealms(ctx); err != nil {
		m.Log.Warn("verification realms: built-in trust", "err", err)
	}
	m.every(ctx, m.keyMaintenanceInterval(verificationKeyCheck), "verification key maintenance", func(ctx context.Context) error {
		var changed []string
		err := m.exclusive(ctx, "verification/keys", func() (err error) {
			changed, err = m.Verification.MaintainKeys(ctx)
			return err
		})
		for _, name := range changed {
			r, rerr := m.Verification.Realm(ctx, name)
			if rerr == nil {
				rerr = m.trustRealm(ctx, r)
			}
			err = errors.Join(err, rerr)
		}
		return err
	})
	// Write the buffered statistics once more on shutdown.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		<-ctx.Done()
		if err := m.Verification.FlushStats(context.Background()); err != nil {
			m.Log.Warn("verification stats flush failed", "err", err)
		}
	}()
}

// trustRealm registers realm r with the built-in key server: a health
// authority with the realm's certificate issuer and audience, whose JWKS URL
// is this server's /jwks/<realm> and which already holds the realm's current
// public keys (so no poll is needed), and the realm's app (AppID) allowed to
// publish with it under the realm's region.
func (m *Main) trustRealm(ctx context.Context, r *verification.Realm) error {
	keys, err := m.Verification.CertificateKeys(ctx, r.Name)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	if ha, err := m.Authorities.HealthAuthority(ctx, r.CertificateIssuer); err == nil {
		for _, k := range ha.Keys {
			known[k.Version] = true
		}
	} else if !errors.Is(err, keyserver.ErrNotFound) {
		return err
	}
	ha := keyserver.HealthAuthority{
		Issuer: r.CertificateIssuer, Audience: r.CertificateAudience,
		Name: "verification realm " + r.Name, JWKSURL: m.publicURL() + api.JWKSPathPrefix + r.Name,
	}
	now := m.Config.now()
	var added []*keyserver.AuthorityKey
	for _, k := range keys {
		if !known[k.Version] {
			added = append(added, &keyserver.AuthorityKey{Version: k.Version, PEM: string(k.PEM)})
		}
	}
	if len(added) == 0 {
		added = append(added, nil) // update the audience and JWKS URL only
	}
	for _, k := range added {
		if _, _, err := keyserver.AddAuthority(ctx, m.Authorities, ha, k, now); err != nil {
			return fmt.Errorf("trust realm %s: %w", r.Name, err)
		}
	}
	if _, err := keyserver.AddApp(ctx, m.Authorities, r.AppID, r.CertificateIssuer, r.Region); err != nil {
		return fmt.Errorf("trust realm %s: %w", r.Name, err)
	}
	m.invalidateAuthorities()
	return nil
}

// trustRealms registers every realm with the built-in key server.
func (m *Main) trustRealms(ctx context.Context) error {
	realms, err := m.Verification.Realms(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range realms {
		errs = append(errs, m.trustRealm(ctx, r))
	}
	return errors.Join(errs...)
}

// addRealm creates a realm and registers it with the built-in key server.
func (m *Main) addRealm(ctx context.Context, r verification.Realm) (*verification.Realm, error) {
	realm, err := m.Verification.CreateRealm(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := m.trustRealm(ctx, realm); err != nil {
		return nil, err
	}
	return realm, nil
}

// ensureDemoRealm creates, on a first start (no realm yet), the realm "demo"
// (region DEMO) with an admin and a device API key, and prints them: the
// keys are shown this once.
func (m *Main) ensureDemoRealm(ctx context.Context, out io.Writer) error {
	realms, err := m.Verification.Realms(ctx)
	if err != nil || len(realms) > 0 {
		return err
	}
	r, err := m.addRealm(ctx, verification.Realm{Name: "demo", Region: "DEMO", DailyQuota: verification.DefaultDailyQuota})
	if err != nil {
		return fmt.Errorf("demo realm: %w", err)
	}
	admin, _, err := m.Verification.CreateAPIKey(ctx, r.Name, verification.AdminKey, "demo admin")
	if err != nil {
		return fmt.Errorf("demo realm: %w", err)
	}
	device, _, err := m.Verification.CreateAPIKey(ctx, r.Name, verification.DeviceKey, "demo device")
	if err != nil {
		return fmt.Errorf("demo realm: %w", err)
	}
	u := m.publicURL()
	fmt.Fprintf(out, "First start: created the verification realm %q (region %s, app %s).\n", r.Name, r.Region, r.AppID)
	fmt.Fprintf(out, "Its API keys are shown only now; keep them (new ones: candor admin apikey add):\n")
	fmt.Fprintf(out, "  admin API key:   %s\n", admin)
	fmt.Fprintf(out, "  device API key:  %s\n", device)
	fmt.Fprintf(out, "Issue a code:\n  curl -s -H 'X-API-Key: %s' -H 'Content-Type: application/json' -d '{\"testType\":\"confirmed\"}' %s/api/issue\n", admin, u)
	fmt.Fprintf(out, "Redeem it:\n  curl -s -H 'X-API-Key: %s' -H 'Content-Type: application/json' -d '{\"code\":\"<code>\"}' %s/api/verify\n", device, u)
	return nil
}

// ---- `candor admin` commands ----

// verificationAdminCommands are the role's `candor admin` commands.
func verificationAdminCommands() map[string]adminCommand {
	return map[string]adminCommand{
		"realm add":        adminRealmAdd,
		"realm set":        adminRealmSet,
		"realm list":       adminRealmList,
		"realm rotate-key": adminRealmRotateKey,
		"realm stats":      adminRealmStats,
		"apikey add":       adminAPIKeyAdd,
		"apikey list":      adminAPIKeyList,
		"apikey revoke":    adminAPIKeyRevoke,
	}
}

// policyFlags registers the realm policy flags; policy reads the ones given.
type policyFlags struct {
	fs                                 *flag.FlagSet
	issuer, audience, appID, testTypes string
	certLife, shortLife, longLife      time.Duration
	shortLen, longLen, quota           int
	requireDate, maintenance           bool
	withMaintenance                    bool
}

func newPolicyFlags(fs *flag.FlagSet, withMaintenance bool) *policyFlags {
	p := &policyFlags{fs: fs, withMaintenance: withMaintenance}
	fs.StringVar(&p.issuer, "issuer", "", "certificate issuer (iss) (default candor/<name>)")
	fs.StringVar(&p.audience, "audience", "", "certificate audience (aud) the key server expects (default "+verification.DefaultCertificateAudience+")")
	fs.DurationVar(&p.certLife, "certificate-lifetime", verification.DefaultCertificateLifetime, "how long a certificate is valid")
	fs.StringVar(&p.appID, "app-id", "", "healthAuthorityID under which the built-in key server accepts the realm's certificates (default <region>.candor.app)")
	fs.IntVar(&p.shortLen, "short-code-length", verification.DefaultShortCodeLength, "digits of the short code (6 to 16)")
	fs.DurationVar(&p.shortLife, "short-code-lifetime", verification.DefaultShortCodeLifetime, "how long a short code is valid (1m to 1h)")
	fs.IntVar(&p.longLen, "long-code-length", verification.DefaultLongCodeLength, "characters of the long code, a-z0-9 (12 to 64)")
	fs.DurationVar(&p.longLife, "long-code-lifetime", verification.DefaultLongCodeLifetime, "how long a long code (the link) is valid (short code's lifetime to 24h)")
	fs.StringVar(&p.testTypes, "test-types", strings.Join(verification.DefaultTestTypes(), ","), "test types the realm issues: confirmed, likely, negative, user-report")
	fs.IntVar(&p.quota, "daily-quota", verification.DefaultDailyQuota, "codes the realm may issue per UTC day (0: no bound)")
	fs.BoolVar(&p.requireDate, "require-date", false, "refuse codes without a symptom or test date")
	if withMaintenance {
		fs.BoolVar(&p.maintenance, "maintenance", false, "maintenance mode: every API of the realm answers 429 maintenance_mode")
	}
	return p
}

// policy returns the settings whose flags were given on the command line.
func (p *policyFlags) policy() operator.RealmPolicy {
	var rp operator.RealmPolicy
	p.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "issuer":
			rp.CertificateIssuer = &p.issuer
		case "audience":
			rp.CertificateAudience = &p.audience
		case "certificate-lifetime":
			rp.CertificateLifetime = &p.certLife
		case "app-id":
			rp.AppID = &p.appID
		case "short-code-length":
			rp.ShortCodeLength = &p.shortLen
		case "short-code-lifetime":
			rp.ShortCodeLifetime = &p.shortLife
		case "long-code-length":
			rp.LongCodeLength = &p.longLen
		case "long-code-lifetime":
			rp.LongCodeLifetime = &p.longLife
		case "test-types":
			var tt stringList
			_ = tt.Set(p.testTypes)
			rp.TestTypes = tt
		case "daily-quota":
			rp.DailyQuota = &p.quota
		case "require-date":
			rp.RequireDate = &p.requireDate
		case "maintenance":
			rp.Maintenance = &p.maintenance
		}
	})
	return rp
}

func printRealm(w io.Writer, r operator.RealmInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "realm\t%s\n", r.Name)
	fmt.Fprintf(tw, "  region\t%s\n", r.Region)
	fmt.Fprintf(tw, "  certificate issuer\t%s\n", r.CertificateIssuer)
	fmt.Fprintf(tw, "  certificate audience\t%s\n", r.CertificateAudience)
	fmt.Fprintf(tw, "  certificate lifetime\t%v\n", r.CertificateLifetime)
	fmt.Fprintf(tw, "  app (healthAuthorityID)\t%s\n", r.AppID)
	fmt.Fprintf(tw, "  JWKS\t%s\n", r.JWKSURL)
	fmt.Fprintf(tw, "  short code\t%d digits, %v\n", r.ShortCodeLength, r.ShortCodeLifetime)
	fmt.Fprintf(tw, "  long code\t%d characters, %v\n", r.LongCodeLength, r.LongCodeLifetime)
	fmt.Fprintf(tw, "  test types\t%s\n", strings.Join(r.TestTypes, ","))
	quota := "no bound"
	if r.DailyQuota > 0 {
		quota = fmt.Sprintf("%d codes per UTC day", r.DailyQuota)
	}
	fmt.Fprintf(tw, "  daily quota\t%s\n", quota)
	fmt.Fprintf(tw, "  require date\t%v\n", r.RequireDate)
	fmt.Fprintf(tw, "  maintenance\t%v\n", r.Maintenance)
	fmt.Fprintf(tw, "  brute-force bound\tp ≤ %.1e that one API key, from any number of addresses, guesses a given short code in its lifetime\n", r.BruteForceBound)
	tw.Flush()
}

func adminRealmAdd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin realm add", "Add a verification realm (a health authority that issues codes) and trust it in the built-in key server.", io.Err)
	tgt := targetFlags(fs)
	var req operator.RealmAddRequest
	fs.StringVar(&req.Name, "name", "", "realm name: lower-case letters, digits, dashes")
	fs.StringVar(&req.Region, "region", "", "region its uploads are exported under, e.g. US-WA")
	pf := newPolicyFlags(fs, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	req.RealmPolicy = pf.policy()
	var resp operator.RealmInfo
	if err := tgt.call(ctx, "realm.add", req, &resp); err != nil {
		return err
	}
	printRealm(io.Out, resp)
	return nil
}

func adminRealmSet(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin realm set", "Change a realm's policy; only the flags given change.", io.Err)
	tgt := targetFlags(fs)
	var req operator.RealmSetRequest
	fs.StringVar(&req.Name, "name", "", "realm name")
	pf := newPolicyFlags(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	req.RealmPolicy = pf.policy()
	var resp operator.RealmInfo
	if err := tgt.call(ctx, "realm.set", req, &resp); err != nil {
		return err
	}
	printRealm(io.Out, resp)
	return nil
}

func adminRealmList(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin realm list", "List the verification realms.", io.Err)
	tgt := targetFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp []operator.RealmInfo
	if err := tgt.call(ctx, "realm.list", struct{}{}, &resp); err != nil {
		return err
	}
	for _, r := range resp {
		printRealm(io.Out, r)
	}
	return nil
}

func adminRealmRotateKey(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin realm rotate-key", "Make a new certificate signing key primary for a realm. The old key stays published (JWKS) until its certificates have expired.", io.Err)
	tgt := targetFlags(fs)
	var req operator.RealmRequest
	fs.StringVar(&req.Name, "name", "", "realm name")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp operator.RealmKeys
	if err := tgt.call(ctx, "realm.rotate-key", req, &resp); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "realm %s: certificate keys %s (the last is primary)\n", resp.Realm, strings.Join(resp.Keys, ", "))
	return nil
}

func adminRealmStats(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin realm stats", "Print a realm's statistics per UTC day.", io.Err)
	tgt := targetFlags(fs)
	var req operator.RealmStatsRequest
	fs.StringVar(&req.Name, "name", "", "realm name")
	fs.IntVar(&req.Days, "days", 7, "how many UTC days up to today")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp []verification.DayStats
	if err := tgt.call(ctx, "realm.stats", req, &resp); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(io.Out).Encode(resp)
	}
	tw := tabwriter.NewWriter(io.Out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "day\tissued\tclaimed\texpired unclaimed\tinvalid attempts\tcertificates\t")
	for _, d := range resp {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", d.Day, d.CodesIssued, d.CodesClaimed, d.CodesExpired, d.InvalidAttempts, d.CertificatesIssued)
	}
	return tw.Flush()
}

func adminAPIKeyAdd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin apikey add", "Create an API key for a realm. Only the key is printed on stdout, and only this once: it is stored as a hash.", io.Err)
	tgt := targetFlags(fs)
	var req operator.APIKeyAddRequest
	fs.StringVar(&req.Realm, "realm", "", "realm name")
	fs.StringVar(&req.Kind, "kind", "", "device (for the app: /api/verify, /api/certificate) or admin (for issuing: /api/issue, …)")
	fs.StringVar(&req.Name, "name", "", "label, e.g. \"Android app\"")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp operator.APIKeyInfo
	if err := tgt.call(ctx, "apikey.add", req, &resp); err != nil {
		return err
	}
	fmt.Fprintln(io.Out, resp.Secret)
	fmt.Fprintf(io.Err, "%s API key %s of realm %s created; it is shown only this once\n", resp.Kind, resp.ID, resp.Realm)
	return nil
}

func adminAPIKeyList(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin apikey list", "List a realm's API keys (never their secrets).", io.Err)
	tgt := targetFlags(fs)
	var req operator.APIKeyRequest
	fs.StringVar(&req.Realm, "realm", "", "realm name")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp []operator.APIKeyInfo
	if err := tgt.call(ctx, "apikey.list", req, &resp); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(io.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "id\tkind\tname\tcreated\trevoked")
	for _, k := range resp {
		revoked := "-"
		if !k.RevokedAt.IsZero() {
			revoked = k.RevokedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Kind, k.Name, k.CreatedAt.Format(time.RFC3339), revoked)
	}
	return tw.Flush()
}

func adminAPIKeyRevoke(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin apikey revoke", "Revoke a realm's API key at once.", io.Err)
	tgt := targetFlags(fs)
	var req operator.APIKeyRequest
	fs.StringVar(&req.Realm, "realm", "", "realm name")
	fs.StringVar(&req.ID, "id", "", "key id, from `candor admin apikey list`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp operator.APIKeyInfo
	if err := tgt.call(ctx, "apikey.revoke", req, &resp); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "API key %s of realm %s revoked\n", resp.ID, resp.Realm)
	return nil
}
