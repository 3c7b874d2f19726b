package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"strings"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/api/export"
)

// ExportsPath is the URL prefix under which a deployment serves its export
// files: /exports/<root>/index.txt, /exports/<root>/<file>.zip and
// /exports/<root>/keys.
const ExportsPath = "/exports/"

// Index returns the export files currently listed for root (GET
// /exports/<root>/index.txt), oldest first, each named "<root>/<file>.zip"
// as DownloadExport takes it. A phone downloads the names it has not
// processed yet. An index that is not byte for byte in the documented form
// (export.ParseIndex: no "\r", spaces, blank lines or trailing newline, only
// this root's files) is refused with export.ErrBadListing: its lines would
// name other URLs than the ones auditors check.
func (c *Client) Index(ctx context.Context, root string) ([]string, error) {
	if root == "" || strings.ContainsAny(root, "/\\") || root == "." || root == ".." {
		return nil, fmt.Errorf("export index: bad root %q", root)
	}
	b, err := c.get(ctx, ExportsPath+root+"/index.txt", MaxIndexSize)
	if err != nil {
		return nil, fmt.Errorf("export index %s: %w", root, err)
	}
	names, err := export.ParseIndex(b, root)
	if err != nil {
		return nil, fmt.Errorf("export index %s: %w", root, err)
	}
	return names, nil
}

// splitName checks an export file name "<root>/<file>" and splits it.
func splitName(name string) (root, file string, err error) {
	root, file, ok := strings.Cut(name, "/")
	if !ok || root == "" || file == "" || strings.ContainsAny(file, "/\\") || path.Clean(name) != name ||
		root == ".." || file == ".." || root == "." || file == "." {
		return "", "", fmt.Errorf("bad export file name %q: want <root>/<file>", name)
	}
	return root, file, nil
}

// DownloadExport downloads the export file name ("<root>/<file>.zip", as
// Index lists it), checks its signatures and returns its content.
//
// The file is accepted when a signature by a pinned key (WithExportKeys)
// verifies and no signature by a known key fails; with
// WithFetchedExportKeys, keys the server lists for the root are used when
// no pinned key signed the file. Failures wrap the errors of package
// api/export: export.ErrNotZip (not a zip, or truncated),
// export.ErrMissingEntry and export.ErrEntryOrder (wrong entries),
// export.ErrBadHeader (export.bin does not start with the export header),
// export.ErrMalformed, export.ErrNoSignature, export.ErrUnknownKey (signed
// only by keys the client does not know), export.ErrBadSignature.
func (c *Client) DownloadExport(ctx context.Context, name string) (*export.File, error) {
	root, _, err := splitName(name)
	if err != nil {
		return nil, fmt.Errorf("download export: %w", err)
	}
	b, err := c.get(ctx, ExportsPath+name, MaxExportSize)
	if err != nil {
		return nil, fmt.Errorf("download export %s: %w", name, err)
	}
	f, bin, sigs, err := export.Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", name, err)
	}
	keys := c.exportKeys
	if c.fetchKeys && !signedByAny(sigs, keys) {
		fetched, err := c.ExportKeys(ctx, root)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", name, err)
		}
		keys = maps.Clone(fetched)
		maps.Copy(keys, c.exportKeys) // pinned keys win
	}
	if err := export.Verify(bin, sigs, keys); err != nil {
		return nil, fmt.Errorf("export %s: %w", name, err)
	}
	return f, nil
}

// OpenExport reads an export zip obtained some other way (a CDN, a file)
// and checks its signatures against keys as DownloadExport does.
func OpenExport(zip []byte, keys map[export.SignatureInfo]*ecdsa.PublicKey) (*export.File, error) {
	f, bin, sigs, err := export.Read(bytes.NewReader(zip), int64(len(zip)))
	if err != nil {
		return nil, err
	}
	if err := export.Verify(bin, sigs, keys); err != nil {
		return nil, err
	}
	return f, nil
}

func signedByAny(sigs []export.Signature, keys map[export.SignatureInfo]*ecdsa.PublicKey) bool {
	for _, s := range sigs {
		if keys[s.Info] != nil {
			return true
		}
	}
	return false
}

// publishedKey is one entry of /exports/<root>/keys.
type publishedKey struct {
	KeyID        string `json:"keyId"`
	KeyVersion   string `json:"keyVersion"`
	Algorithm    string `json:"algorithm"`
	PublicKeyPEM string `json:"publicKeyPEM"`
}

// ExportKeys returns the public keys the deployment lists for root's export
// files (GET /exports/<root>/keys): the active signing keys and retired ones
// whose files may still be served. App developers register these, by key id
// and version, with the phone platforms.
func (c *Client) ExportKeys(ctx context.Context, root string) (map[export.SignatureInfo]*ecdsa.PublicKey, error) {
	if root == "" || strings.ContainsAny(root, "/\\") {
		return nil, fmt.Errorf("export keys: bad root %q", root)
	}
	b, err := c.get(ctx, ExportsPath+root+"/keys", MaxJSONResponse)
	if err != nil {
		return nil, fmt.Errorf("export keys %s: %w", root, err)
	}
	var list []publishedKey
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("export keys %s: %w", root, err)
	}
	keys := make(map[export.SignatureInfo]*ecdsa.PublicKey, len(list))
	for _, k := range list {
		if k.Algorithm != "" && k.Algorithm != export.SignatureAlgorithm {
			continue // a key this client cannot verify with
		}
		pub, err := api.ParsePublicKeyPEM(k.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("export keys %s: key %s/%s: %w", root, k.KeyID, k.KeyVersion, err)
		}
		keys[export.SignatureInfo{KeyID: k.KeyID, KeyVersion: k.KeyVersion}] = pub
	}
	return keys, nil
}
