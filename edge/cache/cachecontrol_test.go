package cache

import "testing"

func TestParseCacheControl(t *testing.T) {
	cases := []struct {
		in   string
		want Directives
	}{
		{"max-age=60", Directives{MaxAge: 60, SMaxAge: -1, StaleWhileRevalidate: -1, StaleIfError: -1, MinFresh: -1}},
		{`MAX-AGE="60" , s-maxage=5,public`, Directives{MaxAge: 60, SMaxAge: 5, Public: true, StaleWhileRevalidate: -1, StaleIfError: -1, MinFresh: -1}},
		{"no-store, no-cache, private", Directives{MaxAge: -1, SMaxAge: -1, NoStore: true, NoCache: true, Private: true, StaleWhileRevalidate: -1, StaleIfError: -1, MinFresh: -1}},
		{`private="Set-Cookie", no-cache="Set-Cookie"`, Directives{MaxAge: -1, SMaxAge: -1, NoCache: true, Private: true, StaleWhileRevalidate: -1, StaleIfError: -1, MinFresh: -1}},
		{"max-age=10, max-age=99", Directives{MaxAge: 10, SMaxAge: -1, StaleWhileRevalidate: -1, StaleIfError: -1, MinFresh: -1}},
		{"max-age=abc", Directives{MaxAge: -1, SMaxAge: -1, Invalid: true, StaleWhileRevalidate: -1, StaleIfError: -1, MinFresh: -1}},
		{"max-age", Directives{MaxAge: -1, SMaxAge: -1, Invalid: true, StaleWhileRevalidate: -1, StaleIfError: -1, MinFresh: -1}},
		{"max-age=99999999999999999999", Directives{MaxAge: maxDelta, SMaxAge: -1, StaleWhileRevalidate: -1, StaleIfError: -1, MinFresh: -1}},
		{"stale-while-revalidate=30, stale-if-error=600, proxy-revalidate", Directives{MaxAge: -1, SMaxAge: -1, StaleWhileRevalidate: 30, StaleIfError: 600, MustRevalidate: true, MinFresh: -1}},
		{`ext="a,max-age=5", must-revalidate`, Directives{MaxAge: -1, SMaxAge: -1, MustRevalidate: true, StaleWhileRevalidate: -1, StaleIfError: -1, MinFresh: -1}},
		{",,, ,", Directives{MaxAge: -1, SMaxAge: -1, StaleWhileRevalidate: -1, StaleIfError: -1, MinFresh: -1}},
	}
	for _, c := range cases {
		var d Directives
		d.Reset()
		ParseCacheControl([]byte(c.in), &d)
		if d != c.want {
			t.Errorf("%q:\n got %+v\nwant %+v", c.in, d, c.want)
		}
	}
}

// FuzzParseCacheControl: any bytes parse without panic, and numbers
// found are within [0, 2^31].
func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=60", `s-maxage="5", private="x,y"`, "no-store", `a="\"`, "max-age=9999999999999999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Directives
		d.Reset()
		ParseCacheControl(b, &d)
		for _, v := range []int64{d.MaxAge, d.SMaxAge, d.StaleWhileRevalidate, d.StaleIfError, d.MinFresh} {
			if v < -1 || v > maxDelta {
				t.Fatalf("%q: value %d out of range", b, v)
			}
		}
	})
}
