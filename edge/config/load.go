package config

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LookupEnv finds an environment variable, like os.LookupEnv. Tests pass
// their own.
type LookupEnv func(name string) (string, bool)

// MaxFileBytes caps a config document; anything larger is refused before
// parsing so a wrong path (a log file, a binary) can't eat memory.
const MaxFileBytes = 8 << 20

// Load reads, expands, decodes, defaults and validates the file at path,
// and checks the files the config reads at start (see ParseChecked).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, data, os.LookupEnv, true)
}

// Parse does what Load does on bytes already read; name is used in errors.
// lookup may be nil (no environment: every ${VAR} without a default is an
// error). Parse does no I/O: files the config names are not looked at, so
// it suits a config bound for other machines (sluice config push).
func Parse(name string, data []byte, lookup LookupEnv) (*Config, error) {
	return parse(name, data, lookup, false)
}

// ParseChecked is Parse, plus what Load checks beyond it: every file the
// config reads at start (auth.jwt.keys[].public_key_file, resolved as
// Config.Resolve says) exists and holds a PEM block. A config that `sluice
// serve` would fail on is refused with the line that names the file.
func ParseChecked(name string, data []byte, lookup LookupEnv) (*Config, error) {
	return parse(name, data, lookup, true)
}

// parse runs every stage and reports every problem at once: an unknown
// field or a value of the wrong type does not hide a bad listen address
// further down. The walker's errors and yaml's type errors leave the
// field at its zero value, so decoding and validation still see the rest;
// a validation error about a field that already has one (or that an
// unknown field's "did you mean" names) is left out, since it only
// repeats it.
func parse(name string, data []byte, lookup LookupEnv, checkFiles bool) (*Config, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	if len(data) > MaxFileBytes {
		return nil, Errors{{File: name, Field: "(file)", Msg: fmt.Sprintf("config is %d bytes; the limit is %d", len(data), MaxFileBytes)}}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(name, data, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 || isNullNode(doc.Content[0]) {
		return nil, Errors{{File: name, Line: 1, Field: "(file)", Msg: "config is empty"}}
	}
	root := doc.Content[0]

	w := walker{file: name, lookup: lookup, pos: map[string]int{}, reported: map[string]bool{}}
	mapping := root.Kind == yaml.MappingNode
	w.walk(root, reflect.TypeOf(Config{}), "")
	if !mapping {
		return nil, w.errs // not a config at all: the rest would be noise
	}
	errs := w.errs

	var cfg Config
	if err := root.Decode(&cfg); err != nil {
		errs = append(errs, w.decodeError(err)...)
	}
	cfg.Source = name
	cfg.applyDefaults()
	verrs := cfg.validate()
	if checkFiles {
		verrs = append(verrs, cfg.checkFiles()...)
	}
	for _, e := range verrs {
		if w.repeats(e.Field) {
			continue
		}
		e.File = name
		e.Line = w.lineOf(e.Field)
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return nil, errs
	}
	return &cfg, nil
}

func isNullNode(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error into a FieldError with its line.
//
// yaml.v3 (3.0.1) reports a parser error ("did not find expected key") at
// the 0-based line of the construct it was parsing when it gave up, or of
// the offending token when that construct starts on the first line: one
// line early either way, and often more (a bad list item names the line
// before the list). Scanner errors ("mapping values are not allowed in
// this context") are right. For a parser error, the line reported is the
// first line from the yaml's one on at which the document, cut off after
// that line, fails with the same message: the parser accepted everything
// before it.
func syntaxError(name string, data []byte, err error) error {
	msg := err.Error()
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		// No line: yaml.v3 leaves it out for the first line (its 0).
		return Errors{{File: name, Line: 1, Field: "(syntax)", Msg: strings.TrimPrefix(msg, "yaml: ")}}
	}
	line, _ := strconv.Atoi(m[1])
	if strings.HasPrefix(m[2], "did not find expected") {
		line = parserErrorLine(data, line, m[2])
	}
	return Errors{{File: name, Line: line, Field: "(syntax)", Msg: m[2]}}
}

// parserErrorLine finds the line of the yaml.v3 parser error problem that
// yaml reported at line reported (see syntaxError). It tries at most 1000
// cut-off points.
func parserErrorLine(data []byte, reported int, problem string) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	end := 0 // bytes in lines[:reported]
	for _, l := range lines[:min(reported, len(lines))] {
		end += len(l)
	}
	// The end of the file counts as its last line that holds something:
	// a "[" never closed is reported there, not on a blank line after it.
	last := len(lines)
	for last > 1 && len(bytes.TrimSpace(lines[last-1])) == 0 {
		last--
	}
	for n := reported + 1; n <= last && n <= reported+1000; n++ {
		end += len(lines[n-1])
		if n == last {
			end = len(data)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data[:end], &doc); err != nil && strings.HasSuffix(err.Error(), ": "+problem) {
			return n
		}
	}
	return min(reported+1, last)
}

// walker checks the node tree against the schema before decoding: it
// expands ${VAR}s in place, rejects unknown fields, pre-checks custom
// scalar types (yaml.v3 drops the line of an UnmarshalYAML error), and
// remembers the line of every field path for validation messages.
type walker struct {
	file   string
	lookup LookupEnv
	pos    map[string]int
	errs   Errors
	// reported holds the field paths that already have an error, and the
	// fields an unknown field's suggestion names: validation errors about
	// them (or inside them) would only repeat it.
	reported map[string]bool
}

var (
	durationType = reflect.TypeOf(Duration(0))
	sizeType     = reflect.TypeOf(ByteSize(0))
	listType     = reflect.TypeOf(StringList(nil))
	wsType       = reflect.TypeOf(WebSocket{})
)

func (w *walker) fail(n *yaml.Node, path, format string, args ...any) {
	w.errs = append(w.errs, FieldError{File: w.file, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)})
	w.reported[path] = true
}

