package logentry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrNotCanonical is returned by Unmarshal for an entry whose bytes are not
// the canonical encoding of what they hold.
var ErrNotCanonical = errors.New("logentry: not in canonical form")

// maxDepth bounds the nesting of canonicalized JSON.
const maxDepth = 32

// Canonicalize returns the canonical encoding of the single JSON value in b:
// object members sorted by the UTF-16 code units of their keys (RFC 8785),
// no insignificant whitespace, strings escaped only where JSON requires it
// (quote, backslash and control characters; \b \t \n \f \r, otherwise
// \u00xx), integers in shortest decimal form. It refuses duplicate object
// keys, invalid UTF-8, non-integer numbers and integers beyond ±(2^53−1),
// which RFC 8785 cannot represent exactly.
func Canonicalize(b []byte) ([]byte, error) {
	// The decoder would quietly replace invalid UTF-8.
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("logentry: canonical JSON: not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out bytes.Buffer
	if err := canonicalValue(dec, &out, 0); err != nil {
		return nil, fmt.Errorf("logentry: canonical JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("logentry: canonical JSON: trailing data after the value")
	}
	return out.Bytes(), nil
}

func canonicalValue(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return canonicalObject(dec, out, depth)
		case '[':
			out.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					out.WriteByte(',')
				}
				if err := canonicalValue(dec, out, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ']'
				return err
			}
			out.WriteByte(']')
			return nil
		}
		return fmt.Errorf("unexpected %v", t)
	case string:
		return writeString(out, t)
	case json.Number:
		return writeInteger(out, t)
	case bool:
		out.WriteString(strconv.FormatBool(t))
		return nil
	case nil:
		out.WriteString("null")
		return nil
	}
	return fmt.Errorf("unexpected token %v", tok)
}

func canonicalObject(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	type member struct {
		key   string
		value []byte
	}
	var members []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("object key %v is not a string", tok)
		}
		if seen[key] {
			return fmt.Errorf("duplicate object key %q", key)
		}
		seen[key] = true
		var v bytes.Buffer
		if err := canonicalValue(dec, &v, depth+1); err != nil {
			return err
		}
		members = append(members, member{key, v.Bytes()})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return err
	}
	slices.SortFunc(members, func(a, b member) int { return compareUTF16(a.key, b.key) })
	out.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			out.WriteByte(',')
		}
		if err := writeString(out, m.key); err != nil {
			return err
		}
		out.WriteByte(':')
		out.Write(m.value)
	}
	out.WriteByte('}')
	return nil
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785 sorts
// object keys.
func compareUTF16(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

// writeString writes s as a JSON string with RFC 8785's minimal escaping.
func writeString(out *bytes.Buffer, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("string is not valid UTF-8")
	}
	const hex = "0123456789abcdef"
	out.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			out.WriteString(`\"`)
		case c == '\\':
			out.WriteString(`\\`)
		case c == '\b':
			out.WriteString(`\b`)
		case c == '\t':
			out.WriteString(`\t`)
		case c == '\n':
			out.WriteString(`\n`)
		case c == '\f':
			out.WriteString(`\f`)
		case c == '\r':
			out.WriteString(`\r`)
		case c < 0x20:
			out.WriteString(`\u00`)
			out.WriteByte(hex[c>>4])
			out.WriteByte(hex[c&0xf])
		default:
			out.WriteByte(c)
		}
	}
	out.WriteByte('"')
	return nil
}

// maxSafeInteger is the largest integer RFC 8785 (IEEE 754 doubles)
// represents exactly.
const maxSafeInteger = 1<<53 - 1

func writeInteger(out *bytes.Buffer, n json.Number) error {
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return fmt.Errorf("number %s is not an integer", n)
	}
	if v > maxSafeInteger || v < -maxSafeInteger {
		return fmt.Errorf("integer %s is beyond ±(2^53-1)", n)
	}
	out.WriteString(strconv.FormatInt(v, 10))
	return nil
}
