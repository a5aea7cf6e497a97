package config

import (
	"strings"
	"testing"
)

func TestSplitConfigErrors(t *testing.T) {
	src := `admin: { listen: "off" }
upstreams:
  a: { targets: [ { url: "http://127.0.0.1:9001" } ] }
  b: { targets: [ { url: "http://127.0.0.1:9002" } ] }
routes:
  - { name: r1, match: { prefix: /1/ }, upstream: a, split: [ { upstream: b, weight: 1 } ] }
  - { name: r2, match: { prefix: /2/ }, split: [ { upstream: a, weight: 0 }, { upstream: c, weight: 5 }, { upstream: a, weight: -1 } ] }
  - { name: r3, match: { prefix: /3/ }, split: [ { upstream: a, weight: 1 } ], split_override: "ip", split_key: "path" }
  - { name: r4, match: { prefix: /4/ }, upstream: a, split_key: "cookie:s" }
  - { name: r5, match: { prefix: /5/ }, upstream: a, mirror: { upstream: z, sample: 1.5, max_concurrent: -1 } }
`
	_, err := Parse("s.yaml", []byte(src), nil)
	want := []string{
		`s.yaml:6: routes[0].split: excludes upstream: list the route's upstream in the split`,
		`s.yaml:7: routes[1].split[1].upstream: no upstream named "c"`,
		`s.yaml:7: routes[1].split[2].upstream: "a" is listed twice`,
		`s.yaml:7: routes[1].split[2].weight: must be 0..10000, got -1`,
		`s.yaml:8: routes[2].split_override: want "header:NAME" or "cookie:NAME", got "ip"`,
		`s.yaml:8: routes[2].split_key: want "ip", "header:NAME" or "cookie:NAME", got "path"`,
		`s.yaml:9: routes[3].split_key: needs a split`,
		`s.yaml:10: routes[4].mirror.upstream: no upstream named "z"`,
		`s.yaml:10: routes[4].mirror.sample: must be 0..1, got 1.5`,
		`s.yaml:10: routes[4].mirror.max_concurrent: must be 1..10000, got -1`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}
