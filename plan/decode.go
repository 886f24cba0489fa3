package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid is matched (errors.Is) by every *Error: the text is not a
// valid configuration or plan. The mount maps it to EINVAL.
var ErrInvalid = errors.New("invalid configuration")

// Error is a problem with a configuration or plan document: where it is
// (the field's path and, when parsed from text, its line and column) and
// what is wrong.
type Error struct {
	// Path names the field, e.g. "plans.home.retention.keep_daily" or
	// "plans.home.sources[1]"; empty for the document as a whole.
	Path string
	// Line and Column (1-based; the column counts characters) locate the
	// problem in the text; 0 when not parsed from text.
	Line, Column int
	Msg          string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d, column %d: ", e.Line, e.Column)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// node is one JSON value of a document with the offset of its first byte.
// The standard decoder reports neither positions nor the path of an
// unknown field, so documents are first read into nodes with
// json.Decoder.Token and then decoded by hand (decodeValue).
type node struct {
	off     int
	kind    byte // '{' object, '[' array, 's' string, 'n' number, 'b' bool, '0' null
	text    string
	b       bool
	members []member // objects, in document order
	elems   []*node  // arrays
}

type member struct {
	key    string
	keyOff int
	val    *node
}

// document is a parsed text: the root node, and the offset of every path
// seen, so that errors found after decoding can still be placed.
type document struct {
	data []byte
	root *node
	pos  map[string]int
}

// parseDocument reads data, which must hold exactly one JSON object.
func parseDocument(data []byte) (*document, error) {
	doc := &document{data: data, pos: make(map[string]int)}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, doc.errAt(len(data), "", "the document is empty; want a JSON object")
	}
	// The decoder's own syntax errors count their offset from different
	// origins (the document, or the start of the current value); a
	// whole-document scan first gives one origin.
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		var se *json.SyntaxError
		if !errors.As(err, &se) {
			return nil, doc.errAt(0, "", "syntax error: "+err.Error())
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(se.Error(), "unexpected end") {
			return nil, doc.errAt(len(data), "", "syntax error: unexpected end of input")
		}
		return nil, doc.errAt(int(se.Offset)-1, "", "syntax error: "+se.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	p := &tokenReader{doc: doc, dec: dec}
	root, err := p.value()
	if err != nil {
		return nil, err
	}
	if root.kind != '{' {
		return nil, doc.errAt(root.off, "", "want a JSON object, got "+kindName(root.kind))
	}
	if end := skipSpace(data, int(dec.InputOffset())); end < len(data) {
		return nil, doc.errAt(end, "", "unexpected text after the end of the JSON object")
	}
	doc.root = root
	return doc, nil
}

type tokenReader struct {
	doc *document
	dec *json.Decoder
}

// next returns the next token and the offset of its first byte.
func (p *tokenReader) next() (json.Token, int, error) {
	off := skipSeparators(p.doc.data, int(p.dec.InputOffset()))
	tok, err := p.dec.Token()
	if err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return nil, 0, p.doc.errAt(int(se.Offset), "", "syntax error: "+strings.TrimPrefix(se.Error(), "json: "))
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil, 0, p.doc.errAt(len(p.doc.data), "", "syntax error: unexpected end of input")
		default:
			return nil, 0, p.doc.errAt(off, "", "syntax error: "+err.Error())
		}
	}
	return tok, off, nil
}

func (p *tokenReader) value() (*node, error) {
	tok, off, err := p.next()
	if err != nil {
		return nil, err
	}
	return p.valueFrom(tok, off)
}

func (p *tokenReader) valueFrom(tok json.Token, off int) (*node, error) {
	n := &node{off: off}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n.kind = '{'
			seen := make(map[string]bool)
			for p.dec.More() {
				ktok, koff, err := p.next()
				if err != nil {
					return nil, err
				}
				key, _ := ktok.(string)
				if seen[key] {
					return nil, p.doc.errAt(koff, "", fmt.Sprintf("field %q appears twice in one object", key))
				}
				seen[key] = true
				v, err := p.value()
				if err != nil {
					return nil, err
				}
				n.members = append(n.members, member{key: key, keyOff: koff, val: v})
			}
		case '[':
			n.kind = '['
			for p.dec.More() {
				v, err := p.value()
				if err != nil {
					return nil, err
				}
				n.elems = append(n.elems, v)
			}
		}
		if _, _, err := p.next(); err != nil { // the closing delimiter
			return nil, err
		}
	case string:
		n.kind, n.text = 's', t
	case json.Number:
		n.kind, n.text = 'n', string(t)
	case bool:
		n.kind, n.b = 'b', t
	case nil:
		n.kind = '0'
	}
	return n, nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipSeparators skips what json.Decoder may not have consumed yet
