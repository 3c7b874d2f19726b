package logentry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SchemaVersion is the version of the entry schema this package writes and
// reads.
const SchemaVersion = 1

// MaxEntrySize is the largest encoded entry: the tlog-tiles limit on one
// entry.
const MaxEntrySize = 1<<16 - 1

// ErrUnsupportedSchema is returned by Unmarshal for an entry of another
// schema version.
var ErrUnsupportedSchema = errors.New("logentry: unsupported schema version")

// Body is the type-specific content of an entry: one of the struct types of
// this package (ExportPublished, RetentionDeleted, …), or Unknown for a type
// written by a newer version.
type Body interface {
	// EntryType returns the entry type the body is logged as.
	EntryType() string
	check() error
	normalized() Body
	identity() string
}

// Entry is one entry of the log: an envelope with the schema version, the
// type, a coarse time and the body.
type Entry struct {
	Schema int
	Type   string
	// Time is when the event was recorded, in UTC, truncated to the hour.
	Time time.Time
	Body Body
}

// New returns the entry of body recorded at now: the current schema, the
// body's type, now in UTC truncated to the hour, and the body normalized
// (times in UTC, unordered lists sorted).
func New(now time.Time, body Body) Entry {
	return Entry{
		Schema: SchemaVersion,
		Type:   body.EntryType(),
		Time:   now.UTC().Truncate(time.Hour),
		Body:   body.normalized(),
	}
}

// Normalize returns body as New stores it: times in UTC, unordered lists
// sorted. Two bodies describe the same state when their normalized forms
// encode alike.
func Normalize(body Body) Body { return body.normalized() }

// Validate checks the envelope (schema, type matching the body, an hour-
// aligned UTC time) and the body's required fields.
func (e Entry) Validate() error {
	if e.Body == nil {
		return errors.New("logentry: entry without body")
	}
	if e.Schema != SchemaVersion {
		return fmt.Errorf("%w %d", ErrUnsupportedSchema, e.Schema)
	}
	if !typeRE.MatchString(e.Type) || e.Type != e.Body.EntryType() {
		return fmt.Errorf("logentry: type %q does not match its %T body", e.Type, e.Body)
	}
	if e.Time.IsZero() || e.Time.Location() != time.UTC || !e.Time.Equal(e.Time.Truncate(time.Hour)) {
		return fmt.Errorf("logentry: time %s is not a UTC hour", e.Time)
	}
	if err := e.Body.check(); err != nil {
		return fmt.Errorf("logentry: %s: %w", e.Type, err)
	}
	return nil
}

// envelope is the JSON form of an Entry.
type envelope struct {
	Data   json.RawMessage `json:"data"`
	Schema int             `json:"schema"`
	Time   string          `json:"time"`
	Type   string          `json:"type"`
}

// Marshal validates e and returns its canonical JSON encoding.
func (e Entry) Marshal() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	var data []byte
	if u, ok := e.Body.(Unknown); ok {
		data = u.Data
	} else {
		var err error
		if data, err = json.Marshal(e.Body.normalized()); err != nil {
			return nil, fmt.Errorf("logentry: %s: %w", e.Type, err)
		}
	}
	raw, err := json.Marshal(envelope{Data: data, Schema: e.Schema, Time: e.Time.Format(time.RFC3339), Type: e.Type})
	if err != nil {
		return nil, fmt.Errorf("logentry: %s: %w", e.Type, err)
	}
	out, err := Canonicalize(raw)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxEntrySize {
		return nil, fmt.Errorf("logentry: %s entry is %d bytes, more than %d", e.Type, len(out), MaxEntrySize)
	}
	return out, nil
}

// Unmarshal decodes one entry and checks it as an auditor would: the bytes
// must be the canonical encoding (ErrNotCanonical), the schema version
// SchemaVersion (ErrUnsupportedSchema), the envelope and a known type's body
// complete and without unknown fields. An entry of a type this package does
// not know decodes with an Unknown body.
func Unmarshal(b []byte) (Entry, error) {
	canon, err := Canonicalize(b)
	if err != nil {
		return Entry{}, err
	}
	var env envelope
	if err := strictUnmarshal(b, &env); err != nil {
		return Entry{}, fmt.Errorf("logentry: envelope: %w", err)
	}
	if env.Schema != SchemaVersion {
		return Entry{}, fmt.Errorf("%w %d", ErrUnsupportedSchema, env.Schema)
	}
	t, err := time.Parse(time.RFC3339, env.Time)
	if err != nil {
		return Entry{}, fmt.Errorf("logentry: time: %w", err)
	}
	if env.Data == nil || bytes.Equal(env.Data, []byte("null")) {
		return Entry{}, errors.New("logentry: entry without data")
	}
	body, err := decode(env.Type, env.Data)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Schema: env.Schema, Type: env.Type, Time: t.UTC(), Body: body}
	again, err := e.Marshal()
	if err != nil {
		return Entry{}, err
	}
	if !bytes.Equal(again, b) || !bytes.Equal(canon, b) {
		return Entry{}, fmt.Errorf("%w: %s entry", ErrNotCanonical, env.Type)
	}
	return e, nil
}

// decode decodes the body of an entry of type typ.
func decode(typ string, data []byte) (Body, error) {
	switch typ {
	case TypeExportPublished:
		return decodeAs[ExportPublished](typ, data)
	case TypeRetentionDeleted:
		return decodeAs[RetentionDeleted](typ, data)
	case TypeExportRootAdded:
		return decodeAs[ExportRootAdded](typ, data)
	case TypeSigningKeyAdded:
		return decodeAs[SigningKeyAdded](typ, data)
	case TypeSigningKeyRotated:
		return decodeAs[SigningKeyRotated](typ, data)
	case TypeSigningKeyRetired:
		return decodeAs[SigningKeyRetired](typ, data)
	case TypeRealmAdded:
		return decodeAs[RealmAdded](typ, data)
	case TypeRealmChanged:
		return decodeAs[RealmChanged](typ, data)
	case TypeAuthorityAdded:
		return decodeAs[AuthorityAdded](typ, data)
	case TypeAuthorityChanged:
		return decodeAs[AuthorityChanged](typ, data)
	case TypeStatsDaily:
		return decodeAs[StatsDaily](typ, data)
	case TypeSoftwareStarted:
		return decodeAs[SoftwareStarted](typ, data)
	}
	if !typeRE.MatchString(typ) {
		return nil, fmt.Errorf("logentry: malformed type %q", typ)
	}
	canon, err := Canonicalize(data)
	if err != nil {
		return nil, err
	}
	return Unknown{Type: typ, Data: canon}, nil
}

func decodeAs[T Body](typ string, data []byte) (Body, error) {
	var v T
	if err := strictUnmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("logentry: %s: %w", typ, err)
	}
	return v, nil
}

// strictUnmarshal decodes one JSON value, refusing unknown fields.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Identity returns what makes two entries record the same event, so that an
// event delivered twice is logged once: for an export file its name, for a
// retention run its cutoff, for an export root its name, for a signing key
// its purpose, id, version and public key, for a new realm or authority its
// name, for daily statistics the realm and day; for any other entry the
// SHA-256 of its encoding (so a repeat within the same hour is the same
// event). It is prefixed by the entry type.
func (e Entry) Identity() (string, error) {
	if e.Body == nil {
		return "", errors.New("logentry: entry without body")
	}
	if id := e.Body.identity(); id != "" {
		return e.Type + "/" + id, nil
	}
	b, err := e.Marshal()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return e.Type + "/sha256:" + hex.EncodeToString(sum[:]), nil
}
