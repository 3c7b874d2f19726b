package export

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/candor-en/candor/api/export/exportpb"
)

// testFile returns a File with n keys and n/4 revised keys of varied
// metadata, deterministic for a seed.
func testFile(seed uint64, n int) *File {
	rng := rand.New(rand.NewPCG(seed, 1))
	f := &File{
		StartTimestamp: 1_700_000_000,
		EndTimestamp:   1_700_003_600,
		Region:         "310",
		BatchNum:       1,
		BatchSize:      1,
		Keys:           make([]Key, n),
		RevisedKeys:    make([]Key, n/4),
	}
	for _, list := range [][]Key{f.Keys, f.RevisedKeys} {
		for i := range list {
			list[i] = randomKey(rng)
		}
	}
	return f
}

func randomKey(rng *rand.Rand) Key {
	data := make([]byte, KeyLength)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	k := Key{
		Data:                 data,
		TransmissionRisk:     rng.Int32N(9),
		RollingStartInterval: 2_833_000 + 144*rng.Int32N(14),
		RollingPeriod:        []int32{0, 144, 144, 1, 72, 143}[rng.IntN(6)],
		ReportType:           ReportType(rng.IntN(6)),
		Variant:              VariantOfConcern(rng.IntN(5)),
	}
	if rng.IntN(2) == 0 {
		k.HasDaysSinceOnset = true
		k.DaysSinceOnset = rng.Int32N(29) - 14
	}
	return k
}

// toProto builds the generated message equivalent to MarshalBin's output,
// independently of the encoder: keys sorted with bytes.Compare and the
// default rolling period left unset.
func toProto(f *File) *exportpb.TemporaryExposureKeyExport {
	m := &exportpb.TemporaryExposureKeyExport{
		StartTimestamp: proto.Uint64(f.StartTimestamp),
		EndTimestamp:   proto.Uint64(f.EndTimestamp),
		Region:         proto.String(f.Region),
		BatchNum:       proto.Int32(f.BatchNum),
		BatchSize:      proto.Int32(f.BatchSize),
		Keys:           keysToProto(f.Keys),
		RevisedKeys:    keysToProto(f.RevisedKeys),
	}
	for _, si := range f.SignatureInfos {
		m.SignatureInfos = append(m.SignatureInfos, &exportpb.SignatureInfo{
			VerificationKeyVersion: proto.String(si.KeyVersion),
			VerificationKeyId:      proto.String(si.KeyID),
			SignatureAlgorithm:     proto.String("1.2.840.10045.4.3.2"),
		})
	}
	return m
}

func keysToProto(keys []Key) []*exportpb.TemporaryExposureKey {
	sorted := slices.Clone(keys)
	slices.SortStableFunc(sorted, func(a, b Key) int { return bytes.Compare(a.Data, b.Data) })
	var out []*exportpb.TemporaryExposureKey
	for _, k := range sorted {
		pk := &exportpb.TemporaryExposureKey{
			KeyData:                    k.Data,
			TransmissionRiskLevel:      proto.Int32(k.TransmissionRisk),
			RollingStartIntervalNumber: proto.Int32(k.RollingStartInterval),
		}
		if k.RollingPeriod != 0 && k.RollingPeriod != 144 {
			pk.RollingPeriod = proto.Int32(k.RollingPeriod)
		}
		if k.ReportType != Unknown {
			pk.ReportType = exportpb.TemporaryExposureKey_ReportType(k.ReportType).Enum()
		}
		if k.HasDaysSinceOnset {
			pk.DaysSinceOnsetOfSymptoms = proto.Int32(k.DaysSinceOnset)
		}
		if k.Variant != VariantUnknown {
			pk.VariantOfConcern = exportpb.TemporaryExposureKey_VariantOfConcern(k.Variant).Enum()
		}
		out = append(out, pk)
	}
	return out
}