// repeats reports whether a validation error about field only repeats
// one already reported: about the field itself or a field it is part of.
func (w *walker) repeats(field string) bool {
	for field != "" {
		if w.reported[field] {
			return true
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			return false
		}
		field = field[:i]
	}
	return false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		w.fail(n, path, "YAML aliases are not supported in sluice configs")
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && isNullNode(n) {
		return // an empty value: the field keeps its default
	}
	if t == wsType && n.Kind == yaml.ScalarNode && (n.Value == "true" || n.Value == "false") {
		// "websocket: true" is short for "websocket: { enabled: true }".
		k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "enabled", Line: n.Line, Column: n.Column}
		v := *n
		n.Kind, n.Tag, n.Value, n.Style, n.Content = yaml.MappingNode, "!!map", "", 0, []*yaml.Node{k, &v}
	}
	switch {
	case t == listType && n.Kind == yaml.ScalarNode:
		w.scalar(n, path)
	case t == durationType || t == sizeType:
		w.scalar(n, path)
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "want a single value")
			return
		}
		var err error
		if t == durationType {
			var d Duration
			err = d.UnmarshalYAML(n)
		} else {
			var b ByteSize
			err = b.UnmarshalYAML(n)
		}
		if err != nil {
			w.fail(n, path, "%v", err)
			n.Value, n.Tag, n.Style = "0", "", 0 // so Decode reports the rest
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "want a mapping of fields, got %s", kindName(n))
			n.Kind, n.Tag, n.Value, n.Content = yaml.MappingNode, "!!map", "", nil
			return
		}
		w.dropDuplicateKeys(n, path)
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			w.pos[p] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				hint := suggest(k.Value, fields)
				w.fail(k, p, "unknown field%s", hint)
				if hint != "" {
					w.reported[join(path, closest(k.Value, fields))] = true
				}
				continue
			}
			w.walk(v, ft, p)
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "want a mapping, got %s", kindName(n))
			n.Kind, n.Tag, n.Value, n.Content = yaml.MappingNode, "!!map", "", nil
			return
		}
		w.dropDuplicateKeys(n, path)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			w.pos[p] = k.Line
			w.walk(v, t.Elem(), p)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "want a list, got %s", kindName(n))
			n.Kind, n.Tag, n.Value, n.Content = yaml.SequenceNode, "!!seq", "", nil
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.pos[p] = item.Line
			w.walk(item, t.Elem(), p)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "want a single value, got %s", kindName(n))
			n.Kind, n.Tag, n.Value, n.Content = yaml.ScalarNode, "", "", nil
			return
		}
		w.scalar(n, path)
		w.number(n, t, path)
	}
}

