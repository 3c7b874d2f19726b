package operator

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{AuthorityAddRequest{Issuer: "i"}, "--issuer and --audience are required"},
		{AuthorityAddRequest{Issuer: "i", Audience: "a"}, "give --public-key with --key-version, or --jwks-url"},
		{AuthorityAddRequest{Issuer: "i", Audience: "a", PublicKeyPEM: "x"}, "--key-version is required with --public-key"},
		{AuthorityAddRequest{Issuer: "i", Audience: "a", JWKSURL: "https://x/jwks"}, ""},
		{AppAddRequest{ID: "app"}, "--id and --authority are required"},
		{RealmAddRequest{Name: "r"}, "--name and --region are required"},
		{RealmSetRequest{Name: "r", Region: "US"}, "the region of a realm cannot change"},
		{RealmSetRequest{}, "--name is required"},
		{APIKeyAddRequest{Realm: "r", Kind: "device"}, ""},
		{UserAddRequest{Email: "a@b", Role: "worker"}, "--realm is required for the worker and admin roles"},
		{UserAddRequest{Email: "a@b", Role: "boss"}, "--role: want worker, admin or system"},
		{UserAddRequest{Email: "a@b", Role: "system"}, ""},
		{ExportAddRequest{Root: "r", Region: "R", KeyID: "1", KeyVersion: "v1", Period: "1x"}, `--period: time: unknown unit "x" in duration "1x"`},
		{ExportKeyRequest{Root: "r"}, "--root, --key-id and --key-version are required"},
		{ExportKeyRequest{Root: "r", KeyID: "1", KeyVersion: "v1", At: "soon"}, `--at: parsing time "soon" as "2006-01-02T15:04:05Z07:00": cannot parse "soon" as "2006"`},
		{ExportRunRequest{Now: "2026-01-02T03:04:05Z"}, ""},
	} {
		err := tc.req.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%#v: %v", tc.req, err)
			}
			continue
		}
		var oe Error
		if !errors.As(err, &oe) || err.Error() != tc.want {
			t.Errorf("%#v: got %v, want Error %q", tc.req, err, tc.want)
		}
	}
}

// TestRunRefusesBeforeServices: a request that does not decode or validate
// is refused as an Error before any service is used.
func TestRunRefusesBeforeServices(t *testing.T) {
	ctx := context.Background()
	var s Services // no services: any use would panic
	for name, body := range map[string]string{
		"app.add":    `{"id":"a"}`,
		"realm.add":  `{"name":"r","colour":"red"}`,
		"export.run": `{"now":"tomorrow"}`,
		"user.add":   `not json`,
	} {
		_, err := Run(ctx, &s, name, json.RawMessage(body))
		var oe Error
		if !errors.As(err, &oe) {
			t.Errorf("%s %s: got %v, want an Error", name, body, err)
		}
	}
	if _, err := Run(ctx, &s, "realm.delete", json.RawMessage(`{}`)); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown operation: got %v", err)
	}
}

func TestRole(t *testing.T) {
	for name, want := range map[string]string{"realm.add": "verification", "apikey.list": "verification", "export.run": "exporter", "authority.add": "", "user.add": ""} {
		if got := Role(name); got != want {
			t.Errorf("Role(%s) = %q, want %q", name, got, want)
		}
	}
}
