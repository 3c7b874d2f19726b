package datause

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/candor-en/candor/api/logentry"
	"github.com/candor-en/candor/keyserver"
	"github.com/candor-en/candor/keyserver/exporter"
	"github.com/candor-en/candor/keyset"
	"github.com/candor-en/candor/transparency"
	"github.com/candor-en/candor/verification"
)

// Configs gives the export configurations; exporter.ConfigStore
// implements it.
type Configs interface {
	ExportConfigs(ctx context.Context) ([]*exporter.Config, error)
}

// Realms gives the realms and their certificate keys; *verification.Service
// implements it.
type Realms interface {
	Realms(ctx context.Context) ([]*verification.Realm, error)
	CertificateKeys(ctx context.Context, realm string) ([]keyset.PublicKey, error)
}

// Authorities gives the health authorities; keyserver.AuthorityStore
// implements it.
type Authorities interface {
	HealthAuthorities(ctx context.Context) ([]*keyserver.HealthAuthority, error)
}

// Sources are what Sync compares with the log. Configs and Authorities
// are required; ExportKeys and Realms are left out by a process that does
// not run the exporter or the verification service.
type Sources struct {
	Configs     Configs
	ExportKeys  ExportKeys
	Realms      Realms
	Authorities Authorities
}

// Sync logs what changed in the realms, health authorities, export roots
// and signing keys since the log last recorded them. Roles that record
// their changes as they happen make this find nothing; it catches changes
// made without a hook (or before the log existed).
func (r *Recorder) Sync(ctx context.Context, src Sources) error {
	var errs []error
	if src.ExportKeys != nil {
		errs = append(errs, r.SyncExportKeys(ctx, src.Configs, src.ExportKeys))
	}
	errs = append(errs, r.SyncExportRoots(ctx, src.Configs))
	if src.Realms != nil {
		errs = append(errs, r.SyncRealms(ctx, src.Realms))
	}
	errs = append(errs, r.SyncAuthorities(ctx, src.Authorities))
	return errors.Join(errs...)
}

