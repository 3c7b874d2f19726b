package export

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"fmt"
	"hash"
	"io"
	"math/big"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/candor-en/candor/api/export/exportpb"
)

const (
	// MaxBinSize bounds the export.bin that Read decompresses, so a hostile
	// zip cannot exhaust memory. A file of Candor's largest batch (~500k
	// keys) is about 20 MB.
	MaxBinSize = 128 << 20

	// MaxSigSize bounds the export.sig that Read decompresses.
	MaxSigSize = 1 << 20
)

// Compression levels of export files. Every phone downloads every file, so
// Write compresses for size: the key bytes are random, but the fields
// around them repeat, and BestCompression finds more of those repeats than
// the archive/zip default. Files written before were compressed at
// LegacyCompressionLevel; WriteLevel at that level rewrites them byte for
// byte.
const (
	CompressionLevel       = flate.BestCompression
	LegacyCompressionLevel = flate.BestSpeed
)

// Signer signs export files with one key.
type Signer interface {
	// Info names the key; it is written into export.bin and export.sig.
	Info() SignatureInfo
	// Sign returns an ASN.1 DER ECDSA P-256 signature over SHA-256 of data.
	Sign(data []byte) ([]byte, error)
}

// DataSigner is the signing half of a Signer. A tink.Signer of an ECDSA_P256
// key with DER encoding and RAW output prefix is one.
type DataSigner interface {
	Sign(data []byte) ([]byte, error)
}

// NewSigner returns a Signer that signs with s under the name info.
func NewSigner(info SignatureInfo, s DataSigner) Signer {
	return namedSigner{info: info, DataSigner: s}
}

type namedSigner struct {
	info SignatureInfo
	DataSigner
}

func (s namedSigner) Info() SignatureInfo { return s.info }

// NewECDSASigner returns a Signer that signs with a crypto/ecdsa P-256 key,
// for tests and tools that do not keep keys in Tink.
func NewECDSASigner(info SignatureInfo, key *ecdsa.PrivateKey) Signer {
	return NewSigner(info, ecdsaSigner{key})
}

type ecdsaSigner struct{ key *ecdsa.PrivateKey }

func (s ecdsaSigner) Sign(data []byte) ([]byte, error) {
	if s.key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("ecdsa signer: curve %s, want P-256", s.key.Curve.Params().Name)
	}
	digest := sha256.Sum256(data)
	return ecdsa.SignASN1(rand.Reader, s.key, digest[:])
}

// Signature is one entry of export.sig.
type Signature struct {
	Info                SignatureInfo
	BatchNum, BatchSize int32
	// Sig is the ASN.1 DER ECDSA signature over SHA-256 of export.bin.
	Sig []byte
}

// Written describes an export file that Write produced: what the
// transparency log records about it.
type Written struct {
	// BinSHA256 is the SHA-256 of export.bin, the signed content.
	BinSHA256 [sha256.Size]byte
	// ZipSHA256 and Size describe the zip file as written.
	ZipSHA256 [sha256.Size]byte
	Size      int64
	// KeyCount and RevisedCount are the numbers of keys and revised keys.
	KeyCount, RevisedCount int
}

// Write writes f as a signed export zip to w: export.bin, then export.sig
// with one signature per signer, in signer order. f.SignatureInfos must be
// empty, in which case the signers' infos are used, or equal to them. f is
// not modified. On error, w may hold a partial file; write to a temporary
// file and rename it to publish atomically.
func Write(w io.Writer, f *File, signers []Signer) (Written, error) {
	return WriteLevel(w, f, signers, CompressionLevel)
}

// WriteLevel is Write with the entries deflated at level, a
// compress/flate level; regenerating a file needs the level it was
// written at.
func WriteLevel(w io.Writer, f *File, signers []Signer, level int) (Written, error) {
	if level < flate.HuffmanOnly || level > flate.BestCompression {
		return Written{}, fmt.Errorf("export file: %w: compression level %d", ErrInvalid, level)
	}
	if len(signers) == 0 {
		return Written{}, fmt.Errorf("export file: %w: no signers", ErrNoSignature)
	}
	infos := make([]SignatureInfo, len(signers))
	for i, s := range signers {
		infos[i] = s.Info()
	}
	if len(f.SignatureInfos) != 0 && !slices.Equal(f.SignatureInfos, infos) {
		return Written{}, fmt.Errorf("export file: %w: file names signing keys %v, signers are %v", ErrInvalid, f.SignatureInfos, infos)
	}
	signed := *f
	signed.SignatureInfos = infos
	bin, err := MarshalBin(&signed)
	if err != nil {
		return Written{}, fmt.Errorf("export file: %w", err)
	}

	list := &exportpb.TEKSignatureList{}
	for i, s := range signers {
		sig, err := s.Sign(bin)
		if err != nil {
			return Written{}, fmt.Errorf("export file: sign with %s: %w", infos[i], err)
		}
		// A Signer configured for IEEE P1363 output or another key type
		// would produce files no phone accepts; catch it here.
		if !isDERSignature(sig) {
			return Written{}, fmt.Errorf("export file: %w: signer %s did not return an ASN.1 DER ECDSA signature", ErrBadSignature, infos[i])
		}
		list.Signatures = append(list.Signatures, &exportpb.TEKSignature{
			SignatureInfo: signatureInfoToProto(infos[i]),
			BatchNum:      proto.Int32(f.BatchNum),
			BatchSize:     proto.Int32(f.BatchSize),
			Signature:     sig,
		})
	}
	sigBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(list)
	if err != nil {
		return Written{}, fmt.Errorf("export file: encode %s: %w", SigEntry, err)
	}

	hw := &hashingWriter{w: w, h: sha256.New()}
	zw := zip.NewWriter(hw)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, level)
	})
	// The entries' time is the end of the key window, so that writing the
	// same File twice gives the same zip apart from the signatures.
	modified := time.Unix(int64(f.EndTimestamp), 0).UTC()
	for _, e := range []struct {
		name string
		data []byte
	}{{BinEntry, bin}, {SigEntry, sigBytes}} {
		ew, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: modified})
		if err != nil {
			return Written{}, fmt.Errorf("export file: create %s: %w", e.name, err)
		}
		if _, err := ew.Write(e.data); err != nil {
			return Written{}, fmt.Errorf("export file: write %s: %w", e.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return Written{}, fmt.Errorf("export file: finish zip: %w", err)
	}
	out := Written{
		BinSHA256:    sha256.Sum256(bin),
		Size:         hw.n,
		KeyCount:     len(f.Keys),
		RevisedCount: len(f.RevisedKeys),
	}
	hw.h.Sum(out.ZipSHA256[:0])
	return out, nil
}

