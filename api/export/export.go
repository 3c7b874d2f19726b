package export

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/candor-en/candor/api/export/exportpb"
)

const (
	// Header is the 16 bytes that start every export.bin.
	Header = "EK Export v1    "

	// SignatureAlgorithm is the ASN.1 OID of ECDSA with SHA-256, the only
	// signature algorithm Candor writes and reads.
	SignatureAlgorithm = "1.2.840.10045.4.3.2"

	// KeyLength is the length of a key's Data.
	KeyLength = 16

	// DefaultRollingPeriod is the rolling period phones assume when a key
	// does not state one: 144 ten-minute intervals, a whole day.
	DefaultRollingPeriod = 144

	// BinEntry and SigEntry are the names of the two zip entries.
	BinEntry = "export.bin"
	SigEntry = "export.sig"
)

// Errors of this package, to be checked with errors.Is. Returned errors wrap
// them with context.
var (
	// ErrInvalid reports a File that cannot be encoded: a key that is not 16
	// bytes, an out-of-range rolling period or enum, or signers that do not
	// match the File's SignatureInfos. It is a bug in the caller.
	ErrInvalid = errors.New("invalid export file")

	// ErrNotZip reports input that is not a zip archive, or one that is
	// truncated or corrupt.
	ErrNotZip = errors.New("not a zip archive or truncated")

	// ErrMissingEntry reports a zip without export.bin or export.sig.
	ErrMissingEntry = errors.New("missing zip entry")

	// ErrEntryOrder reports a zip whose entries are not exactly export.bin
	// then export.sig.
	ErrEntryOrder = errors.New("zip entries not export.bin then export.sig")

	// ErrTooLarge reports an entry larger than MaxBinSize or MaxSigSize.
	ErrTooLarge = errors.New("zip entry too large")

	// ErrBadHeader reports an export.bin that does not start with Header.
	ErrBadHeader = errors.New("export.bin does not start with the export header")

	// ErrMalformed reports an export.bin or export.sig whose protobuf does
	// not decode, or that names a signature algorithm other than
	// SignatureAlgorithm.
	ErrMalformed = errors.New("malformed export protobuf")

	// ErrNoSignature reports a file without signatures, or a Write without
	// signers.
	ErrNoSignature = errors.New("no signature")

	// ErrUnknownKey reports that none of a file's signatures is by a known
	// key; the message names the keys the file was signed with.
	ErrUnknownKey = errors.New("unknown signing key")

	// ErrBadSignature reports a signature that does not verify, or a Signer
	// that returned something other than an ASN.1 DER ECDSA signature.
	ErrBadSignature = errors.New("bad signature")
)

// ReportType says why a key was published.
type ReportType int32

// The report types of the GAEN export format.
const (
	Unknown                    ReportType = 0
	ConfirmedTest              ReportType = 1
	ConfirmedClinicalDiagnosis ReportType = 2
	SelfReport                 ReportType = 3
	Recursive                  ReportType = 4
	Revoked                    ReportType = 5
)

// VariantOfConcern is the variant of concern associated with a key (GAEN v2).
type VariantOfConcern int32

// The variants of concern of the GAEN export format.
const (
	VariantUnknown VariantOfConcern = 0
	Variant1       VariantOfConcern = 1
	Variant2       VariantOfConcern = 2
	Variant3       VariantOfConcern = 3
	VariantRevoked VariantOfConcern = 4
)

// Key is one Temporary Exposure Key in an export file.
type Key struct {
	// Data is the 16-byte TEK.
	Data []byte
	// TransmissionRisk is deprecated by GAEN but still written.
	TransmissionRisk int32
	// RollingStartInterval is the ENIntervalNumber at which the key starts.
	RollingStartInterval int32
	// RollingPeriod is the number of ten-minute intervals the key is valid;
	// 0 and DefaultRollingPeriod are both written as the protobuf default
	// (field absent) and read back as DefaultRollingPeriod.
	RollingPeriod int32
	ReportType    ReportType
	// DaysSinceOnset is written only if HasDaysSinceOnset.
	DaysSinceOnset    int32
	HasDaysSinceOnset bool
	Variant           VariantOfConcern
}

