package edge

import (
	"strconv"
	"strings"
	"testing"
)

// refAcceptEncoding is parseAcceptEncoding written the obvious way
// (strings, strconv): the fuzz target holds the allocation-free parser to it.
func refAcceptEncoding(v string) acceptEncoding {
	a := acceptEncoding{q: [numCodings]int16{-1, -1, -1, -1}, star: -1}
	for _, m := range strings.Split(v, ",") {
		name, params, hasParams := strings.Cut(m, ";")
		name = strings.ToLower(strings.Trim(name, " \t"))
		if name == "" {
			continue
		}
		q := int16(1000)
		if hasParams {
			p := strings.Trim(params, " \t")
			if len(p) < 3 || !strings.EqualFold(p[:2], "q=") {
				continue
			}
			s := p[2:]
			valid := len(s) <= 5 && (s == "0" || s == "1" ||
				(len(s) >= 2 && s[1] == '.' && (s[0] == '0' || (s[0] == '1' && strings.Trim(s[2:], "0") == ""))))
			if valid && len(s) > 2 {
				valid = strings.Trim(s[2:], "0123456789") == ""
			}
			if !valid {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSuffix(s, "."), 64)
			if err != nil {
				panic(err)
			}
			q = int16(f*1000 + 0.5)
		}
		var p *int16
		switch name {
		case "*":
			p = &a.star
		case "identity":
			p = &a.q[codingIdentity]
		case "gzip", "x-gzip":
			p = &a.q[codingGzip]
		case "br":
			p = &a.q[codingBr]
		case "zstd":
			p = &a.q[codingZstd]
		default:
			continue
		}
		if q > *p {
			*p = q
		}
	}
	return a
}

// RFC 9110 12.5.3 and 12.4.2 (qvalue syntax).
func TestParseAcceptEncoding(t *testing.T) {
	cases := []struct {
		v                    string
		identity, gz, br, zs int16
		star                 int16
	}{
		{"", -1, -1, -1, -1, -1},
		{"gzip", -1, 1000, -1, -1, -1},
		{"gzip, br;q=0.5 , zstd ; q=0.25", -1, 1000, 500, 250, -1},
		{"identity;q=0, *;q=0.1", 0, -1, -1, -1, 100},
		{"gzip;q=1.000, br;q=1.001", -1, 1000, -1, -1, -1}, // 1.001 is no qvalue
		{"gzip;q=0.1234", -1, -1, -1, -1, -1},              // four decimals
		{"gzip;level=1", -1, -1, -1, -1, -1},               // not a weight
		{"gzip;q=0.2, gzip;q=0.7", -1, 700, -1, -1, -1},
		{"X-GZIP;Q=0.", -1, 0, -1, -1, -1},
	}
	for _, c := range cases {
		a := parseAcceptEncoding([]byte(c.v))
		want := acceptEncoding{q: [numCodings]int16{c.identity, c.gz, c.br, c.zs}, star: c.star}
		if a != want {
			t.Errorf("%q: %+v, want %+v", c.v, a, want)
		}
		if ref := refAcceptEncoding(c.v); ref != want {
			t.Errorf("%q: reference %+v, want %+v", c.v, ref, want)
		}
	}
}

func TestChooseCoding(t *testing.T) {
	all := []coding{codingZstd, codingBr, codingGzip}
	cases := []struct {
		v       string
		want    coding
		refused bool
	}{
		{"gzip, br", codingBr, false},
		{"gzip;q=0.9, br;q=0.8", codingGzip, false},
		{"*", codingZstd, false},
		{"*;q=0", codingIdentity, true},
		{"identity;q=0", codingIdentity, true},
		{"gzip, identity;q=0", codingGzip, true},
		{"gzip, *;q=0, identity", codingGzip, false},
		{"deflate", codingIdentity, false},
	}
	for _, c := range cases {
		a := parseAcceptEncoding([]byte(c.v))
		if got, refused := a.choose(all); got != c.want || refused != c.refused {
			t.Errorf("%q: %v %v, want %v %v", c.v, got, refused, c.want, c.refused)
		}
	}
}

func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{"gzip, br;q=0.5", "identity;q=0, *", "zstd;q=1.000", "x-gzip;Q=0.", " ; ,;q=", "br;q=1.0000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		a := parseAcceptEncoding([]byte(v))
		if ref := refAcceptEncoding(v); a != ref {
			t.Fatalf("%q: %+v, reference %+v", v, a, ref)
		}
		for _, q := range append(a.q[:], a.star) {
			if q < -1 || q > 1000 {
				t.Fatalf("%q: q %d out of range", v, q)
			}
		}
	})
}