func signatureInfoToProto(si SignatureInfo) *exportpb.SignatureInfo {
	return &exportpb.SignatureInfo{
		VerificationKeyVersion: proto.String(si.KeyVersion),
		VerificationKeyId:      proto.String(si.KeyID),
		SignatureAlgorithm:     proto.String(SignatureAlgorithm),
	}
}

// isDERSignature reports whether sig is exactly one DER SEQUENCE of two
// positive INTEGERs, the X9.62 form phones verify.
func isDERSignature(sig []byte) bool {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	return err == nil && len(rest) == 0 && rs.R.Sign() > 0 && rs.S.Sign() > 0
}

// hashingWriter passes writes on to w while hashing and counting them.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// Read reads an export zip of size bytes from r. It returns the decoded
// File, the raw export.bin (what the signatures cover; pass it to Verify)
// and the signatures of export.sig. It does not verify the signatures.
func Read(r io.ReaderAt, size int64) (*File, []byte, []Signature, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export file: %w: %w", ErrNotZip, err)
	}
	if err := checkEntries(zr.File); err != nil {
		return nil, nil, nil, fmt.Errorf("export file: %w", err)
	}
	bin, err := readEntry(zr.File[0], MaxBinSize)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export file: %w", err)
	}
	sigBytes, err := readEntry(zr.File[1], MaxSigSize)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export file: %w", err)
	}
	f, err := UnmarshalBin(bin)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export file: %w", err)
	}
	sigs, err := unmarshalSig(sigBytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export file: %w", err)
	}
	return f, bin, sigs, nil
}

// checkEntries requires exactly export.bin then export.sig.
func checkEntries(files []*zip.File) error {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	for _, want := range []string{BinEntry, SigEntry} {
		if !slices.Contains(names, want) {
			return fmt.Errorf("%w: no %s in zip (entries: %s)", ErrMissingEntry, want, strings.Join(names, ", "))
		}
	}
	if !slices.Equal(names, []string{BinEntry, SigEntry}) {
		return fmt.Errorf("%w: entries are %s", ErrEntryOrder, strings.Join(names, ", "))
	}
	return nil
}

// readEntry decompresses a zip entry of at most limit bytes.
func readEntry(zf *zip.File, limit int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, zf.Name, zf.UncompressedSize64, limit)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrNotZip, zf.Name, err)
	}
	defer rc.Close()
	// The declared size only sizes the buffer, at most what the compressed
	// size can expand to (deflate's limit is about 1032:1); the limit is
	// enforced on what is actually read, and archive/zip checks the size
	// and CRC at the end.
	hint := min(zf.UncompressedSize64, zf.CompressedSize64*1032+1024)
	buf := bytes.NewBuffer(make([]byte, 0, hint+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(rc, limit+1)); err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrNotZip, zf.Name, err)
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("%w: %s exceeds %d bytes", ErrTooLarge, zf.Name, limit)
	}
	return buf.Bytes(), nil
}

// unmarshalSig decodes export.sig.
func unmarshalSig(b []byte) ([]Signature, error) {
	var list exportpb.TEKSignatureList
	if err := proto.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", SigEntry, ErrMalformed, err)
	}
	sigs := make([]Signature, 0, len(list.GetSignatures()))
	for _, s := range list.GetSignatures() {
		info, err := signatureInfoFromProto(s.GetSignatureInfo())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", SigEntry, err)
		}
		sigs = append(sigs, Signature{
			Info:      info,
			BatchNum:  s.GetBatchNum(),
			BatchSize: s.GetBatchSize(),
			Sig:       s.GetSignature(),
		})
	}
	return sigs, nil
}

// Verify checks the signatures of export.bin, as a phone would: signatures by
// keys missing from keys are skipped, every other one must verify, and at
// least one must. It fails with ErrNoSignature if sigs is empty, with
// ErrUnknownKey (naming the keys) if no signature is by a known key, and
// with ErrBadSignature if a known key's signature does not verify.
func Verify(bin []byte, sigs []Signature, keys map[SignatureInfo]*ecdsa.PublicKey) error {
	if len(sigs) == 0 {
		return fmt.Errorf("export signature: %w", ErrNoSignature)
	}
	digest := sha256.Sum256(bin)
	var unknown []string
	for _, s := range sigs {
		pub, ok := keys[s.Info]
		if !ok || pub == nil {
			unknown = append(unknown, s.Info.String())
			continue
		}
		if !ecdsa.VerifyASN1(pub, digest[:], s.Sig) {
			return fmt.Errorf("export signature: %w: by key %s", ErrBadSignature, s.Info)
		}
	}
	if len(unknown) == len(sigs) {
		return fmt.Errorf("export signature: %w: signed by %s", ErrUnknownKey, strings.Join(unknown, ", "))
	}
	return nil
}
