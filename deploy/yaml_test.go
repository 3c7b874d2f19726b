package deploy

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// A YAML reader for the deployment files' test (deploy_test.go), without a
// YAML module: block mappings and sequences, flow collections, quoted and
// plain scalars, literal and folded block scalars, comments, documents,
// anchors, aliases and merge keys (<<). Scalars stay strings. It rejects
// what it does not understand (tabs for indentation, bad indentation,
// unclosed flow collections or quotes, unknown aliases), so a file it reads
// is well-formed for the constructs the deploy files use.

type yamlLine struct {
	n      int // 1-based line number
	indent int
	text   string // without indentation and comment
}

type yamlParser struct {
	lines   []yamlLine
	pos     int
	anchors map[string]any
}

// parseYAML returns the documents of src.
func parseYAML(src string) ([]any, error) {
	var docs []any
	var cur []yamlLine
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		p := &yamlParser{lines: cur, anchors: map[string]any{}}
		v, err := p.block(cur[0].indent)
		if err != nil {
			return err
		}
		if p.pos != len(p.lines) {
			l := p.lines[p.pos]
			return fmt.Errorf("line %d: unexpected indentation", l.n)
		}
		docs = append(docs, v)
		cur = nil
		return nil
	}
	raw := strings.Split(src, "\n")
	for i := 0; i < len(raw); i++ {
		line := raw[i]
		if strings.HasPrefix(line, "---") && strings.TrimSpace(line[3:]) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		body := strings.TrimLeft(line, " ")
		if strings.HasPrefix(body, "\t") {
			return nil, fmt.Errorf("line %d: tab in indentation", i+1)
		}
		text := strings.TrimRight(stripComment(body), " ")
		if text == "" {
			continue
		}
		indent := len(line) - len(body)
		// A block scalar (| or >) takes the following more indented lines
		// verbatim.
		if strings.HasSuffix(text, "|") || strings.HasSuffix(text, ">") || strings.HasSuffix(text, "|-") || strings.HasSuffix(text, ">-") {
			var block []string
			j := i + 1
			for ; j < len(raw); j++ {
				b := raw[j]
				if strings.TrimSpace(b) != "" && len(b)-len(strings.TrimLeft(b, " ")) <= indent {
					break
				}
				block = append(block, strings.TrimSpace(b))
			}
			marker := text[strings.LastIndexAny(text, "|>"):]
			text = strings.TrimSuffix(text, marker) + strconv.Quote(strings.Join(block, "\n"))
			i = j - 1
		}
		cur = append(cur, yamlLine{n: i + 1, indent: indent, text: text})
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return docs, nil
}

// stripComment removes a # comment that is not inside quotes.
func stripComment(s string) string {
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == q {
				q = 0
			} else if c == '\\' && q == '"' {
				i++
			}
		case c == '"' || c == '\'':
			q = c
		case c == '#' && (i == 0 || s[i-1] == ' '):
			return s[:i]
		}
	}
	return s
}

// block parses the block (mapping or sequence) starting at the current
// line, whose lines have the given indentation.
func (p *yamlParser) block(indent int) (any, error) {
	if p.pos >= len(p.lines) {
		return nil, nil
	}
	l := p.lines[p.pos]
	if l.indent != indent {
		return nil, fmt.Errorf("line %d: indentation %d, want %d", l.n, l.indent, indent)
	}
	if l.text == "-" || strings.HasPrefix(l.text, "- ") {
		return p.sequence(indent)
	}
	if _, _, ok := splitKey(l.text); ok {
		return p.mapping(indent, nil)
	}
	p.pos++
	return p.scalarOrFlow(l.text, l.n)
}