// number checks a scalar for a numeric field here, where its path is
// known: yaml.v3's type errors carry only a line, and a line in flow
// style ({ rate: x, burst: y }) holds several fields. It also refuses a
// float for an integer field, which yaml.v3 truncates without a word
// (weight: 0.5 became 0, then the default 1).
func (w *walker) number(n *yaml.Node, t reflect.Type, path string) {
	tag := n.ShortTag()
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if tag != "!!int" {
			w.fail(n, path, "want an integer, got %q", n.Value)
			n.Value, n.Tag, n.Style = "0", "", 0 // so Decode reports the rest
		}
	case reflect.Float32, reflect.Float64:
		if tag != "!!int" && tag != "!!float" {
			w.fail(n, path, "want a number, got %q", n.Value)
			n.Value, n.Tag, n.Style = "0", "", 0
		}
	}
}

// dropDuplicateKeys reports a key given twice in one mapping and removes
// the second: yaml.v3 refuses the duplicate by leaving the whole mapping
// undecoded (at the top, the whole config), which would bury it under
// errors about everything it left out.
func (w *walker) dropDuplicateKeys(n *yaml.Node, path string) {
	first := map[string]int{}
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if line, dup := first[k.Value]; dup {
			w.fail(k, join(path, k.Value), "given twice (first on line %d)", line)
			continue
		}
		first[k.Value] = k.Line
		kept = append(kept, k, n.Content[i+1])
	}
	n.Content = kept
}

// scalar expands ${VAR} in a scalar node. A plain (unquoted) scalar is
// re-typed after expansion, so `max_connections: ${CONNS}` decodes as an
// int; a quoted one stays a string.
func (w *walker) scalar(n *yaml.Node, path string) {
	if !strings.Contains(n.Value, "$") {
		return
	}
	v, err := expand(n.Value, w.lookup)
	if err != nil {
		w.fail(n, path, "%v", err)
		return
	}
	n.Value = v
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		n.Tag = ""
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// yamlFields maps each yaml key of struct t to its field type.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		out[tag] = f.Type
	}
	return out
}

// suggest names the closest known field for a typo ("targts" -> "targets").
func suggest(key string, fields map[string]reflect.Type) string {
	best := closest(key, fields)
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// closest is the known field within edit distance 2 of key, or "".
func closest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for f := range fields {
		if d := editDistance(key, f); d < bestD || (d == bestD && f < best) {
			best, bestD = f, d
		}
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

var typeErrLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// decodeError turns yaml.v3's type errors ("line 7: cannot unmarshal
// !!str `abc` into int") into FieldErrors naming the field on that line.
func (w *walker) decodeError(err error) Errors {
	te, ok := err.(*yaml.TypeError)
	if !ok {
		return Errors{{File: w.file, Line: 1, Field: "(decode)", Msg: err.Error()}}
	}
	byLine := map[int]string{}
	for p, l := range w.pos {
		if cur, ok := byLine[l]; !ok || len(p) > len(cur) {
			byLine[l] = p
		}
	}
	var errs Errors
	for _, m := range te.Errors {
		fe := FieldError{File: w.file, Line: 1, Field: "(decode)", Msg: m}
		if sm := typeErrLineRE.FindStringSubmatch(m); sm != nil {
			fe.Line, _ = strconv.Atoi(sm[1])
			fe.Msg = friendlyTypeError(sm[2])
			if p, ok := byLine[fe.Line]; ok {
				fe.Field = p
				w.reported[p] = true
			}
		}
		errs = append(errs, fe)
	}
	return errs
}

var cannotRE = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (.*)$")

func friendlyTypeError(msg string) string {
	m := cannotRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	want := m[3]
	switch {
	case strings.HasPrefix(want, "int"):
		want = "an integer"
	case want == "bool":
		want = "true or false"
	case want == "string":
		want = "a string"
	}
	return fmt.Sprintf("want %s, got %q", want, m[2])
}

// lineOf finds the line of a field path, or of its nearest ancestor that
// appears in the file (a missing required field points at its parent), or
// else the top of the file (line 1): admin's missing password in a file
// without an admin block.
func (w *walker) lineOf(path string) int {
	for path != "" {
		if l, ok := w.pos[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 1
}

// FieldError is one problem in a config: where and what.
type FieldError struct {
	File  string
	Line  int // 0 when unknown
	Field string
	Msg   string
}

func (e FieldError) Error() string {
	var b bytes.Buffer
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	fmt.Fprintf(&b, ": %s: %s", e.Field, e.Msg)
	return b.String()
}

// Errors is every problem found in one config, in file order.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