// before the next token: white space, ':' and ','.
func skipSeparators(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r', ':', ',':
			i++
		default:
			return i
		}
	}
	return i
}

// lineCol turns a byte offset into a 1-based line and column; the column
// counts characters, as editors do.
func lineCol(data []byte, off int) (line, col int) {
	off = max(0, min(off, len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}

func (d *document) errAt(off int, path, msg string) *Error {
	line, col := lineCol(d.data, off)
	return &Error{Path: path, Line: line, Column: col, Msg: msg}
}

// locate fills in the line and column of an error found after decoding,
// from the position of its path or, for a field that is missing, of the
// nearest enclosing one.
func (d *document) locate(err error) error {
	var e *Error
	if !errors.As(err, &e) || e.Line > 0 {
		return err
	}
	for p := e.Path; ; p = parentPath(p) {
		if off, ok := d.pos[p]; ok {
			e.Line, e.Column = lineCol(d.data, off)
			return e
		}
		if p == "" {
			return e
		}
	}
}

// parentPath strips the last element of a path.
func parentPath(p string) string {
	depth := 0
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case ']':
			depth++
		case '[':
			depth--
			if depth == 0 {
				return p[:i]
			}
		case '.':
			if depth == 0 {
				return p[:i]
			}
		}
	}
	return ""
}

// joinKey appends an object key to a path: a.b, or a["odd key"] for keys
// that are not plain words.
func joinKey(path, key string) string {
	if !plainKey(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func joinIndex(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if !(unicode.IsLetter(c) || unicode.IsDigit(c) || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func kindName(k byte) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 's':
		return "a string"
	case 'n':
		return "a number"
	case 'b':
		return "true or false"
	}
	return "null"
}

// decodeValue stores n into v, strictly: unknown fields, wrong types,
// fractions where whole numbers belong and null are errors naming the
// path. It handles the kinds the configuration types use: structs (by
// their json tags), maps with string keys, slices, strings, ints, bools.
func (d *document) decodeValue(n *node, v reflect.Value, path string) error {
	d.pos[path] = n.off
	want := func(what string) error {
		if n.kind == '0' {
			return d.errAt(n.off, path, "null is not allowed here; leave the field out instead")
		}
		return d.errAt(n.off, path, "want "+what+", got "+kindName(n.kind))
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.kind != '{' {
			return want("an object")
		}
		fields := jsonFields(v.Type())
		for _, m := range n.members {
			p := joinKey(path, m.key)
			i, ok := fields[m.key]
			if !ok {
				msg := "unknown field"
				if s := suggest(m.key, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				return d.errAt(m.keyOff, p, msg)
			}
			if err := d.decodeValue(m.val, v.Field(i), p); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.kind != '{' {
			return want("an object")
		}
		if v.IsNil() && len(n.members) > 0 { // {} stays nil, as Marshal leaves it out
			v.Set(reflect.MakeMapWithSize(v.Type(), len(n.members)))
		}
		for _, m := range n.members {
			p := joinKey(path, m.key)
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := d.decodeValue(m.val, elem, p); err != nil {
				return err
			}
			d.pos[p] = m.keyOff // errors about an entry point at its name
			v.SetMapIndex(reflect.ValueOf(m.key), elem)
		}
	case reflect.Slice:
		if n.kind != '[' {
			return want("an array")
		}
		if len(n.elems) == 0 {
			v.SetZero() // [] is nil, as Marshal leaves it out
			return nil
		}
		s := reflect.MakeSlice(v.Type(), len(n.elems), len(n.elems))
		for i, e := range n.elems {
			if err := d.decodeValue(e, s.Index(i), joinIndex(path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.String:
		if n.kind != 's' {
			return want("a string")
		}
		v.SetString(n.text)
	case reflect.Bool:
		if n.kind != 'b' {
			return want("true or false")
		}
		v.SetBool(n.b)
	case reflect.Int:
		if n.kind != 'n' {
			return want("a whole number")
		}
		i, err := strconv.ParseInt(n.text, 10, 0)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return d.errAt(n.off, path, fmt.Sprintf("%s is out of range", n.text))
			}
			return d.errAt(n.off, path, fmt.Sprintf("want a whole number, got %s", n.text))
		}
		v.SetInt(i)
	default:
		panic("plan: cannot decode into " + v.Type().String())
	}
	return nil
}

// jsonFields maps the json names of t's fields to their indexes.
func jsonFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = i
	}
	return m
}

// suggest returns the known field closest to a misspelt one, if any is
// close enough to be what was meant.
func suggest(key string, fields map[string]int) string {
	best, bestDist := "", 3
	for f := range fields {
		if d := editDistance(strings.ToLower(key), f); d < bestDist || d == bestDist && best != "" && f < best {
			best, bestDist = f, d
		}
	}
	if bestDist >= 3 {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
