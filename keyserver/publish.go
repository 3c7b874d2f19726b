package keyserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/candor-en/candor/api"
)

// ExposureStore keeps the uploaded keys.
type ExposureStore interface {
	// Publish atomically reads the stored exposures for keys, passes them to
	// plan, and writes the Change that plan returns; when plan fails nothing
	// is written and its error is returned. plan must depend only on its
	// argument: a store may call it more than once (retried transactions).
	// A nil error means the change is durable.
	Publish(ctx context.Context, keys [][KeyLength]byte, plan func(existing map[[KeyLength]byte]*Exposure) (*Change, error)) error
}

// Change is what one publish writes.
type Change struct {
	Insert []*Exposure
	// Revise holds stored exposures with their revision fields set.
	Revise []*Exposure
}

// Defaults of PublishOptions.
const (
	DefaultTruncateWindow       = time.Hour
	DefaultMaxIntervalAge       = 15 * 24 * time.Hour
	DefaultMaxSymptomOnsetAge   = 28 * 24 * time.Hour
	DefaultMaxDaysFromOnset     = 14
	DefaultOnsetDaysAgo         = 4
	DefaultMaxSameStartInterval = 3
	DefaultRevisionTokenMaxAge  = 30 * 24 * time.Hour
	DefaultAuthorityCacheTTL    = 30 * time.Second
)

