package account

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are the argon2id cost parameters of new password hashes.
// Stored hashes carry their own parameters, so raising them affects only
// passwords set afterwards.
type PasswordParams struct {
	// Memory in KiB, Time (iterations) and Threads.
	Memory  uint32
	Time    uint32
	Threads uint8
}

// DefaultPasswordParams returns the default costs, which follow OWASP's
// argon2id guidance (at least 19 MiB, 2 iterations): 64 MiB, 2 iterations,
// 2 lanes, about 100 ms on one core.
func DefaultPasswordParams() PasswordParams {
	return PasswordParams{Memory: 64 * 1024, Time: 2, Threads: 2}
}

// Password length limits, in characters.
const (
	MinPasswordLength = 12
	MaxPasswordLength = 256
)

const (
	saltLen = 16
	keyLen  = 32
)

// HashPassword returns the argon2id hash of password with a random salt, in
// PHC string format: $argon2id$v=19$m=…,t=…,p=…$salt$hash.
func HashPassword(password string, p PasswordParams) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(rand.Reader, salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// errBadHash is a stored hash that cannot be parsed.
var errBadHash = errors.New("account: malformed password hash")

// CheckPassword reports whether password matches the PHC-format argon2id
// hash, in constant time with respect to the password.
func CheckPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var p PasswordParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return false, errBadHash
	}
	// Refuse absurd costs from a tampered store rather than exhaust memory.
	if p.Memory == 0 || p.Memory > 1<<20 || p.Time == 0 || p.Time > 16 || p.Threads == 0 {
		return false, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// PasswordError is a new password that the policy refuses; its message is
// meant for the user.
type PasswordError struct{ Msg string }

func (e *PasswordError) Error() string { return e.Msg }

// CheckPasswordPolicy checks a new password: 12 to 256 characters, not the
// email, not one character repeated, not a well-known password.
func CheckPasswordPolicy(password, email string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return &PasswordError{"The password contains invalid characters."}
	case n < MinPasswordLength:
		return &PasswordError{fmt.Sprintf("Use at least %d characters; a few unrelated words make a good password.", MinPasswordLength)}
	case n > MaxPasswordLength:
		return &PasswordError{fmt.Sprintf("Use at most %d characters.", MaxPasswordLength)}
	case containsLocalPart(password, email):
		return &PasswordError{"The password must not contain your email address."}
	case strings.Count(password, password[:1]) == len(password):
		return &PasswordError{"The password must not be one character repeated."}
	}
	if commonPassword(strings.ToLower(password)) {
		return &PasswordError{"This password is too common; choose another."}
	}
	return nil
}

// containsLocalPart reports whether password contains the part of email
// before the @, when that part has at least four characters.
func containsLocalPart(password, email string) bool {
	local, _, _ := strings.Cut(strings.ToLower(email), "@")
	return len(local) >= 4 && strings.Contains(strings.ToLower(password), local)
}

// commonPassword reports whether p (in lower case) is a well-known
// password of the allowed length.
func commonPassword(p string) bool {
	switch p {
	case "123456789012", "1234567890123", "qwertyuiopas", "passwordpassword",
		"password1234", "password12345", "iloveyou1234", "qwerty123456",
		"123456123456", "111111111111", "abcdefghijkl", "abc123abc123",
		"changemenow!", "administrator", "letmein12345", "welcome12345":
		return true
	}
	return false
}

// oneTimeAlphabet avoids look-alike characters (0/O, 1/l/I).
const oneTimeAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// NewOneTimePassword returns a random password of four groups of five
// characters (about 98 bits), to be changed at first sign-in.
func NewOneTimePassword(r io.Reader) (string, error) {
	var sb strings.Builder
	buf := make([]byte, 1)
	for i := 0; i < 20; {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("one-time password: %w", err)
		}
		// Rejection sampling: no modulo bias.
		if int(buf[0]) >= 256-256%len(oneTimeAlphabet) {
			continue
		}
		if i > 0 && i%5 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(oneTimeAlphabet[int(buf[0])%len(oneTimeAlphabet)])
		i++
	}
	return sb.String(), nil
}
