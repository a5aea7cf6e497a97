package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// refMembers is the reference scanMembers is fuzzed against: it walks
// data with encoding/json's own tokenizer, so names are unescaped exactly
// as golang-jwt's json.Unmarshal unescapes them. It reports a duplicate
// member name in any object, a top-level "crit" member, and how deeply
// containers nest.
func refMembers(data []byte) (dup, crit bool, depth int) {
	type frame struct {
		obj, wantKey bool
		keys         map[string]bool
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return dup, crit, depth
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if top != nil && top.obj {
					top.wantKey = true
				}
				stack = append(stack, &frame{obj: d == '{', wantKey: true, keys: map[string]bool{}})
				depth = max(depth, len(stack))
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top == nil || !top.obj {
			continue
		}
		if top.wantKey {
			k := tok.(string)
			dup = dup || top.keys[k]
			crit = crit || (len(stack) == 1 && k == "crit")
			top.keys[k], top.wantKey = true, false
		} else {
			top.wantKey = true
		}
	}
}

// FuzzScanMembers: on any input scanMembers never panics; on a JSON
// object encoding/json accepts (valid UTF-8, nested at most maxJSONDepth)
// it finds a duplicate name exactly when encoding/json's tokenizer sees
// one (RFC 7519 section 4, RFC 7515 section 4), and a top-level crit
// exactly when there is one (RFC 7515 section 4.1.11); on other JSON
// values it refuses.
func FuzzScanMembers(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"exp":1,"e\u0078p":2}`, `{"\ud800":1,"\udfff":2}`,
		`{"\ud83d\ude00":1,"\ufffd":2}`, `{"a":{"b":1,"b":2}}`, `{"a":[{"b":1},{"b":2,"b":3}]}`,
		`{"crit":["x"],"x":1}`, `{"\u0063rit":[]}`, `{"a":{"crit":1}}`, `[1,2]`, `"x"`, `{"a":1}x`,
		`{"a":"\"\\\/\b\f\n\r\t"}`, `{"a\"":1,"a\u0022":2}`, `{ "a" : [ true , false , null , -1.5e+3 ] }`,
		`{"a":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		crit, err := scanMembers(data)
		if !json.Valid(data) || !utf8.Valid(data) {
			return
		}
		dup, refCrit, depth := refMembers(data)
		switch {
		case bytes.TrimLeft(data, " \t\r\n")[0] != '{':
			if !errors.Is(err, errJSONSyntax) {
				t.Fatalf("a JSON value that is not an object: %v", err)
			}
		case depth > maxJSONDepth:
			if err == nil {
				t.Fatalf("nested %d deep and accepted", depth)
			}
		case dup != errors.Is(err, errDuplicateMember) || (!dup && err != nil):
			t.Fatalf("reference duplicate %v, scan error %v", dup, err)
		case err == nil && crit != refCrit:
			t.Fatalf("reference crit %v, scan crit %v", refCrit, crit)
		}
	})
}