// SignatureInfo names a signing key. Phones are configured with the public
// key for each (KeyID, KeyVersion) they trust.
type SignatureInfo struct {
	KeyVersion string
	KeyID      string
}

// String returns "KeyID/KeyVersion", how error messages name a key.
func (si SignatureInfo) String() string { return si.KeyID + "/" + si.KeyVersion }

// File is the content of one export file.
type File struct {
	// StartTimestamp and EndTimestamp bound the keys' arrival at the server,
	// in Unix seconds.
	StartTimestamp, EndTimestamp uint64
	Region                       string
	// BatchNum and BatchSize are 1 in every file Candor writes.
	BatchNum, BatchSize int32
	// SignatureInfos lists the keys that sign the file, in signer order.
	SignatureInfos []SignatureInfo
	// Keys are published for the first time; RevisedKeys were published
	// before and changed report type or onset. MarshalBin writes each list
	// sorted by Data.
	Keys, RevisedKeys []Key
}

// Field numbers of export.proto, used by the hand-written encoder.
const (
	fStartTimestamp = 1
	fEndTimestamp   = 2
	fRegion         = 3
	fBatchNum       = 4
	fBatchSize      = 5
	fSignatureInfos = 6
	fKeys           = 7
	fRevisedKeys    = 8
	fKeyVersion     = 3
	fKeyID          = 4
	fAlgorithm      = 5
	fKeyData        = 1
	fTransmission   = 2
	fRollingStart   = 3
	fRollingPeriod  = 4
	fReportType     = 5
	fDaysSinceOnset = 6
	fVariant        = 8
	tagSize         = 1 // every field number above is below 16
)

// MarshalBin encodes f as export.bin: Header followed by the
// TemporaryExposureKeyExport protobuf. Keys and RevisedKeys are each written
// sorted by key bytes, so the upload order does not leak; f itself is not
// modified. Fields are written in field-number order, exactly as
// proto.Marshal with Deterministic set would write the same message, and
// rolling_period is left out when it is the default.
func MarshalBin(f *File) ([]byte, error) {
	if err := validate(f); err != nil {
		return nil, fmt.Errorf("export bin: %w", err)
	}
	keys, keysSize := sortKeys(f.Keys)
	revised, revisedSize := sortKeys(f.RevisedKeys)
	size := len(Header) + headerFieldsSize(f) + keysSize + revisedSize

	b := make([]byte, 0, size)
	b = append(b, Header...)
	b = protowire.AppendTag(b, fStartTimestamp, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, f.StartTimestamp)
	b = protowire.AppendTag(b, fEndTimestamp, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, f.EndTimestamp)
	b = protowire.AppendTag(b, fRegion, protowire.BytesType)
	b = protowire.AppendString(b, f.Region)
	b = appendInt32(b, fBatchNum, f.BatchNum)
	b = appendInt32(b, fBatchSize, f.BatchSize)
	for _, si := range f.SignatureInfos {
		b = protowire.AppendTag(b, fSignatureInfos, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(signatureInfoSize(si)))
		b = appendSignatureInfo(b, si)
	}
	for _, sk := range keys {
		b = appendKey(b, fKeys, sk, &f.Keys[sk.index])
	}
	for _, sk := range revised {
		b = appendKey(b, fRevisedKeys, sk, &f.RevisedKeys[sk.index])
	}
	if len(b) != size {
		// A mismatch means the size functions and the appenders disagree.
		panic(fmt.Sprintf("export: encoded %d bytes, computed %d", len(b), size))
	}
	return b, nil
}

// validate checks what the wire format or phones require of f.
func validate(f *File) error {
	for _, list := range []struct {
		name string
		keys []Key
	}{{"key", f.Keys}, {"revised key", f.RevisedKeys}} {
		if len(list.keys) > math.MaxInt32 {
			return fmt.Errorf("%w: %d %ss", ErrInvalid, len(list.keys), list.name)
		}
		for i := range list.keys {
			k := &list.keys[i]
			switch {
			case len(k.Data) != KeyLength:
				return fmt.Errorf("%w: %s %d is %d bytes, want %d", ErrInvalid, list.name, i, len(k.Data), KeyLength)
			case k.RollingPeriod < 0 || k.RollingPeriod > DefaultRollingPeriod:
				return fmt.Errorf("%w: %s %d has rolling period %d, want 0 (default) to %d", ErrInvalid, list.name, i, k.RollingPeriod, DefaultRollingPeriod)
			case k.ReportType < Unknown || k.ReportType > Revoked:
				return fmt.Errorf("%w: %s %d has report type %d", ErrInvalid, list.name, i, k.ReportType)
			case k.Variant < VariantUnknown || k.Variant > VariantRevoked:
				return fmt.Errorf("%w: %s %d has variant %d", ErrInvalid, list.name, i, k.Variant)
			}
		}
	}
	return nil
}