// testFiles are the files the encoder tests run on.
func testFiles() []struct {
	name string
	f    *File
} {
	withInfos := testFile(2, 50)
	withInfos.SignatureInfos = []SignatureInfo{{"v1", "310"}, {"v2", "310"}}
	negative := testFile(3, 3)
	negative.BatchNum, negative.BatchSize = -1, -2
	negative.Keys[0].TransmissionRisk = -5
	negative.Keys[1].RollingStartInterval = -1
	negative.Keys[2].HasDaysSinceOnset, negative.Keys[2].DaysSinceOnset = true, -14
	long := testFile(4, 5)
	long.Region = string(bytes.Repeat([]byte("r"), 200)) // two-byte length
	long.SignatureInfos = []SignatureInfo{{string(bytes.Repeat([]byte("v"), 130)), "id"}}
	dup := testFile(5, 4)
	dup.Keys[3].Data = slices.Clone(dup.Keys[1].Data)
	dup.Keys[3].TransmissionRisk = 7
	return []struct {
		name string
		f    *File
	}{
		{"empty", &File{}},
		{"keys", testFile(1, 1000)},
		{"signature infos", withInfos},
		{"negative numbers", negative},
		{"long strings", long},
		{"duplicate key data", dup},
	}
}

func TestMarshalBinMatchesGeneratedCode(t *testing.T) {
	for _, tt := range testFiles() {
		t.Run(tt.name, func(t *testing.T) {
			bin, err := MarshalBin(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(toProto(tt.f))
			if err != nil {
				t.Fatal(err)
			}
			if got := bin[len(Header):]; !bytes.Equal(got, want) {
				t.Fatalf("MarshalBin differs from proto.Marshal:\n got %x\nwant %x", got, want)
			}
		})
	}
}

func TestMarshalBinDecodesWithGeneratedCode(t *testing.T) {
	for _, tt := range testFiles() {
		t.Run(tt.name, func(t *testing.T) {
			bin, err := MarshalBin(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var m exportpb.TemporaryExposureKeyExport
			if err := proto.Unmarshal(bin[len(Header):], &m); err != nil {
				t.Fatal(err)
			}
			f := tt.f
			if m.GetStartTimestamp() != f.StartTimestamp || m.GetEndTimestamp() != f.EndTimestamp ||
				m.GetRegion() != f.Region || m.GetBatchNum() != f.BatchNum || m.GetBatchSize() != f.BatchSize {
				t.Errorf("header fields = %d %d %q %d %d", m.GetStartTimestamp(), m.GetEndTimestamp(), m.GetRegion(), m.GetBatchNum(), m.GetBatchSize())
			}
			if len(m.GetSignatureInfos()) != len(f.SignatureInfos) {
				t.Fatalf("%d signature infos, want %d", len(m.GetSignatureInfos()), len(f.SignatureInfos))
			}
			for i, si := range m.GetSignatureInfos() {
				want := f.SignatureInfos[i]
				if si.GetVerificationKeyVersion() != want.KeyVersion || si.GetVerificationKeyId() != want.KeyID ||
					si.GetSignatureAlgorithm() != SignatureAlgorithm {
					t.Errorf("signature info %d = %v, want %v", i, si, want)
				}
			}
			compareKeys(t, "keys", m.GetKeys(), f.Keys)
			compareKeys(t, "revised keys", m.GetRevisedKeys(), f.RevisedKeys)
		})
	}
}

// compareKeys checks decoded keys field by field against the sorted input.
func compareKeys(t *testing.T, name string, got []*exportpb.TemporaryExposureKey, keys []Key) {
	t.Helper()
	want := slices.Clone(keys)
	slices.SortStableFunc(want, func(a, b Key) int { return bytes.Compare(a.Data, b.Data) })
	if len(got) != len(want) {
		t.Fatalf("%s: %d decoded, want %d", name, len(got), len(want))
	}
	for i, pk := range got {
		w := want[i]
		period := w.RollingPeriod
		if period == 0 {
			period = DefaultRollingPeriod
		}
		switch {
		case !bytes.Equal(pk.GetKeyData(), w.Data):
			t.Errorf("%s[%d]: key data %x, want %x", name, i, pk.GetKeyData(), w.Data)
		case pk.TransmissionRiskLevel == nil || pk.GetTransmissionRiskLevel() != w.TransmissionRisk:
			t.Errorf("%s[%d]: transmission risk %v, want %d", name, i, pk.TransmissionRiskLevel, w.TransmissionRisk)
		case pk.GetRollingStartIntervalNumber() != w.RollingStartInterval:
			t.Errorf("%s[%d]: rolling start %d, want %d", name, i, pk.GetRollingStartIntervalNumber(), w.RollingStartInterval)
		case pk.GetRollingPeriod() != period:
			t.Errorf("%s[%d]: rolling period %d, want %d", name, i, pk.GetRollingPeriod(), period)
		case (pk.RollingPeriod != nil) != (period != DefaultRollingPeriod):
			t.Errorf("%s[%d]: rolling period %d present = %t", name, i, period, pk.RollingPeriod != nil)
		case int32(pk.GetReportType()) != int32(w.ReportType):
			t.Errorf("%s[%d]: report type %v, want %d", name, i, pk.GetReportType(), w.ReportType)
		case (pk.DaysSinceOnsetOfSymptoms != nil) != w.HasDaysSinceOnset || pk.GetDaysSinceOnsetOfSymptoms() != w.DaysSinceOnset:
			t.Errorf("%s[%d]: days since onset %v, want %d (%t)", name, i, pk.DaysSinceOnsetOfSymptoms, w.DaysSinceOnset, w.HasDaysSinceOnset)
		case int32(pk.GetVariantOfConcern()) != int32(w.Variant):
			t.Errorf("%s[%d]: variant %v, want %d", name, i, pk.GetVariantOfConcern(), w.Variant)
		case len(pk.ProtoReflect().GetUnknown()) != 0:
			t.Errorf("%s[%d]: unknown fields %x", name, i, pk.ProtoReflect().GetUnknown())
		}
	}
}

func TestMarshalBinHeaderLayout(t *testing.T) {
	bin, err := MarshalBin(&File{StartTimestamp: 0x0102030405060708, EndTimestamp: 2, Region: "DE", BatchNum: 1, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		'E', 'K', ' ', 'E', 'x', 'p', 'o', 'r', 't', ' ', 'v', '1', ' ', ' ', ' ', ' ',
		0x09, 8, 7, 6, 5, 4, 3, 2, 1, // 1: fixed64, little-endian
		0x11, 2, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64
		0x1a, 2, 'D', 'E', // 3: string
		0x20, 1, // 4: varint
		0x28, 1, // 5: varint
	}
	if !bytes.Equal(bin, want) {
		t.Fatalf("MarshalBin =\n%x\nwant\n%x", bin, want)
	}
	if len(Header) != 16 {
		t.Fatalf("len(Header) = %d", len(Header))
	}
}

func TestMarshalBinKeyLayout(t *testing.T) {
	data := bytes.Repeat([]byte{0xab}, KeyLength)
	tests := []struct {
		name string
		key  Key
		want []byte // the key's message content after key_data
	}{
		{"defaults", Key{Data: data, RollingStartInterval: 1}, []byte{0x10, 0, 0x18, 1}},
		{"explicit default period", Key{Data: data, RollingStartInterval: 1, RollingPeriod: 144}, []byte{0x10, 0, 0x18, 1}},
		{"short period", Key{Data: data, RollingStartInterval: 1, RollingPeriod: 72}, []byte{0x10, 0, 0x18, 1, 0x20, 72}},
		{"report type", Key{Data: data, ReportType: Revoked}, []byte{0x10, 0, 0x18, 0, 0x28, 5}},
		{"onset zero", Key{Data: data, HasDaysSinceOnset: true}, []byte{0x10, 0, 0x18, 0, 0x30, 0}},
		{"onset -2 zigzag", Key{Data: data, HasDaysSinceOnset: true, DaysSinceOnset: -2}, []byte{0x10, 0, 0x18, 0, 0x30, 3}},
		{"variant", Key{Data: data, Variant: VariantRevoked}, []byte{0x10, 0, 0x18, 0, 0x40, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin, err := MarshalBin(&File{Keys: []Key{tt.key}})
			if err != nil {
				t.Fatal(err)
			}
			keyField := append([]byte{0x0a, KeyLength}, data...)
			want := append([]byte{0x3a, byte(len(keyField) + len(tt.want))}, keyField...)
			want = append(want, tt.want...)
			// Header, start, end, empty region, batch num and size come first.
			got := bin[len(Header)+9+9+2+2+2:]
			if !bytes.Equal(got, want) {
				t.Fatalf("key encodes as\n%x\nwant\n%x", got, want)
			}
			f, err := UnmarshalBin(bin)
			if err != nil {
				t.Fatal(err)
			}
			wantPeriod := tt.key.RollingPeriod
			if wantPeriod == 0 {
				wantPeriod = DefaultRollingPeriod
			}
			if got := f.Keys[0].RollingPeriod; got != wantPeriod {
				t.Errorf("rolling period read back as %d, want %d", got, wantPeriod)
			}
		})
	}
}

func TestMarshalBinSortsWithoutMutating(t *testing.T) {
	f := testFile(7, 500)
	before := make([][]byte, len(f.Keys))
	for i, k := range f.Keys {
		before[i] = k.Data
	}
	bin, err := MarshalBin(f)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range f.Keys {
		if !bytes.Equal(k.Data, before[i]) {
			t.Fatalf("MarshalBin reordered its input at %d", i)
		}
	}
	got, err := UnmarshalBin(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, list := range [][]Key{got.Keys, got.RevisedKeys} {
		if !slices.IsSortedFunc(list, func(a, b Key) int { return bytes.Compare(a.Data, b.Data) }) {
			t.Fatal("keys are not sorted by key bytes")
		}
	}
	if len(got.Keys) != len(f.Keys) || len(got.RevisedKeys) != len(f.RevisedKeys) {
		t.Fatalf("read %d+%d keys, wrote %d+%d", len(got.Keys), len(got.RevisedKeys), len(f.Keys), len(f.RevisedKeys))
	}
}

func TestMarshalBinRejectsInvalid(t *testing.T) {
	good := bytes.Repeat([]byte{1}, KeyLength)
	tests := []struct {
		name string
		f    File
	}{
		{"short key", File{Keys: []Key{{Data: good[:15]}}}},
		{"long revised key", File{RevisedKeys: []Key{{Data: append(slices.Clone(good), 0)}}}},
		{"nil key", File{Keys: []Key{{}}}},
		{"rolling period too long", File{Keys: []Key{{Data: good, RollingPeriod: 145}}}},
		{"negative rolling period", File{Keys: []Key{{Data: good, RollingPeriod: -1}}}},
		{"report type", File{Keys: []Key{{Data: good, ReportType: 6}}}},
		{"variant", File{Keys: []Key{{Data: good, Variant: -1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := MarshalBin(&tt.f); !errors.Is(err, ErrInvalid) {
				t.Fatalf("MarshalBin error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestUnmarshalBin(t *testing.T) {
	f := testFile(8, 20)
	f.SignatureInfos = []SignatureInfo{{"v1", "id"}}
	bin, err := MarshalBin(f)
	if err != nil {
		t.Fatal(err)
	}
	otherAlg := append([]byte(Header), protowire.AppendTag(nil, fSignatureInfos, protowire.BytesType)...)
	otherAlg = protowire.AppendBytes(otherAlg, protowire.AppendString(protowire.AppendTag(nil, fAlgorithm, protowire.BytesType), "1.2.840.10045.4.3.4"))
	noAlg := append([]byte(Header), protowire.AppendTag(nil, fSignatureInfos, protowire.BytesType)...)
	noAlg = protowire.AppendBytes(noAlg, protowire.AppendString(protowire.AppendTag(nil, fKeyID, protowire.BytesType), "id"))
	tests := []struct {
		name    string
		bin     []byte
		wantErr error
	}{
		{"valid", bin, nil},
		{"header only", []byte(Header), nil},
		{"no algorithm", noAlg, nil},
		{"empty", nil, ErrBadHeader},
		{"short header", []byte(Header[:15]), ErrBadHeader},
		{"wrong version", append([]byte("EK Export v2    "), bin[16:]...), ErrBadHeader},
		{"zero padded header", append([]byte("EK Export v1\x00\x00\x00\x00"), bin[16:]...), ErrBadHeader},
		{"truncated protobuf", bin[:len(bin)-3], ErrMalformed},
		{"other algorithm", otherAlg, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := UnmarshalBin(tt.bin)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("UnmarshalBin error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
