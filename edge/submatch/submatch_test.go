package submatch

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// cases are expressions and inputs where leftmost-first semantics, group
// bookkeeping on backtracking, empty-width assertions and UTF-8 decide
// the answer.
var cases = []struct {
	expr   string
	inputs []string
}{
	{`^/users/(?P<id>[0-9]+)(?P<rest>/.*)?$`, []string{"/users/123456/posts/7", "/users/42", "/users/", "/users/42x", "x/users/1"}},
	{`^/u/(?P<id>[0-9]+)/posts$`, []string{"/u/42/posts", "/u/42/posts/", "/u//posts"}},
	{`(a|ab)(c|bcd)(d*)`, []string{"abcd", "xxabcdd", "acd", ""}},
	{`(a*)*`, []string{"", "aaa", "b"}},
	{`(a*)+$`, []string{"aab", "aa"}},
	{`(a+|b+)*c`, []string{"ababbac", "abab"}},
	{`x*?(y)?`, []string{"xxy", "", "y"}},
	{`(a)|(b)`, []string{"b", "a", "c", "cab"}},
	{`\b(\w+)\b`, []string{"  hello world", "", "é"}},
	{`(?m)^(x)$`, []string{"a\nx\nb", "x"}},
	{`(?s)(.)(.)`, []string{"\n\n", "a"}},
	{`(.)(.)`, []string{"\n\n", "a\nbc"}},
	{`(?i)(straße|ü+)`, []string{"STRASSE Straße", "xÜüÜ"}},
	{`([^/]+)/([^/]*)$`, []string{"/a/b/c", "/a/", "nope"}},
	{`(\p{Greek}+)(\d*)`, []string{"abc αβγ12", "\xff\xfeαx"}},
	{`^(.*?)(/v[0-9]+)?(/.*)?$`, []string{"/api/v2/users", "/api/users", ""}},
	{`(a{0})b(c)`, []string{"bc", "abc"}},
	{`()`, []string{"", "x"}},
	{`^$`, []string{"", "x"}},
	{`\A(x)\z`, []string{"x", "xx"}},
}

// Find answers what regexp's FindSubmatchIndex answers, with one Scratch
// reused across expressions and inputs of different sizes.
func TestFindAgreesWithRegexp(t *testing.T) {
	var s Scratch
	for _, c := range cases {
		re := regexp.MustCompile(c.expr)
		p, err := Compile(c.expr)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range c.inputs {
			got, ok := p.Find(&s, []byte(in))
			want := re.FindSubmatchIndex([]byte(in))
			if !ok || !slices.Equal(got, want) {
				t.Errorf("%s on %q: got %v (ok %v), regexp %v", c.expr, in, got, ok, want)
			}
		}
	}
}

// An input past the bitmap's bound is refused, not answered slowly.
func TestFindRefusesPastTheBound(t *testing.T) {
	p, err := Compile(`^(a+)(b)?$`)
	if err != nil {
		t.Fatal(err)
	}
	var s Scratch
	long := []byte(strings.Repeat("a", MaxStates))
	if m, ok := p.Find(&s, long); ok || m != nil {
		t.Fatalf("got %v, ok %v; want a refusal", m, ok)
	}
	if m, ok := p.Find(&s, []byte("aab")); !ok || !slices.Equal(m, []int{0, 3, 0, 2, 2, 3}) {
		t.Fatalf("after a refusal: %v, ok %v", m, ok)
	}
	s.Trim()
	if cap(s.visited) > keepWords || cap(s.jobs) > keepJobs {
		t.Errorf("Trim kept %d words, %d jobs", cap(s.visited), cap(s.jobs))
	}
}

func TestCompileRefusesWhatRegexpRefuses(t *testing.T) {
	for _, expr := range []string{`(`, `a**`, `\8`, `(?P<x>a)(?P<x>b)`} {
		_, rerr := regexp.Compile(expr)
		_, err := Compile(expr)
		if (rerr == nil) != (err == nil) {
			t.Errorf("%q: regexp %v, submatch %v", expr, rerr, err)
		}
	}
}

// FuzzFind compares Find with regexp's FindSubmatchIndex on random
// expressions and inputs.
func FuzzFind(f *testing.F) {
	for _, c := range cases {
		for _, in := range c.inputs {
			f.Add(c.expr, in)
		}
	}
	var s Scratch
	f.Fuzz(func(t *testing.T, expr, in string) {
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		p, err := Compile(expr)
		if err != nil {
			t.Fatalf("%q compiles in regexp, not here: %v", expr, err)
		}
		got, ok := p.Find(&s, []byte(in))
		if !ok {
			return
		}
		if want := re.FindSubmatchIndex([]byte(in)); !slices.Equal(got, want) {
			t.Fatalf("%q on %q: got %v, regexp %v", expr, in, got, want)
		}
	})
}

func BenchmarkFind(b *testing.B) {
	const expr = `^/users/(?P<id>[0-9]+)(?P<rest>/.*)?$`
	path := []byte("/users/123456/posts/7")
	re := regexp.MustCompile(expr)
	p, _ := Compile(expr)
	var s Scratch
	b.Run("submatch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if m, _ := p.Find(&s, path); m == nil {
				b.Fatal("no match")
			}
		}
	})
	b.Run("regexp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if re.FindSubmatchIndex(path) == nil {
				b.Fatal("no match")
			}
		}
	})
}

func ExampleProg_Find() {
	p, _ := Compile(`^/u/(?P<id>[0-9]+)(/.*)?$`)
	var s Scratch
	path := []byte("/u/42/posts")
	m, _ := p.Find(&s, path)
	fmt.Println(string(path[m[2]:m[3]]), string(path[m[4]:m[5]]))
	// Output: 42 /posts
}
