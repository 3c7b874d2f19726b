package logentry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/candor-en/candor/api"
)

// Entry types: the value of an entry's "type", each with its body struct.
const (
	TypeExportPublished   = "export.published"
	TypeRetentionDeleted  = "retention.deleted"
	TypeExportRootAdded   = "export_root.added"
	TypeSigningKeyAdded   = "signing_key.added"
	TypeSigningKeyRotated = "signing_key.rotated"
	TypeSigningKeyRetired = "signing_key.retired"
	TypeRealmAdded        = "realm.added"
	TypeRealmChanged      = "realm.changed"
	TypeAuthorityAdded    = "authority.added"
	TypeAuthorityChanged  = "authority.changed"
	TypeStatsDaily        = "stats.daily"
	TypeSoftwareStarted   = "software.started"
)

// Types lists every entry type this package knows, in documentation order.
func Types() []string {
	return []string{
		TypeExportPublished, TypeRetentionDeleted, TypeExportRootAdded,
		TypeSigningKeyAdded, TypeSigningKeyRotated, TypeSigningKeyRetired,
		TypeRealmAdded, TypeRealmChanged, TypeAuthorityAdded, TypeAuthorityChanged,
		TypeStatsDaily, TypeSoftwareStarted,
	}
}

// Signing key purposes.
const (
	// PurposeExport keys sign export files; KeyID and KeyVersion are the
	// verification_key_id and verification_key_version of the files'
	// signature infos.
	PurposeExport = "export"
	// PurposeCertificate keys sign a realm's verification certificates;
	// KeyID is the certificate issuer and KeyVersion the JWT "kid".
	PurposeCertificate = "certificate"
)

// AlgorithmECDSAP256 is the algorithm of every Candor signing key: ECDSA on
// P-256 with SHA-256.
const AlgorithmECDSAP256 = "ecdsa-p256-sha256"

// KeyRef names a signing key the way export files do.
type KeyRef struct {
	KeyID      string `json:"keyId"`
	KeyVersion string `json:"keyVersion"`
}

// String returns "KeyID/KeyVersion".
func (k KeyRef) String() string { return k.KeyID + "/" + k.KeyVersion }

// ExportPublished claims that an export file was published: phones
// downloading File get exactly the bytes with ZipSHA256, whose export.bin
// (with BinSHA256) holds Keys keys and RevisedKeys revised keys of Region
// uploaded in [WindowStart, WindowEnd), signed by SigningKeys (each logged
// before in a signing_key entry of purpose "export").
type ExportPublished struct {
	// File is the file's path as index.txt lists it: <root>/<name>.zip.
	File        string    `json:"file"`
	Region      string    `json:"region"`
	WindowStart time.Time `json:"windowStart"`
	WindowEnd   time.Time `json:"windowEnd"`
	// FileNum is the file's number in its window's batch, from 1, of
	// FileCount files.
	FileNum   int `json:"fileNum"`
	FileCount int `json:"fileCount"`
	// ZipSHA256 and BinSHA256 are lower-case hex SHA-256 digests of the
	// zip and of its export.bin entry.
	ZipSHA256 string `json:"zipSHA256"`
	BinSHA256 string `json:"binSHA256"`
	Size      int64  `json:"size"`
	// Keys and RevisedKeys count the keys in the file, padding included:
	// what any downloader counts.
	Keys        int      `json:"keys"`
	RevisedKeys int      `json:"revisedKeys"`
	SigningKeys []KeyRef `json:"signingKeys"`
}

// EntryType implements Body.
func (ExportPublished) EntryType() string { return TypeExportPublished }

// Root returns the export root: the first segment of File.
func (b ExportPublished) Root() string {
	root, _, _ := strings.Cut(b.File, "/")
	return root
}

var exportFileRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}/[0-9]+-[0-9]+-[0-9]{5}\.zip$`)

func (b ExportPublished) check() error {
	var errs []error
	if !exportFileRE.MatchString(b.File) {
		errs = append(errs, fmt.Errorf("file %q is not <root>/<start>-<end>-<NNNNN>.zip", b.File))
	}
	if b.Region == "" {
		errs = append(errs, errors.New("region is empty"))
	}
	if b.WindowStart.IsZero() || !b.WindowEnd.After(b.WindowStart) {
		errs = append(errs, errors.New("window is empty"))
	}
	if b.FileNum < 1 || b.FileCount < b.FileNum {
		errs = append(errs, fmt.Errorf("file %d of %d", b.FileNum, b.FileCount))
	}
	errs = append(errs, checkDigest("zipSHA256", b.ZipSHA256), checkDigest("binSHA256", b.BinSHA256))
	if b.Size <= 0 || b.Keys < 0 || b.RevisedKeys < 0 {
		errs = append(errs, errors.New("size and key counts must not be negative"))
	}
	if len(b.SigningKeys) == 0 {
		errs = append(errs, errors.New("no signing keys"))
	}
	for _, k := range b.SigningKeys {
		if k.KeyID == "" || k.KeyVersion == "" {
			errs = append(errs, errors.New("signing key without id or version"))
		}
	}
	return errors.Join(errs...)
}

func (b ExportPublished) normalized() Body {
	b.WindowStart, b.WindowEnd = b.WindowStart.UTC(), b.WindowEnd.UTC()
	b.ZipSHA256, b.BinSHA256 = strings.ToLower(b.ZipSHA256), strings.ToLower(b.BinSHA256)
	b.SigningKeys = slices.Clone(b.SigningKeys)
	return b
}

// identity: a file is published once; its name identifies it.
func (b ExportPublished) identity() string { return b.File }

// RetentionDeleted claims that a retention run deleted the keys uploaded
// before Cutoff (KeysDeleted of them) and the export files of windows ending
// at or before Cutoff (FilesDeleted, named in Files), which are no longer
// listed or served.
type RetentionDeleted struct {
	Cutoff      time.Time `json:"cutoff"`
	KeysDeleted Count     `json:"keysDeleted"`
	// FilesDeleted counts the files deleted; Files names them (<root>/<name>,
	// sorted) when the exporter reported the names, and is empty otherwise.
	FilesDeleted int      `json:"filesDeleted"`
	Files        []string `json:"files"`
}

// EntryType implements Body.
func (RetentionDeleted) EntryType() string { return TypeRetentionDeleted }

func (b RetentionDeleted) check() error {
	var errs []error
	if b.Cutoff.IsZero() {
		errs = append(errs, errors.New("cutoff is zero"))
	}
	if b.FilesDeleted < 0 {
		errs = append(errs, errors.New("filesDeleted is negative"))
	}
	if len(b.Files) > 0 && len(b.Files) != b.FilesDeleted {
		errs = append(errs, fmt.Errorf("%d files named but filesDeleted is %d", len(b.Files), b.FilesDeleted))
	}
	for _, f := range b.Files {
		if !exportFileRE.MatchString(f) {
			errs = append(errs, fmt.Errorf("file %q is not <root>/<start>-<end>-<NNNNN>.zip", f))
		}
	}
	return errors.Join(errs...)
}

func (b RetentionDeleted) normalized() Body {
	b.Cutoff = b.Cutoff.UTC()
	b.Files = slices.Clone(b.Files)
	if b.Files == nil {
		b.Files = []string{}
	}
	slices.Sort(b.Files)
	return b
}

// identity: one retention run per cutoff.
func (b RetentionDeleted) identity() string { return b.Cutoff.UTC().Format(time.RFC3339Nano) }

// ExportRootAdded claims that the export root Root was added to the list
// of roots a deployment serves (/exports/roots.txt): from this entry on, its
// files are served under /exports/<Root>/ and carry Region. Roots are only
// ever added; every root served must have this entry.
type ExportRootAdded struct {
	Root   string `json:"root"`
	Region string `json:"region"`
}

// EntryType implements Body.
func (ExportRootAdded) EntryType() string { return TypeExportRootAdded }

var exportRootRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (b ExportRootAdded) check() error {
	var errs []error
	if !exportRootRE.MatchString(b.Root) || b.Root == "roots.txt" {
		errs = append(errs, fmt.Errorf("root %q is not a root name", b.Root))
	}
	if b.Region == "" {
		errs = append(errs, errors.New("region is empty"))
	}
	return errors.Join(errs...)
}

func (b ExportRootAdded) normalized() Body { return b }

// identity: a root is added once.
func (b ExportRootAdded) identity() string { return b.Root }

// SigningKey is a public signing key: what a signing_key entry is about.
type SigningKey struct {
	// Purpose is PurposeExport or PurposeCertificate.
	Purpose string `json:"purpose"`
	// Scope, when set, is what the key signs for: the realm of a
	// certificate key.
	Scope      string `json:"scope,omitempty"`
	KeyID      string `json:"keyId"`
	KeyVersion string `json:"keyVersion"`
	// Algorithm is AlgorithmECDSAP256.
	Algorithm string `json:"algorithm"`
	// PublicKeyPEM is the PKIX "PUBLIC KEY" PEM block.
	PublicKeyPEM string `json:"publicKeyPEM"`
}

// Ref returns the key's id and version.
func (k SigningKey) Ref() KeyRef { return KeyRef{KeyID: k.KeyID, KeyVersion: k.KeyVersion} }

func (k SigningKey) check() error {
	var errs []error
	if k.Purpose != PurposeExport && k.Purpose != PurposeCertificate {
		errs = append(errs, fmt.Errorf("purpose %q: want %q or %q", k.Purpose, PurposeExport, PurposeCertificate))
	}
	if k.KeyID == "" || k.KeyVersion == "" {
		errs = append(errs, errors.New("key id and version are required"))
	}
	if k.Algorithm != AlgorithmECDSAP256 {
		errs = append(errs, fmt.Errorf("algorithm %q: want %q", k.Algorithm, AlgorithmECDSAP256))
	}
	if err := checkPublicKeyPEM(k.PublicKeyPEM); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// identity: a key is its purpose, scope, id, version and public key; the
// same id and version with another public key is another event, which
// auditors report.
func (k SigningKey) identity() string {
	sum := sha256.Sum256([]byte(k.PublicKeyPEM))
	return strings.Join([]string{k.Purpose, k.Scope, k.KeyID, k.KeyVersion, hex.EncodeToString(sum[:8])}, "/")
}

// SigningKeyAdded claims that a new signing key was put into use; anything
// it signs verifies with PublicKeyPEM.
type SigningKeyAdded struct {
	SigningKey
}

// EntryType implements Body.
func (SigningKeyAdded) EntryType() string { return TypeSigningKeyAdded }

func (b SigningKeyAdded) check() error     { return b.SigningKey.check() }
func (b SigningKeyAdded) normalized() Body { return b }
func (b SigningKeyAdded) identity() string { return b.SigningKey.identity() }

// SigningKeyRotated claims that a new signing key was added as the
// successor of the keys in Replaces, which keep signing until their
// signing_key.retired entries.
type SigningKeyRotated struct {
	SigningKey
	Replaces []KeyRef `json:"replaces"`
}

// EntryType implements Body.
func (SigningKeyRotated) EntryType() string { return TypeSigningKeyRotated }

func (b SigningKeyRotated) check() error {
	err := b.SigningKey.check()
	if len(b.Replaces) == 0 {
		err = errors.Join(err, errors.New("replaces no key"))
	}
	return err
}
func (b SigningKeyRotated) normalized() Body { b.Replaces = slices.Clone(b.Replaces); return b }
func (b SigningKeyRotated) identity() string { return b.SigningKey.identity() }

// SigningKeyRetired claims that a signing key stops signing at RetiredAt;
// nothing published after that is signed by it.
type SigningKeyRetired struct {
	SigningKey
	RetiredAt time.Time `json:"retiredAt"`
}

// EntryType implements Body.
func (SigningKeyRetired) EntryType() string { return TypeSigningKeyRetired }

func (b SigningKeyRetired) check() error {
	err := b.SigningKey.check()
	if b.RetiredAt.IsZero() {
		err = errors.Join(err, errors.New("retiredAt is zero"))
	}
	return err
}
func (b SigningKeyRetired) normalized() Body { b.RetiredAt = b.RetiredAt.UTC(); return b }
func (b SigningKeyRetired) identity() string { return b.SigningKey.identity() }

// CertificateKey is one public key that verification certificates of a
// realm or health authority are signed with.
type CertificateKey struct {
	KeyVersion   string `json:"keyVersion"`
	PublicKeyPEM string `json:"publicKeyPEM"`
}

func checkCertificateKeys(keys []CertificateKey) error {
	var errs []error
	for _, k := range keys {
		if k.KeyVersion == "" {
			errs = append(errs, errors.New("certificate key without version"))
		}
		if err := checkPublicKeyPEM(k.PublicKeyPEM); err != nil {
			errs = append(errs, fmt.Errorf("certificate key %s: %w", k.KeyVersion, err))
		}
	}
	return errors.Join(errs...)
}

func sortedKeys(keys []CertificateKey) []CertificateKey {
	keys = slices.Clone(keys)
	if keys == nil {
		keys = []CertificateKey{}
	}
	slices.SortFunc(keys, func(a, b CertificateKey) int { return strings.Compare(a.KeyVersion, b.KeyVersion) })
	return keys
}

// Realm is a realm's public policy: who issues its verification codes and
// certificates, for how long codes and certificates are valid, how many
// codes a day it may issue, how long its data is kept, and its public
// certificate keys.
type Realm struct {
	Name      string   `json:"name"`
	Region    string   `json:"region"`
	TestTypes []string `json:"testTypes"`

	ShortCodeLength   int      `json:"shortCodeLength"`
	ShortCodeLifetime Duration `json:"shortCodeLifetime"`
	LongCodeLength    int      `json:"longCodeLength"`
	LongCodeLifetime  Duration `json:"longCodeLifetime"`
	// DailyQuota bounds the codes issued per UTC day; 0 means no bound.
	DailyQuota int `json:"dailyQuota"`

	CertificateIssuer   string           `json:"certificateIssuer"`
	CertificateAudience string           `json:"certificateAudience"`
	CertificateLifetime Duration         `json:"certificateLifetime"`
	CertificateKeys     []CertificateKey `json:"certificateKeys"`
	// Retention is how long the realm's uploaded keys are kept; zero when
	// not known to the recorder.
	Retention Duration `json:"retention,omitempty"`
}

func (r Realm) check() error {
	var errs []error
	if r.Name == "" || r.Region == "" {
		errs = append(errs, errors.New("name and region are required"))
	}
	if r.ShortCodeLifetime <= 0 || r.LongCodeLifetime <= 0 || r.CertificateLifetime <= 0 {
		errs = append(errs, errors.New("lifetimes must be positive"))
	}
	if r.DailyQuota < 0 || r.Retention < 0 {
		errs = append(errs, errors.New("quota and retention must not be negative"))
	}
	return errors.Join(append(errs, checkCertificateKeys(r.CertificateKeys))...)
}

func (r Realm) normalizedRealm() Realm {
	r.TestTypes = slices.Clone(r.TestTypes)
	if r.TestTypes == nil {
		r.TestTypes = []string{}
	}
	slices.Sort(r.TestTypes)
	r.CertificateKeys = sortedKeys(r.CertificateKeys)
	return r
}

// RealmAdded claims that a realm (a health authority issuing verification
// codes) was created with this policy.
type RealmAdded struct {
	Realm
}

// EntryType implements Body.
func (RealmAdded) EntryType() string { return TypeRealmAdded }

func (b RealmAdded) check() error     { return b.Realm.check() }
func (b RealmAdded) normalized() Body { b.Realm = b.Realm.normalizedRealm(); return b }
func (b RealmAdded) identity() string { return b.Name }

// RealmChanged claims that a realm's policy or certificate keys changed to
// these values.
type RealmChanged struct {
	Realm
}

// EntryType implements Body.
func (RealmChanged) EntryType() string { return TypeRealmChanged }

func (b RealmChanged) check() error     { return b.Realm.check() }
func (b RealmChanged) normalized() Body { b.Realm = b.Realm.normalizedRealm(); return b }
func (b RealmChanged) identity() string { return "" }

// Authority is a health authority the key server trusts: certificates with
// issuer Issuer and audience Audience, signed by one of Keys, authorise
// uploads.
type Authority struct {
	Issuer   string `json:"issuer"`
	Audience string `json:"audience"`
	Name     string `json:"name,omitempty"`
	// JWKSURL, when set, is where the key server fetches Keys.
	JWKSURL string           `json:"jwksURL,omitempty"`
	Keys    []CertificateKey `json:"keys"`
	// Retention is how long keys uploaded with its certificates are kept;
	// zero when not known to the recorder.
	Retention Duration `json:"retention,omitempty"`
}

func (a Authority) check() error {
	var errs []error
	if a.Issuer == "" || a.Audience == "" {
		errs = append(errs, errors.New("issuer and audience are required"))
	}
	if a.Retention < 0 {
		errs = append(errs, errors.New("retention must not be negative"))
	}
	return errors.Join(append(errs, checkCertificateKeys(a.Keys))...)
}

// AuthorityAdded claims that the key server started trusting a health
// authority's certificates.
type AuthorityAdded struct {
	Authority
}

// EntryType implements Body.
func (AuthorityAdded) EntryType() string { return TypeAuthorityAdded }

func (b AuthorityAdded) check() error     { return b.Authority.check() }
func (b AuthorityAdded) normalized() Body { b.Keys = sortedKeys(b.Keys); return b }
func (b AuthorityAdded) identity() string { return b.Issuer }

// AuthorityChanged claims that a trusted health authority's settings or
// keys changed to these values.
type AuthorityChanged struct {
	Authority
}

// EntryType implements Body.
func (AuthorityChanged) EntryType() string { return TypeAuthorityChanged }

func (b AuthorityChanged) check() error     { return b.Authority.check() }
func (b AuthorityChanged) normalized() Body { b.Keys = sortedKeys(b.Keys); return b }
func (b AuthorityChanged) identity() string { return "" }

// StatsDaily claims one realm's counts for one finished UTC day. Counts
// below CountThreshold show as "<10". UploadsAccepted and KeysPublished are
// absent when the recorder does not know them per realm.
type StatsDaily struct {
	Realm string `json:"realm"`
	// Day is the UTC date, YYYY-MM-DD.
	Day                string `json:"day"`
	CodesIssued        Count  `json:"codesIssued"`
	CodesClaimed       Count  `json:"codesClaimed"`
	CertificatesIssued Count  `json:"certificatesIssued"`
	UploadsAccepted    *Count `json:"uploadsAccepted,omitempty"`
	KeysPublished      *Count `json:"keysPublished,omitempty"`
}

// EntryType implements Body.
func (StatsDaily) EntryType() string { return TypeStatsDaily }

// DayLayout is the layout of StatsDaily.Day.
const DayLayout = "2006-01-02"

func (b StatsDaily) check() error {
	var errs []error
	if b.Realm == "" {
		errs = append(errs, errors.New("realm is empty"))
	}
	if d, err := time.Parse(DayLayout, b.Day); err != nil || d.Format(DayLayout) != b.Day {
		errs = append(errs, fmt.Errorf("day %q is not YYYY-MM-DD", b.Day))
	}
	return errors.Join(errs...)
}
func (b StatsDaily) normalized() Body { return b }

// identity: one entry per realm and day.
func (b StatsDaily) identity() string { return b.Realm + "/" + b.Day }

// SoftwareStarted claims that this build of Candor started serving: the
// module version, VCS revision and build settings reported by
// runtime/debug.ReadBuildInfo, so anyone can rebuild and compare.
type SoftwareStarted struct {
	Module  string `json:"module"`
	Version string `json:"version"`
	// Revision, RevisionTime and Modified come from the vcs.* build
	// settings; empty when built without VCS information.
	Revision     string `json:"revision,omitempty"`
	RevisionTime string `json:"revisionTime,omitempty"`
	Modified     bool   `json:"modified,omitempty"`
	GoVersion    string `json:"goVersion"`
	// Settings are the other build settings (GOOS, GOARCH, CGO_ENABLED,
	// -tags, …).
	Settings map[string]string `json:"settings,omitempty"`
	// Dependencies are the module dependencies as path@version.
	Dependencies []string `json:"dependencies,omitempty"`
}

// EntryType implements Body.
func (SoftwareStarted) EntryType() string { return TypeSoftwareStarted }

func (b SoftwareStarted) check() error {
	if b.Module == "" || b.Version == "" || b.GoVersion == "" {
		return errors.New("module, version and Go version are required")
	}
	return nil
}
func (b SoftwareStarted) normalized() Body { return b }
func (b SoftwareStarted) identity() string { return "" }

// Unknown is the body of an entry whose type this package does not know
// (written by a newer version); Data is its canonical JSON.
type Unknown struct {
	Type string
	Data []byte
}

// EntryType implements Body.
func (b Unknown) EntryType() string { return b.Type }

func (b Unknown) check() error     { return nil }
func (b Unknown) normalized() Body { return b }
func (b Unknown) identity() string { return "" }

var typeRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

func checkDigest(name, s string) error {
	if len(s) != 2*sha256.Size {
		return fmt.Errorf("%s: want %d hex digits", name, 2*sha256.Size)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("%s: not hex", name)
	}
	return nil
}

// checkPublicKeyPEM requires one P-256 "PUBLIC KEY" block and nothing
// after it, so that every reader of the entry sees the same single key.
func checkPublicKeyPEM(s string) error {
	if _, err := api.ParsePublicKeyPEM(s); err != nil {
		return err
	}
	if _, rest := pem.Decode([]byte(s)); len(strings.TrimSpace(string(rest))) > 0 {
		return errors.New("public key: want one PEM \"PUBLIC KEY\" block")
	}
	return nil
}
