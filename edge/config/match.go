package config

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Matching beyond host, path and method: a path regex with named groups
// for rewrites, and header, query and cookie conditions. README "Routing"
// documents them and the precedence.

// matchRegex checks match.regex and returns its named groups.
func (v *validator) matchRegex(p string, r *Route) []string {
	if r.Match.Regex == "" {
		return nil
	}
	re, err := regexp.Compile(r.Match.Regex)
	if err != nil {
		v.add(p+".match.regex", "%v", err)
		return nil
	}
	var names []string
	for _, n := range re.SubexpNames() {
		if n != "" {
			names = append(names, n)
		}
	}
	return names
}

// matchConditions checks match.headers, match.query and match.cookies.
func (v *validator) matchConditions(p string, r *Route) {
	for _, set := range []struct {
		field string
		m     map[string]string
	}{{"headers", r.Match.Headers}, {"query", r.Match.Query}, {"cookies", r.Match.Cookies}} {
		for _, name := range slices.Sorted(mapsKeys(set.m)) {
			fp := p + ".match." + set.field + "." + name
			val := set.m[name]
			switch {
			case set.field == "headers" && !validToken(name):
				v.add(fp, "%q is not a valid header name", name)
			case set.field != "headers" && (name == "" || strings.ContainsAny(name, "&=;, \t")):
				v.add(fp, "%q is not a valid name", name)
			}
			if strings.ContainsAny(val, "\r\n\x00") {
				v.add(fp, "value must not contain CR, LF or NUL")
			}
			if re, ok := strings.CutPrefix(val, "~"); ok {
				if _, err := regexp.Compile(re); err != nil {
					v.add(fp, "%v", err)
				}
			}
		}
	}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// pathTemplate checks the {name} placeholders of rewrite.replace_path:
// each must be a named group of match.regex.
func (v *validator) pathTemplate(p, tmpl string, groups []string) {
	for rest := tmpl; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				v.add(p+".rewrite.replace_path", "unmatched '}' in %q", tmpl)
			}
			return
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			v.add(p+".rewrite.replace_path", "unclosed '{' in %q", tmpl)
			return
		}
		name := rest[i+1 : i+j]
		if !slices.Contains(groups, name) {
			v.add(p+".rewrite.replace_path", "{%s}: match.regex has no group named %q (write (?P<%s>...))", name, name, name)
		}
		rest = rest[i+j+1:]
	}
}

// PathTemplate splits a replace_path into literal text and group names:
// "/u/{id}/x" is ["/u/", "{id}", "/x"]. Call it on a validated config.
func PathTemplate(tmpl string) []string {
	var parts []string
	for tmpl != "" {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			return append(parts, tmpl)
		}
		if i > 0 {
			parts = append(parts, tmpl[:i])
		}
		j := strings.IndexByte(tmpl, '}')
		parts = append(parts, tmpl[i:j+1])
		tmpl = tmpl[j+1:]
	}
	return parts
}

// shadowed reports routes that can never be chosen because an earlier
// route takes every request they would (README "Routing", precedence):
// the same host pattern, the same exact path, prefix or regex, methods
// that cover the later route's, and no condition the later route lacks.
// Routes with different paths are ordered by specificity, not by file
// order, so they never shadow each other.
func (v *validator) shadowed(routes []*Route) {
	for j, b := range routes {
		if b == nil {
			continue
		}
		for i := 0; i < j; i++ {
			a := routes[i]
			if a != nil && overlapKeys(a.Match, b.Match) {
				continue // "matches the same requests" says so already
			}
			if a == nil || !strings.EqualFold(a.Match.Host, b.Match.Host) || a.Match.Path != b.Match.Path ||
				a.Match.Prefix != b.Match.Prefix || a.Match.Regex != b.Match.Regex ||
				!methodsCover(a.Match.Methods, b.Match.Methods) || !condsWithin(a.Match, b.Match) {
				continue
			}
			v.add(fmt.Sprintf("routes[%d].match", j), "route %q can never be chosen: route %q (routes[%d]) comes first and takes every request it would (same host and path, methods %s, no condition %q lacks)",
				b.Name, a.Name, i, methodList(a.Match.Methods), b.Name)
			break
		}
	}
}

func methodList(m []string) string {
	if len(m) == 0 {
		return "any"
	}
	return strings.Join(m, ", ")
}

// methodsCover: a's methods include all of b's (none listed: any; GET
// covers HEAD).
func methodsCover(a, b []string) bool {
	if len(a) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	for _, m := range b {
		if !slices.Contains(a, m) && !(m == "HEAD" && slices.Contains(a, "GET")) {
			return false
		}
	}
	return true
}

// condsWithin: every condition of a is also one of b's, identically
// (header names compared case-insensitively).
func condsWithin(a, b Match) bool {
	return within(a.Headers, b.Headers, true) && within(a.Query, b.Query, false) && within(a.Cookies, b.Cookies, false)
}

func within(a, b map[string]string, fold bool) bool {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		found := false
		for bk, bv := range b {
			if (bk == k || (fold && strings.EqualFold(bk, k))) && bv == a[k] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func overlapKeys(a, b Match) bool {
	for _, ka := range matchKeys(a) {
		if slices.Contains(matchKeys(b), ka) {
			return true
		}
	}
	return false
}

// condKey is a canonical text of a match's conditions, for matchKeys:
// routes that differ in their conditions don't match the same requests.
func condKey(m Match) string {
	var b strings.Builder
	for _, set := range []struct {
		field string
		m     map[string]string
		fold  bool
	}{{"header", m.Headers, true}, {"query", m.Query, false}, {"cookie", m.Cookies, false}} {
		keys := make([]string, 0, len(set.m))
		for k := range set.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			name := k
			if set.fold {
				name = strings.ToLower(k)
			}
			fmt.Fprintf(&b, " with %s %s=%q", set.field, name, set.m[k])
		}
	}
	return b.String()
}