func (p *yamlParser) sequence(indent int) (any, error) {
	var out []any
	for p.pos < len(p.lines) {
		l := p.lines[p.pos]
		if l.indent < indent {
			break
		}
		if l.indent > indent || !(l.text == "-" || strings.HasPrefix(l.text, "- ")) {
			return nil, fmt.Errorf("line %d: expected a sequence item", l.n)
		}
		rest := strings.TrimSpace(strings.TrimPrefix(l.text, "-"))
		if rest == "" {
			p.pos++
			v, err := p.nested(indent)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		// "- key: value" starts a mapping whose other keys are indented
		// to the key's column.
		if _, _, ok := splitKey(rest); ok && !strings.HasPrefix(rest, "{") && !strings.HasPrefix(rest, "[") && !strings.HasPrefix(rest, "\"") {
			col := indent + (len(l.text) - len(strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " "))) + 0
			p.lines[p.pos] = yamlLine{n: l.n, indent: col, text: rest}
			v, err := p.mapping(col, nil)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		p.pos++
		v, err := p.scalarOrFlow(rest, l.n)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// nested parses the block more indented than parent that follows, or nil.
func (p *yamlParser) nested(parent int) (any, error) {
	if p.pos >= len(p.lines) || p.lines[p.pos].indent <= parent {
		// A sequence may sit at its key's indentation.
		if p.pos < len(p.lines) && p.lines[p.pos].indent == parent && strings.HasPrefix(p.lines[p.pos].text, "- ") {
			return p.sequence(parent)
		}
		return nil, nil
	}
	return p.block(p.lines[p.pos].indent)
}

func (p *yamlParser) mapping(indent int, into map[string]any) (any, error) {
	out := into
	if out == nil {
		out = map[string]any{}
	}
	merged := map[string]bool{} // keys from <<, which explicit keys override
	for p.pos < len(p.lines) {
		l := p.lines[p.pos]
		if l.indent < indent {
			break
		}
		if l.indent > indent {
			return nil, fmt.Errorf("line %d: unexpected indentation", l.n)
		}
		if strings.HasPrefix(l.text, "- ") {
			break // a sequence at the parent key's indentation ends here
		}
		key, val, ok := splitKey(l.text)
		if !ok {
			return nil, fmt.Errorf("line %d: expected key: value, got %q", l.n, l.text)
		}
		p.pos++
		anchor := ""
		if strings.HasPrefix(val, "&") {
			name, rest, _ := strings.Cut(val, " ")
			anchor, val = name[1:], strings.TrimSpace(rest)
		}
		var v any
		var err error
		if val == "" {
			v, err = p.nested(indent)
		} else {
			v, err = p.scalarOrFlow(val, l.n)
		}
		if err != nil {
			return nil, err
		}
		if anchor != "" {
			p.anchors[anchor] = v
		}
		if key == "<<" {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("line %d: << needs a mapping", l.n)
			}
			for k, mv := range m {
				if _, set := out[k]; !set {
					out[k], merged[k] = mv, true
				}
			}
			continue
		}
		if _, dup := out[key]; dup && !merged[key] {
			return nil, fmt.Errorf("line %d: duplicate key %q", l.n, key)
		}
		out[key], merged[key] = v, false
	}
	return out, nil
}

// splitKey splits "key: value" (or "key:"), the key plain or quoted.
func splitKey(s string) (key, val string, ok bool) {
	if strings.HasPrefix(s, "\"") || strings.HasPrefix(s, "'") {
		q := s[0]
		end := strings.IndexByte(s[1:], q)
		if end < 0 {
			return "", "", false
		}
		rest := s[end+2:]
		if !strings.HasPrefix(rest, ":") {
			return "", "", false
		}
		return s[1 : end+1], strings.TrimSpace(rest[1:]), true
	}
	if strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[") {
		return "", "", false
	}
	i := strings.Index(s, ": ")
	if i < 0 {
		if strings.HasSuffix(s, ":") {
			return s[:len(s)-1], "", true
		}
		return "", "", false
	}
	return s[:i], strings.TrimSpace(s[i+2:]), true
}

// scalarOrFlow parses a value on one line: an alias, a flow collection or
// a scalar.
func (p *yamlParser) scalarOrFlow(s string, n int) (any, error) {
	if strings.HasPrefix(s, "*") {
		v, ok := p.anchors[s[1:]]
		if !ok {
			return nil, fmt.Errorf("line %d: unknown alias %s", n, s)
		}
		return v, nil
	}
	f := &yamlFlow{s: s}
	v, err := f.value()
	if err != nil {
		return nil, fmt.Errorf("line %d: %v", n, err)
	}
	f.space()
	if f.i != len(f.s) {
		return nil, fmt.Errorf("line %d: trailing %q", n, f.s[f.i:])
	}
	return v, nil
}

type yamlFlow struct {
	s     string
	i     int
	depth int // of flow collections
}

func (f *yamlFlow) space() {
	for f.i < len(f.s) && f.s[f.i] == ' ' {
		f.i++
	}
}

func (f *yamlFlow) value() (any, error) {
	f.space()
	if f.i >= len(f.s) {
		return "", nil
	}
	switch f.s[f.i] {
	case '{':
		f.i++
		f.depth++
		defer func() { f.depth-- }()
		m := map[string]any{}
		for {
			f.space()
			if f.i < len(f.s) && f.s[f.i] == '}' {
				f.i++
				return m, nil
			}
			k, err := f.scalar()
			if err != nil {
				return nil, err
			}
			if f.i >= len(f.s) || f.s[f.i] != ':' {
				return nil, fmt.Errorf("flow mapping: expected : after %q", k)
			}
			f.i++
			v, err := f.value()
			if err != nil {
				return nil, err
			}
			m[k] = v
			f.space()
			if f.i < len(f.s) && f.s[f.i] == ',' {
				f.i++
			} else if f.i >= len(f.s) || f.s[f.i] != '}' {
				return nil, fmt.Errorf("flow mapping not closed")
			}
		}
	case '[':
		f.i++
		f.depth++
		defer func() { f.depth-- }()
		var seq []any
		for {
			f.space()
			if f.i < len(f.s) && f.s[f.i] == ']' {
				f.i++
				return seq, nil
			}
			v, err := f.value()
			if err != nil {
				return nil, err
			}
			seq = append(seq, v)
			f.space()
			if f.i < len(f.s) && f.s[f.i] == ',' {
				f.i++
			} else if f.i >= len(f.s) || f.s[f.i] != ']' {
				return nil, fmt.Errorf("flow sequence not closed")
			}
		}
	}
	return f.scalar()
}

// scalar reads a quoted scalar, or a plain one: to the end of the line, or
// inside a flow collection to the next , ] } or ": ".
func (f *yamlFlow) scalar() (string, error) {
	f.space()
	if f.i < len(f.s) && (f.s[f.i] == '"' || f.s[f.i] == '\'') {
		q := f.s[f.i]
		j := f.i + 1
		for ; j < len(f.s); j++ {
			if f.s[j] == '\\' && q == '"' {
				j++
				continue
			}
			if f.s[j] == q {
				break
			}
		}
		if j >= len(f.s) {
			return "", fmt.Errorf("unclosed quote")
		}
		raw := f.s[f.i : j+1]
		f.i = j + 1
		if q == '\'' {
			return strings.ReplaceAll(raw[1:len(raw)-1], "''", "'"), nil
		}
		return strconv.Unquote(raw)
	}
	start := f.i
	for f.i < len(f.s) && f.depth > 0 {
		c := f.s[f.i]
		if c == ',' || c == ']' || c == '}' || c == ':' && (f.i+1 >= len(f.s) || f.s[f.i+1] == ' ') {
			break
		}
		f.i++
	}
	if f.depth == 0 {
		f.i = len(f.s)
	}
	return strings.TrimSpace(f.s[start:f.i]), nil
}

func TestParseYAML(t *testing.T) {
	docs, err := parseYAML(`# c
a: 1
b:
  c: "x # not a comment"
  d: [1, "two", {e: f}]
list:
  - name: n1
    args: ["serve", "--roles", "log"]
  - plain
base: &base
  k: v
  j: w
derived:
  <<: *base
  k: override
text: |
  line one
  line two
---
{x: y}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 {
		t.Fatalf("%d documents", len(docs))
	}
	m := docs[0].(map[string]any)
	if m["a"] != "1" || m["b"].(map[string]any)["c"] != "x # not a comment" {
		t.Errorf("scalars: %v", m)
	}
	d := m["b"].(map[string]any)["d"].([]any)
	if len(d) != 3 || d[1] != "two" || d[2].(map[string]any)["e"] != "f" {
		t.Errorf("flow: %#v", d)
	}
	list := m["list"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["args"].([]any)[2] != "log" || list[1] != "plain" {
		t.Errorf("sequence: %#v", list)
	}
	der := m["derived"].(map[string]any)
	if der["k"] != "override" || der["j"] != "w" {
		t.Errorf("merge: %#v", der)
	}
	if m["text"] != "line one\nline two" {
		t.Errorf("block scalar: %q", m["text"])
	}
	for _, bad := range []string{"a: [1, 2", "a:\n\tb: 1", "a: *nope", "a: 1\na: 2", "a: \"x"} {
		if _, err := parseYAML(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