// sortKey is what the encoder needs of a key apart from its metadata: its
// bytes as two big-endian words, so that sorting compares integers in one
// contiguous array and encoding does not chase the Data slices in sorted
// (random) order, and its encoded size, computed in input order.
type sortKey struct {
	hi, lo uint64
	index  int32
	size   int32
}

// sortKeys returns keys ordered by Data, and the size of their encoding as
// repeated message fields. Equal keys keep their input order so the output
// is deterministic. Every Data is 16 bytes.
func sortKeys(keys []Key) ([]sortKey, int) {
	sk := make([]sortKey, len(keys))
	total := 0
	for i := range keys {
		k := &keys[i]
		size := keySize(k)
		total += messageSize(size)
		sk[i] = sortKey{
			hi:    binary.BigEndian.Uint64(k.Data[:8]),
			lo:    binary.BigEndian.Uint64(k.Data[8:16]),
			index: int32(i),
			size:  int32(size),
		}
	}
	slices.SortFunc(sk, func(a, b sortKey) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		if c := cmp.Compare(a.lo, b.lo); c != 0 {
			return c
		}
		return cmp.Compare(a.index, b.index)
	})
	return sk, total
}

// int32Size is the varint size of an int32, which protobuf sign-extends to
// 64 bits (so negative values take 10 bytes).
func int32Size(v int32) int { return protowire.SizeVarint(uint64(int64(v))) }

func appendInt32(b []byte, num protowire.Number, v int32) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(int64(v)))
}

// messageSize is the size of an embedded message field whose content is n
// bytes.
func messageSize(n int) int { return tagSize + protowire.SizeVarint(uint64(n)) + n }

func headerFieldsSize(f *File) int {
	n := 2*(tagSize+8) +
		tagSize + protowire.SizeBytes(len(f.Region)) +
		tagSize + int32Size(f.BatchNum) +
		tagSize + int32Size(f.BatchSize)
	for _, si := range f.SignatureInfos {
		n += messageSize(signatureInfoSize(si))
	}
	return n
}

func signatureInfoSize(si SignatureInfo) int {
	return tagSize + protowire.SizeBytes(len(si.KeyVersion)) +
		tagSize + protowire.SizeBytes(len(si.KeyID)) +
		tagSize + protowire.SizeBytes(len(SignatureAlgorithm))
}

func appendSignatureInfo(b []byte, si SignatureInfo) []byte {
	b = protowire.AppendTag(b, fKeyVersion, protowire.BytesType)
	b = protowire.AppendString(b, si.KeyVersion)
	b = protowire.AppendTag(b, fKeyID, protowire.BytesType)
	b = protowire.AppendString(b, si.KeyID)
	b = protowire.AppendTag(b, fAlgorithm, protowire.BytesType)
	return protowire.AppendString(b, SignatureAlgorithm)
}

// writesRollingPeriod reports whether k's rolling period is written; the
// default is left out, as Google's reference server does.
func writesRollingPeriod(k *Key) bool {
	return k.RollingPeriod != 0 && k.RollingPeriod != DefaultRollingPeriod
}

// keySize is the size of k's TemporaryExposureKey message content.
func keySize(k *Key) int {
	n := tagSize + 1 + KeyLength +
		tagSize + int32Size(k.TransmissionRisk) +
		tagSize + int32Size(k.RollingStartInterval)
	if writesRollingPeriod(k) {
		n += tagSize + int32Size(k.RollingPeriod)
	}
	if k.ReportType != Unknown {
		n += tagSize + int32Size(int32(k.ReportType))
	}
	if k.HasDaysSinceOnset {
		n += tagSize + protowire.SizeVarint(protowire.EncodeZigZag(int64(k.DaysSinceOnset)))
	}
	if k.Variant != VariantUnknown {
		n += tagSize + int32Size(int32(k.Variant))
	}
	return n
}