// SyncExportKeys logs every export signing key: added (or, when another
// key already signed for the configuration, rotated), and retired.
func (r *Recorder) SyncExportKeys(ctx context.Context, cs Configs, keys ExportKeys) error {
	configs, err := cs.ExportConfigs(ctx)
	if err != nil {
		return fmt.Errorf("export configs: %w", err)
	}
	var errs []error
	for _, c := range configs {
		for _, s := range c.SignatureInfos {
			_, pub, err := keys.Signer(ctx, s.Keyset)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			k := exportKey(s.KeyID, s.KeyVersion, pub)
			if _, ok := r.log.SigningKey(k.Purpose, k.KeyID, k.KeyVersion); !ok {
				var body logentry.Body = logentry.SigningKeyAdded{SigningKey: k}
				if prev := predecessors(c, s); len(prev) > 0 {
					body = logentry.SigningKeyRotated{SigningKey: k, Replaces: prev}
				}
				if err := r.Record(ctx, body); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			if !s.Retired.IsZero() && !s.Retired.After(r.now()) {
				errs = append(errs, r.recordOnce(ctx, logentry.SigningKeyRetired{SigningKey: k, RetiredAt: s.Retired}))
			}
		}
	}
	return errors.Join(errs...)
}

// SyncExportRoots logs export_root.added for every configured root the log
// does not have: roots configured before the log existed, or whose event
// went astray. The exporter's hook normally logged them already.
func (r *Recorder) SyncExportRoots(ctx context.Context, cs Configs) error {
	configs, err := cs.ExportConfigs(ctx)
	if err != nil {
		return fmt.Errorf("export configs: %w", err)
	}
	var errs []error
	for _, c := range configs {
		errs = append(errs, r.recordOnce(ctx, logentry.ExportRootAdded{Root: c.Root, Region: c.Region}))
	}
	return errors.Join(errs...)
}

// predecessors are the keys of c that were signing when s was added.
func predecessors(c *exporter.Config, s exporter.SignatureInfo) []logentry.KeyRef {
	var out []logentry.KeyRef
	for _, o := range c.SignatureInfos {
		if o.KeyID == s.KeyID && o.KeyVersion == s.KeyVersion {
			continue
		}
		// Signing when s came (its retirement, if any, not before).
		if o.Added.Before(s.Added) && (o.Retired.IsZero() || !o.Retired.Before(s.Added)) {
			out = append(out, logentry.KeyRef{KeyID: o.KeyID, KeyVersion: o.KeyVersion})
		}
	}
	return out
}

// recordOnce logs body unless an entry with its identity is logged.
func (r *Recorder) recordOnce(ctx context.Context, body logentry.Body) error {
	if _, ok := r.log.Lookup(logentry.New(r.now(), body)); ok {
		return nil
	}
	return r.Record(ctx, body)
}

// SyncRealms logs realm.added for realms the log does not know and
// realm.changed when a realm's policy or certificate keys differ from the
// last logged state; and the realms' certificate keys as signing keys.
func (r *Recorder) SyncRealms(ctx context.Context, src Realms) error {
	realms, err := src.Realms(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, realm := range realms {
		keys, err := src.CertificateKeys(ctx, realm.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, k := range keys {
			sk := logentry.SigningKey{
				Purpose: logentry.PurposeCertificate, Scope: realm.Name, KeyID: realm.CertificateIssuer, KeyVersion: k.Version,
				Algorithm: logentry.AlgorithmECDSAP256, PublicKeyPEM: string(k.PEM),
			}
			errs = append(errs, r.recordOnce(ctx, logentry.SigningKeyAdded{SigningKey: sk}))
			if !k.Retired.IsZero() {
				errs = append(errs, r.recordOnce(ctx, logentry.SigningKeyRetired{SigningKey: sk, RetiredAt: k.Retired}))
			}
		}
		policy := realmPolicy(realm, keys, r.retention)
		errs = append(errs, recordState(ctx, r, policy, func(b logentry.Body) (logentry.Realm, bool) {
			switch b := b.(type) {
			case logentry.RealmAdded:
				return b.Realm, b.Name == realm.Name
			case logentry.RealmChanged:
				return b.Realm, b.Name == realm.Name
			}
			return logentry.Realm{}, false
		}, func(p logentry.Realm) logentry.Body { return logentry.RealmAdded{Realm: p} },
			func(p logentry.Realm) logentry.Body { return logentry.RealmChanged{Realm: p} }))
	}
	return errors.Join(errs...)
}

// realmPolicy is the public part of a realm: its code and certificate
// policy, the retention of the keys its certificates authorise, and the
// certificate keys that still verify.
func realmPolicy(r *verification.Realm, keys []keyset.PublicKey, retention time.Duration) logentry.Realm {
	p := logentry.Realm{
		Name: r.Name, Region: r.Region, TestTypes: slices.Clone(r.TestTypes),
		ShortCodeLength: r.ShortCodeLength, ShortCodeLifetime: logentry.Duration(r.ShortCodeLifetime),
		LongCodeLength: r.LongCodeLength, LongCodeLifetime: logentry.Duration(r.LongCodeLifetime),
		DailyQuota:        r.DailyQuota,
		CertificateIssuer: r.CertificateIssuer, CertificateAudience: r.CertificateAudience,
		CertificateLifetime: logentry.Duration(r.CertificateLifetime),
		Retention:           logentry.Duration(retention),
	}
	for _, k := range keys {
		p.CertificateKeys = append(p.CertificateKeys, logentry.CertificateKey{KeyVersion: k.Version, PublicKeyPEM: string(k.PEM)})
	}
	return p
}

// SyncAuthorities logs authority.added for health authorities the log does
// not know and authority.changed when one differs from its last logged
// state.
func (r *Recorder) SyncAuthorities(ctx context.Context, src Authorities) error {
	has, err := src.HealthAuthorities(ctx)
	if err != nil {
		return fmt.Errorf("health authorities: %w", err)
	}
	var errs []error
	for _, ha := range has {
		a := authority(ha, r.now(), r.retention)
		errs = append(errs, recordState(ctx, r, a, func(b logentry.Body) (logentry.Authority, bool) {
			switch b := b.(type) {
			case logentry.AuthorityAdded:
				return b.Authority, b.Issuer == ha.Issuer
			case logentry.AuthorityChanged:
				return b.Authority, b.Issuer == ha.Issuer
			}
			return logentry.Authority{}, false
		}, func(a logentry.Authority) logentry.Body { return logentry.AuthorityAdded{Authority: a} },
			func(a logentry.Authority) logentry.Body { return logentry.AuthorityChanged{Authority: a} }))
	}
	return errors.Join(errs...)
}

// authority is the public part of a health authority: who it is and the
// certificate keys valid at now.
func authority(ha *keyserver.HealthAuthority, now time.Time, retention time.Duration) logentry.Authority {
	a := logentry.Authority{
		Issuer: ha.Issuer, Audience: ha.Audience, Name: ha.Name, JWKSURL: ha.JWKSURL,
		Retention: logentry.Duration(retention),
	}
	for _, k := range ha.Keys {
		if !k.Thru.IsZero() && !now.Before(k.Thru) {
			continue
		}
		a.Keys = append(a.Keys, logentry.CertificateKey{KeyVersion: k.Version, PublicKeyPEM: strings.TrimSpace(k.PEM) + "\n"})
	}
	return a
}

// recordState logs added(cur) when pick finds no logged state of the same
// thing, and changed(cur) when the newest logged state differs from cur.
func recordState[T any](ctx context.Context, r *Recorder, cur T, pick func(logentry.Body) (T, bool), added, changed func(T) logentry.Body) error {
	last, found := lastLogged(r.log, pick)
	switch {
	case !found:
		return r.Record(ctx, added(cur))
	case !sameState(changed(last), changed(cur)):
		return r.Record(ctx, changed(cur))
	}
	return nil
}

// lastLogged returns the value pick extracts from the newest entry of l it
// matches.
func lastLogged[T any](l *transparency.Log, pick func(logentry.Body) (T, bool)) (T, bool) {
	var out T
	found := false
	l.Each(l.Size(), func(r transparency.Record) bool {
		if r.DecodeErr != "" {
			return true
		}
		if v, ok := pick(r.Entry.Body); ok {
			out, found = v, true
			return false
		}
		return true
	})
	return out, found
}

// sameState reports whether two bodies describe the same state: their
// normalized forms encode alike.
func sameState(a, b logentry.Body) bool {
	ja, err1 := json.Marshal(logentry.Normalize(a))
	jb, err2 := json.Marshal(logentry.Normalize(b))
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
