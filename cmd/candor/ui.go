package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-en/candor/internal/operator"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/ui"
	"github.com/candor-en/candor/verification/account"
)

// The health workers' web UI (/ui/) runs with the verification role: its
// accounts (users, sessions, the audit list) live in the configured store,
// so sessions work across replicas.

// FirstAdminEmail is the sign-in name of the account created on the first
// start, which prints its one-time password.
const FirstAdminEmail = "admin@localhost"

// uiCleanupInterval is how often expired sessions and old audit entries
// are removed.
const uiCleanupInterval = 5 * time.Minute

// uiParts are the UI's pieces of Main.
type uiParts struct {
	Accounts  *account.Service
	uiHandler *ui.Handler
	// signinRefused counts sign-in attempts refused by the per-address
	// bound or a full password-hash queue, by reason (never by address).
	signinRefused *prometheus.CounterVec
}

// openUI builds the account service (TOTP secrets sealed by the
// "ui/totp-secrets" keyset) and the UI handler. It needs the verification
// service: call it after openVerification.
func (m *Main) openUI(ctx context.Context) error {
	ring, err := keyset.Open(ctx, m.Keysets, m.Master, "ui/totp-secrets", keyset.PurposeAEAD, keyset.Options{Now: m.Config.now})
	if err != nil {
		return fmt.Errorf("ui: TOTP keyset: %w", err)
	}
	aead, err := ring.AEAD()
	if err != nil {
		return fmt.Errorf("ui: TOTP keyset: %w", err)
	}
	accts, err := account.New(m.AccountStore, account.Options{Now: m.Config.now, Sealer: aead})
	if err != nil {
		return fmt.Errorf("ui: accounts: %w", err)
	}
	h, err := ui.New(ui.Options{
		Accounts: accts, Verification: m.Verification, Log: m.Log, Now: m.Config.now,
		SecureCookies: strings.HasPrefix(m.Config.PublicURL, "https://"),
		AddRealm:      m.addRealm,
		RealmChanged:  m.trustRealm,
	})
	if err != nil {
		return err
	}
	m.Accounts, m.uiHandler = accts, h
	return m.uiMetrics()
}

// uiMetrics registers the sign-in refusals and the password-hash load.
func (m *Main) uiMetrics() error {
	m.signinRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "candor_ui_signin_refused_total",
		Help: "Web UI sign-in attempts refused before the password check: address (429, over the per-address bound) or busy (503, password-hash queue full).",
	}, []string{"reason"})
	hashes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "candor_ui_password_hashes_waiting",
		Help: "Web UI requests waiting for a password-hash slot; at the queue's bound more are answered 503.",
	}, func() float64 { _, waiting := m.Accounts.HashLoad(); return float64(waiting) })
	for _, c := range []prometheus.Collector{m.signinRefused, hashes} {
		if err := m.Registry.Register(c); err != nil {
			return fmt.Errorf("ui metrics: %w", err)
		}
	}
	return nil
}

// registerUI adds the /ui/ routes, with sign-in attempts bounded per
// client address by the request limiter (set up before it).
func (m *Main) registerUI(e *echo.Echo) {
	m.uiHandler.LimitSignIns(ui.SignInLimits{
		Limiter: m.rateLimiter, PerAddress: ui.DefaultSignInsPerAddress,
		Refused: func(reason string) { m.signinRefused.WithLabelValues(reason).Inc() },
	})
	m.uiHandler.Register(e)
}

// uiBackground removes expired sessions and audit entries past retention.
func (m *Main) uiBackground(ctx context.Context) {
	m.every(ctx, uiCleanupInterval, "ui accounts cleanup", func(ctx context.Context) error {
		_, _, err := m.Accounts.Cleanup(ctx)
		return err
	})
}