// appendKey appends k, whose bytes and size are in sk, as embedded message
// field num.
func appendKey(b []byte, num protowire.Number, sk sortKey, k *Key) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sk.size))
	b = protowire.AppendTag(b, fKeyData, protowire.BytesType)
	b = protowire.AppendVarint(b, KeyLength)
	b = binary.BigEndian.AppendUint64(b, sk.hi)
	b = binary.BigEndian.AppendUint64(b, sk.lo)
	b = appendInt32(b, fTransmission, k.TransmissionRisk)
	b = appendInt32(b, fRollingStart, k.RollingStartInterval)
	if writesRollingPeriod(k) {
		b = appendInt32(b, fRollingPeriod, k.RollingPeriod)
	}
	if k.ReportType != Unknown {
		b = appendInt32(b, fReportType, int32(k.ReportType))
	}
	if k.HasDaysSinceOnset {
		b = protowire.AppendTag(b, fDaysSinceOnset, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(k.DaysSinceOnset)))
	}
	if k.Variant != VariantUnknown {
		b = appendInt32(b, fVariant, int32(k.Variant))
	}
	return b
}

// UnmarshalBin decodes export.bin. It checks the header and the signature
// algorithm but accepts any key content, so that files from other servers
// can be inspected.
func UnmarshalBin(b []byte) (*File, error) {
	if len(b) < len(Header) || string(b[:len(Header)]) != Header {
		return nil, fmt.Errorf("export bin: %w", ErrBadHeader)
	}
	var m exportpb.TemporaryExposureKeyExport
	if err := proto.Unmarshal(b[len(Header):], &m); err != nil {
		return nil, fmt.Errorf("export bin: %w: %w", ErrMalformed, err)
	}
	f := &File{
		StartTimestamp: m.GetStartTimestamp(),
		EndTimestamp:   m.GetEndTimestamp(),
		Region:         m.GetRegion(),
		BatchNum:       m.GetBatchNum(),
		BatchSize:      m.GetBatchSize(),
		Keys:           keysFromProto(m.GetKeys()),
		RevisedKeys:    keysFromProto(m.GetRevisedKeys()),
	}
	for _, si := range m.GetSignatureInfos() {
		info, err := signatureInfoFromProto(si)
		if err != nil {
			return nil, fmt.Errorf("export bin: %w", err)
		}
		f.SignatureInfos = append(f.SignatureInfos, info)
	}
	return f, nil
}

// signatureInfoFromProto converts si, rejecting algorithms Candor cannot
// verify. An absent algorithm is accepted as the only one there is.
func signatureInfoFromProto(si *exportpb.SignatureInfo) (SignatureInfo, error) {
	if si.SignatureAlgorithm != nil && si.GetSignatureAlgorithm() != SignatureAlgorithm {
		return SignatureInfo{}, fmt.Errorf("%w: signature algorithm %q, want %q", ErrMalformed, si.GetSignatureAlgorithm(), SignatureAlgorithm)
	}
	return SignatureInfo{KeyVersion: si.GetVerificationKeyVersion(), KeyID: si.GetVerificationKeyId()}, nil
}

func keysFromProto(pks []*exportpb.TemporaryExposureKey) []Key {
	if len(pks) == 0 {
		return nil
	}
	keys := make([]Key, len(pks))
	for i, pk := range pks {
		keys[i] = Key{
			Data:                 pk.GetKeyData(),
			TransmissionRisk:     pk.GetTransmissionRiskLevel(),
			RollingStartInterval: pk.GetRollingStartIntervalNumber(),
			RollingPeriod:        pk.GetRollingPeriod(),
			ReportType:           ReportType(pk.GetReportType()),
			DaysSinceOnset:       pk.GetDaysSinceOnsetOfSymptoms(),
			HasDaysSinceOnset:    pk.DaysSinceOnsetOfSymptoms != nil,
			Variant:              VariantOfConcern(pk.GetVariantOfConcern()),
		}
	}
	return keys
}