// PublishOptions tune the publish rules. Zero fields take the defaults above.
type PublishOptions struct {
	// TruncateWindow is the coarseness of stored times; export periods must
	// be multiples of it.
	TruncateWindow time.Duration
	// MaxIntervalAge: a key must have been valid within this long.
	MaxIntervalAge time.Duration
	// MaxSymptomOnsetAge: an onset older than this is ignored.
	MaxSymptomOnsetAge time.Duration
	// MaxDaysFromOnset: keys further from the onset are dropped.
	MaxDaysFromOnset int
	// MaxSameStartInterval: how many keys may share one start interval.
	MaxSameStartInterval int
	// RevisionTokenMaxAge: older revision tokens are refused.
	RevisionTokenMaxAge time.Duration
	// AuthorityCacheTTL: how long apps and authorities are cached.
	AuthorityCacheTTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (o PublishOptions) withDefaults() PublishOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.TruncateWindow, DefaultTruncateWindow)
	def(&o.MaxIntervalAge, DefaultMaxIntervalAge)
	def(&o.MaxSymptomOnsetAge, DefaultMaxSymptomOnsetAge)
	def(&o.RevisionTokenMaxAge, DefaultRevisionTokenMaxAge)
	def(&o.AuthorityCacheTTL, DefaultAuthorityCacheTTL)
	if o.MaxDaysFromOnset == 0 {
		o.MaxDaysFromOnset = DefaultMaxDaysFromOnset
	}
	if o.MaxSameStartInterval == 0 {
		o.MaxSameStartInterval = DefaultMaxSameStartInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Publisher applies the publish rules and stores the result.
type Publisher struct {
	exposures   ExposureStore
	authorities *authorityCache
	revision    RevisionKeys
	opts        PublishOptions
}

// NewPublisher returns a Publisher over the given stores.
func NewPublisher(exposures ExposureStore, authorities AuthorityStore, revision RevisionKeys, opts PublishOptions) *Publisher {
	opts = opts.withDefaults()
	return &Publisher{
		exposures:   exposures,
		authorities: newAuthorityCache(authorities, opts.AuthorityCacheTTL, opts.Now),
		revision:    revision,
		opts:        opts,
	}
}

func (p *Publisher) now() time.Time { return p.opts.Now() }

// InvalidateCache makes the next publish re-read apps and authorities.
func (p *Publisher) InvalidateCache() { p.authorities.Invalidate() }

// Result is the outcome of a successful (or partly successful) publish.
type Result struct {
	RevisionToken string
	// Inserted counts the keys this upload stored, including those an
	// earlier attempt of the same upload stored (a retry is answered alike).
	Inserted int
	Revised  int
	// Dropped counts keys refused by validation or too far from the onset.
	Dropped int
	// PartialFailure, when set, explains why some keys were dropped.
	PartialFailure string
	Warnings       []string
}

// Publish validates req, checks its certificate, applies revisions and
// stores the keys. Failures are *api.Error values carrying the API code.
func (p *Publisher) Publish(ctx context.Context, req *api.Publish) (*Result, error) {
	now := p.now()
	if n := len(req.Keys); n == 0 || n > MaxKeysPerPublish {
		return nil, api.Errorf(api.CodeBadRequest, "a publish carries 1 to %d keys, not %d", MaxKeysPerPublish, n)
	}
	app, err := p.authorities.App(ctx, req.HealthAuthorityID)
	if errors.Is(err, ErrNotFound) {
		return nil, api.Errorf(api.CodeUnknownHealthAuthorityID, "unknown healthAuthorityID")
	}
	if err != nil {
		return nil, &api.Error{Code: api.CodeUnableToLoadHealthAuthority, Message: "loading app", Err: err}
	}
	cert, err := p.verifyCertificate(ctx, app, req)
	if err != nil {
		return nil, err
	}

	res := &Result{}
	batch, err := p.transform(req, app, cert, now, res)
	if err != nil {
		return nil, err
	}

	var token *RevisionToken
	if req.RevisionToken != "" {
		aead, err := p.revision.AEAD()
		if err != nil {
			return nil, &api.Error{Code: api.CodeInternalError, Message: "revision keys", Err: err}
		}
		if token, err = OpenRevisionToken(aead, req.RevisionToken); err != nil {
			// A bad token only matters if a key needs revising; decided in plan.
			token = nil
		} else if now.Sub(token.IssuedAt) > p.opts.RevisionTokenMaxAge {
			token = nil
		}
	}
	tokenSent := req.RevisionToken != ""

	keys := make([][KeyLength]byte, 0, len(batch))
	for _, e := range batch {
		keys = append(keys, e.Key)
	}
	var inserted, retried, revised int
	if len(batch) > 0 { // when every key was dropped there is nothing to store
		err = p.exposures.Publish(ctx, keys, func(existing map[[KeyLength]byte]*Exposure) (*Change, error) {
			ch, n, err := planChange(batch, existing, cert.ReportType, token, tokenSent, p.coarse(now))
			if err != nil {
				return nil, err
			}
			inserted, retried, revised = len(ch.Insert), n, len(ch.Revise)
			return ch, nil
		})
	}
	if err != nil {
		var perr *api.Error
		if errors.As(err, &perr) {
			return nil, perr
		}
		if ctx.Err() != nil {
			return nil, ctx.Err() // the client went away
		}
		return nil, &api.Error{Code: api.CodeInternalError, Message: "storing keys", Err: err}
	}
	res.Inserted, res.Revised = inserted+retried, revised

	aead, err := p.revision.AEAD()
	if err == nil {
		res.RevisionToken, err = p.newRevisionToken(batch, token, now).Seal(aead)
	}
	if err != nil {
		// The keys are stored; without a token the phone just cannot revise.
		res.Warnings = append(res.Warnings, "no revision token could be issued")
	}
	return res, nil
}

// newRevisionToken lists the keys of batch and, like the reference server,
// the keys of the valid token sent (sent may be nil) that the upload did not
// carry (e.g. dropped for the symptom onset), while they can still be
// stored, so the phone can still revise them.
func (p *Publisher) newRevisionToken(batch []*Exposure, sent *RevisionToken, now time.Time) *RevisionToken {
	tok := &RevisionToken{IssuedAt: now.Truncate(time.Hour)}
	for _, e := range batch {
		tok.Keys = append(tok.Keys, RevisableKey{Key: e.Key, IntervalNumber: e.IntervalNumber, IntervalCount: e.IntervalCount})
	}
	if sent == nil {
		return tok
	}
	minEnd := IntervalNumber(now.Add(-p.opts.MaxIntervalAge))
	for _, k := range sent.Keys {
		if _, ok := tok.Find(k.Key); ok || k.IntervalNumber+k.IntervalCount < minEnd || len(tok.Keys) == MaxKeysPerPublish {
			continue
		}
		tok.Keys = append(tok.Keys, k)
	}
	return tok
}

func (p *Publisher) coarse(t time.Time) time.Time { return t.Truncate(p.opts.TruncateWindow).UTC() }

// planChange decides, for keys already stored, whether the upload is a valid
// revision, and returns what to write and how many keys an earlier attempt of
// this same upload already stored.
func planChange(batch []*Exposure, existing map[[KeyLength]byte]*Exposure, rt ReportType, token *RevisionToken, tokenSent bool, revisedAt time.Time) (*Change, int, error) {
	ch := &Change{}
	retried := 0
	for _, in := range batch {
		prev, ok := existing[in.Key]
		if !ok {
			if rt != ReportNegative { // a negative test stores nothing new
				ch.Insert = append(ch.Insert, in)
			}
			continue
		}
		if prev.UploadTag == in.UploadTag && !prev.Revised {
			// This upload stored the key before, but its client saw an error
			// (timeout, disconnect) and retried: answer as the first time.
			// (Once revised, the first answer evidently arrived.)
			retried++
			continue
		}
		if !tokenSent {
			return nil, 0, api.Errorf(api.CodeMissingRevisionToken, "a key was uploaded before; its revision token is required")
		}
		if token == nil {
			return nil, 0, api.Errorf(api.CodeInvalidRevisionToken, "the revision token is invalid or expired")
		}
		tk, ok := token.Find(in.Key)
		if !ok || tk.IntervalNumber != prev.IntervalNumber || tk.IntervalCount != prev.IntervalCount ||
			in.IntervalNumber != prev.IntervalNumber || in.IntervalCount != prev.IntervalCount {
			return nil, 0, api.Errorf(api.CodeInvalidRevisionToken, "the revision token does not cover an uploaded key")
		}
		if rt == prev.ReportType || prev.Revised && rt == prev.RevisedReportType {
			// The original or the revised type again (e.g. the likely upload
			// re-sent after its confirmation): nothing changes, as in the
			// reference server.
			continue
		}
		if prev.Revised {
			return nil, 0, api.Errorf(api.CodeKeyAlreadyRevised, "a key was already revised")
		}
		if !prev.ReportType.CanReviseTo(rt) {
			return nil, 0, api.Errorf(api.CodeInvalidReportTypeTransition, "report type %s cannot be revised to %s", prev.ReportType, rt)
		}
		rev := *prev
		rev.Revised = true
		rev.RevisedReportType = rt
		rev.RevisedTransmissionRisk = in.TransmissionRisk
		rev.RevisedDaysSinceOnset = in.DaysSinceOnset
		rev.RevisedAt = revisedAt
		if in.CreatedAt.After(revisedAt) {
			rev.RevisedAt = in.CreatedAt // still under embargo
		}
		ch.Revise = append(ch.Revise, &rev)
	}
	return ch, retried, nil
}

// uploadTagDomain separates upload tags from any other HMAC under a hmacKey.
var uploadTagDomain = []byte("candor/upload-tag/v1\x00")

// uploadTagger returns the function that computes each key's UploadTag for
// one upload: HMAC-SHA256 under the phone's hmacKey of the certificate's
// hash and the key, truncated. An exact retry (same certificate, same keys,
// so the same hmacKey) recomputes the same tags. The hmacKey is never
// stored, so without it the tags of one upload's keys are unrelated random
// values: they neither group the keys nor link them to the certificate.
func uploadTagger(hmacKey []byte, certificate string) func(key [KeyLength]byte) [UploadTagLength]byte {
	certHash := sha256.Sum256([]byte(certificate))
	return func(key [KeyLength]byte) [UploadTagLength]byte {
		m := hmac.New(sha256.New, hmacKey)
		m.Write(uploadTagDomain)
		m.Write(certHash[:])
		m.Write(key[:])
		var tag [UploadTagLength]byte
		copy(tag[:], m.Sum(nil))
		return tag
	}
}

// transform validates the request's keys and turns the valid ones into
// exposures. Invalid keys are dropped and noted in res; when none is left the
// request fails, unless every key was dropped with a warning for its
// distance from the symptom onset.
func (p *Publisher) transform(req *api.Publish, app *App, cert *verifiedCertificate, now time.Time, res *Result) ([]*Exposure, error) {
	current := IntervalNumber(now)
	minEnd := IntervalNumber(now.Add(-p.opts.MaxIntervalAge))
	onset := p.symptomOnset(req.SymptomOnsetInterval, cert.SymptomOnsetInterval, now)
	created := p.coarse(now)
	tag := uploadTagger(cert.HMACKey, req.VerificationPayload)

	var firstErr string
	drop := func(i int, format string, args ...any) {
		res.Dropped++
		msg := fmt.Sprintf("key %d: "+format, append([]any{i}, args...)...)
		if firstErr == "" {
			firstErr = msg
		}
	}
	out := make([]*Exposure, 0, len(req.Keys))
	for i, k := range req.Keys {
		raw, err := decodeBase64(k.Key)
		if err != nil || len(raw) != KeyLength {
			drop(i, "key must be base64 of %d bytes", KeyLength)
			continue
		}
		if k.IntervalCount < 1 || k.IntervalCount > IntervalsPerDay {
			drop(i, "rollingPeriod %d is outside 1..%d", k.IntervalCount, IntervalsPerDay)
			continue
		}
		if k.TransmissionRisk < 0 || k.TransmissionRisk > 8 {
			drop(i, "transmissionRisk %d is outside 0..8", k.TransmissionRisk)
			continue
		}
		if k.IntervalNumber > current {
			drop(i, "key starts in the future")
			continue
		}
		if k.IntervalNumber+k.IntervalCount < minEnd {
			drop(i, "key expired more than %v ago", p.opts.MaxIntervalAge)
			continue
		}
		e := &Exposure{
			IntervalNumber:    k.IntervalNumber,
			IntervalCount:     k.IntervalCount,
			TransmissionRisk:  int32(k.TransmissionRisk),
			ReportType:        cert.ReportType,
			Traveler:          req.Traveler,
			Region:            app.Region,
			HealthAuthorityID: app.ID,
			CreatedAt:         created,
		}
		copy(e.Key[:], raw)
		e.UploadTag = tag(e.Key)
		if e.TransmissionRisk == 0 {
			e.TransmissionRisk = cert.ReportType.defaultTransmissionRisk()
		}
		if onset != 0 {
			days := int(k.IntervalNumber/IntervalsPerDay) - int(onset/IntervalsPerDay)
			if days > p.opts.MaxDaysFromOnset || days < -p.opts.MaxDaysFromOnset {
				res.Dropped++
				res.Warnings = append(res.Warnings, fmt.Sprintf("key %d dropped: %d days from symptom onset", i, days))
				continue
			}
			e.DaysSinceOnset, e.HasDaysSinceOnset = int32(days), true
		}
		// Embargo: a key still valid is exported only after it expires.
		if e.EndInterval() > current {
			e.CreatedAt = p.coarse(TimeForInterval(e.EndInterval()))
		}
		out = append(out, e)
	}
	if len(out) == 0 && firstErr != "" {
		return nil, api.Errorf(api.CodeBadRequest, "no valid key: %s", firstErr)
	}
	// Keys only dropped for their distance from the symptom onset are not an
	// error, even all of them: the reference answers 200 with the warnings.
	if err := p.checkOverlap(out); err != nil {
		return nil, err
	}
	if firstErr != "" {
		res.PartialFailure = firstErr
	}
	return out, nil
}

// checkOverlap refuses keys whose validity overlaps, except keys sharing a
// start interval (a phone may rotate its key within a day), at most
// MaxSameStartInterval of them. It also refuses the same key twice.
func (p *Publisher) checkOverlap(keys []*Exposure) error {
	sorted := slices.Clone(keys)
	slices.SortStableFunc(sorted, func(a, b *Exposure) int { return int(a.IntervalNumber - b.IntervalNumber) })
	seen := make(map[[KeyLength]byte]bool, len(sorted))
	perStart := 0
	var prevStart, prevEnd int32
	for i, e := range sorted {
		if seen[e.Key] {
			return api.Errorf(api.CodeBadRequest, "the same key appears twice")
		}
		seen[e.Key] = true
		if i > 0 && e.IntervalNumber == prevStart {
			perStart++
			if perStart > p.opts.MaxSameStartInterval {
				return api.Errorf(api.CodeBadRequest, "more than %d keys start at interval %d", p.opts.MaxSameStartInterval, e.IntervalNumber)
			}
			prevEnd = max(prevEnd, e.EndInterval())
			continue
		}
		if i > 0 && e.IntervalNumber < prevEnd {
			return api.Errorf(api.CodeBadRequest, "keys have overlapping validity")
		}
		perStart = 1
		prevStart, prevEnd = e.IntervalNumber, e.EndInterval()
	}
	return nil
}

// symptomOnset picks the onset interval (day-aligned): the request's if within
// the allowed age, else the certificate's, else DefaultOnsetDaysAgo.
func (p *Publisher) symptomOnset(fromRequest, fromCert int32, now time.Time) int32 {
	oldest := IntervalNumber(now.Add(-p.opts.MaxSymptomOnsetAge))
	current := IntervalNumber(now)
	valid := func(v int32) bool { return v > 0 && v >= oldest && v <= current }
	var onset int32
	switch {
	case valid(fromRequest):
		onset = fromRequest
	case valid(fromCert):
		onset = fromCert
	default:
		onset = IntervalNumber(now.Add(-DefaultOnsetDaysAgo * 24 * time.Hour))
	}
	return onset - onset%IntervalsPerDay
}
