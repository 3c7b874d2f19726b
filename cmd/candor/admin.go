package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/candor-en/candor/internal/operator"
)

// adminCommand is one `candor admin <subject> <verb>` command.
type adminCommand func(ctx context.Context, args []string, io IO) error

func adminCommands() map[string]adminCommand {
	t := map[string]adminCommand{
		"authority add": adminAuthorityAdd,
		"app add":       adminAppAdd,
	}
	maps.Copy(t, verificationAdminCommands())
	maps.Copy(t, uiAdminCommands())
	maps.Copy(t, exportAdminCommands())
	return t
}

func runAdmin(ctx context.Context, args []string, io IO) error {
	t := adminCommands()
	if len(args) < 2 || t[args[0]+" "+args[1]] == nil {
		names := slices.Sorted(maps.Keys(t))
		fmt.Fprintf(io.Err, "Usage: candor admin <subject> <verb> [flags]\n\nCommands:\n  %s\n", strings.Join(names, "\n  "))
		if len(args) < 2 {
			return usageError{"admin needs a subject and a verb"}
		}
		return usageError{fmt.Sprintf("unknown admin command %q", strings.Join(args[:2], " "))}
	}
	return t[args[0]+" "+args[1]](ctx, args[2:], io)
}

func adminAuthorityAdd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin authority add", "Trust a health authority's verification certificates, by public key or JWKS URL.", io.Err)
	tgt := targetFlags(fs)
	var req operator.AuthorityAddRequest
	fs.StringVar(&req.Issuer, "issuer", "", "certificate issuer (iss) of the authority")
	fs.StringVar(&req.Audience, "audience", "", "certificate audience (aud) the key server expects")
	fs.StringVar(&req.Name, "name", "", "display name")
	fs.StringVar(&req.KeyVersion, "key-version", "", "key version, matched to the certificate's kid")
	pubFile := fs.String("public-key", "", "PEM file of the authority's ECDSA P-256 public key")
	fs.StringVar(&req.JWKSURL, "jwks-url", "", "URL of the authority's JWKS, polled for its keys")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *pubFile != "" {
		b, err := os.ReadFile(*pubFile)
		if err != nil {
			return fmt.Errorf("public key: %w", err)
		}
		req.PublicKeyPEM = string(b)
	}
	var resp operator.AuthorityAddResponse
	if err := tgt.call(ctx, "authority.add", req, &resp); err != nil {
		return err
	}
	verb := "updated"
	if resp.Created {
		verb = "added"
	}
	fmt.Fprintf(io.Out, "authority %s %s (%d keys)\n", resp.Issuer, verb, resp.Keys)
	return nil
}

func adminAppAdd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("admin app add", "Allow an app (healthAuthorityID) to publish with certificates of an authority.", io.Err)
	tgt := targetFlags(fs)
	var req operator.AppAddRequest
	fs.StringVar(&req.ID, "id", "", "healthAuthorityID the app sends, e.g. com.example.app")
	fs.StringVar(&req.Authority, "authority", "", "issuer of an authority added with `admin authority add`")
	fs.StringVar(&req.Region, "region", "", "region the app's keys are exported under, e.g. US-WA")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var resp struct {
		ID          string
		Authorities []string
		Region      string
	}
	if err := tgt.call(ctx, "app.add", req, &resp); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "app %s: region %s, authorities %s\n", resp.ID, resp.Region, strings.Join(resp.Authorities, ","))
	return nil
}