// ensureFirstAdmin creates, when no account exists, the account
// FirstAdminEmail — a system admin and an admin of every realm there is
// (the demo realm on a first start) — and prints where to sign in and its
// one-time password, shown this once.
func (m *Main) ensureFirstAdmin(ctx context.Context, out io.Writer) error {
	exists, err := m.Accounts.HasUsers(ctx)
	if err != nil || exists {
		return err
	}
	u, otp, err := m.Accounts.AddUser(ctx, account.Operator(), account.NewUser{Email: FirstAdminEmail, Name: "First admin", System: true})
	if err != nil {
		return fmt.Errorf("first admin account: %w", err)
	}
	realms, err := m.Verification.Realms(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, r := range realms {
		if _, _, err := m.Accounts.AddUser(ctx, account.Operator(), account.NewUser{Email: u.Email, Realm: r.Name, Role: account.RoleAdmin}); err != nil {
			return fmt.Errorf("first admin account: %w", err)
		}
		names = append(names, r.Name)
	}
	fmt.Fprintf(out, "First start: created the web UI account %s (system admin", u.Email)
	if len(names) > 0 {
		fmt.Fprintf(out, ", admin of realm %s", strings.Join(names, ", "))
	}
	fmt.Fprintf(out, ").\nSign in at %s/ui/ with this one-time password, shown only now; you then choose your own:\n", m.publicURL())
	fmt.Fprintf(out, "  email:     %s\n  password:  %s\n", u.Email, otp)
	fmt.Fprintf(out, "More accounts: in the UI (Users), or candor admin user add --realm demo --email … --role worker\n")
	return nil
}

// ---- `candor admin user …` ----

func uiAdminCommands() map[string]adminCommand {
	return map[string]adminCommand{
		"user add":            adminUserAdd,
		"user list":           adminUserList,
		"user reset-password": adminUserResetPassword,
		"user disable":        func(ctx context.Context, args []string, io IO) error { return adminUserDisable(ctx, args, io, true) },
		"user enable":         func(ctx context.Context, args []string, io IO) error { return adminUserDisable(ctx, args, io, false) },
	}
}

func adminUserAdd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin user add", "Add a web UI account to a realm (or a system admin). A new account's one-time password is printed alone on stdout, only this once; at first sign-in the user chooses their own.", io.Err)
	tgt := targetFlags(fs)
	var req operator.UserAddRequest
	fs.StringVar(&req.Email, "email", "", "email address, the sign-in name")
	fs.StringVar(&req.Name, "name", "", "the person's name (optional)")
	fs.StringVar(&req.Realm, "realm", "", "realm the user works in (not for --role system)")
	fs.StringVar(&req.Role, "role", "", "worker (issues and checks codes), admin (also users, API keys, policy, statistics) or system (manages realms; admin everywhere)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp operator.UserInfo
	if err := tgt.call(ctx, "user.add", req, &resp); err != nil {
		return err
	}
	if resp.Password == "" {
		fmt.Fprintf(io.Err, "%s already had an account and keeps their password; added as %s\n", resp.Email, req.Role)
		return nil
	}
	fmt.Fprintln(io.Out, resp.Password)
	fmt.Fprintf(io.Err, "account %s created (%s); its one-time password is shown only this once\n", resp.Email, req.Role)
	return nil
}

func adminUserList(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin user list", "List the web UI accounts (all, or a realm's).", io.Err)
	tgt := targetFlags(fs)
	var req operator.UserRequest
	fs.StringVar(&req.Realm, "realm", "", "only this realm's users")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp []operator.UserInfo
	if err := tgt.call(ctx, "user.list", req, &resp); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(io.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "email\tname\troles\tstatus")
	for _, u := range resp {
		var roles []string
		if u.System {
			roles = append(roles, "system")
		}
		for r, role := range u.Realms {
			roles = append(roles, r+":"+role)
		}
		status := "active"
		switch {
		case u.Disabled:
			status = "disabled"
		case u.MustChange:
			status = "one-time password"
		}
		if u.TOTP {
			status += ", TOTP"
		}
		for _, r := range slices.Sorted(maps.Keys(u.Invited)) {
			status += ", invited to " + r + ":" + u.Invited[r]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Email, u.Name, strings.Join(roles, ","), status)
	}
	return tw.Flush()
}

func adminUserResetPassword(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin user reset-password", "Give a web UI account a new one-time password (printed alone on stdout), remove its second factor and sign it out everywhere.", io.Err)
	tgt := targetFlags(fs)
	var req operator.UserRequest
	fs.StringVar(&req.Email, "email", "", "email address of the account")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp operator.UserInfo
	if err := tgt.call(ctx, "user.reset-password", req, &resp); err != nil {
		return err
	}
	fmt.Fprintln(io.Out, resp.Password)
	fmt.Fprintf(io.Err, "password of %s reset; the one-time password is shown only this once\n", resp.Email)
	return nil
}

func adminUserDisable(ctx context.Context, args []string, io IO, disable bool) error {
	verb, op := "enable", "user.enable"
	if disable {
		verb, op = "disable", "user.disable"
	}
	fs := newFlagSet("admin user "+verb, "Disable (and sign out everywhere) or enable a web UI account.", io.Err)
	tgt := targetFlags(fs)
	req := operator.UserRequest{Disable: disable}
	fs.StringVar(&req.Email, "email", "", "email address of the account")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp operator.UserInfo
	if err := tgt.call(ctx, op, req, &resp); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "account %s %sd\n", resp.Email, verb)
	return nil
}
