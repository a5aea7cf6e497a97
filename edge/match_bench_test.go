package edge

import (
	"github.com/sluicegw/sluice/edge/submatch"
	"regexp"
	"testing"
)

// BenchmarkRegexRoute prices a regex route: matching a path (what every
// request to the host table pays for each regex route it passes) and
// filling a replace_path template from its groups.
func BenchmarkRegexRoute(b *testing.B) {
	re := regexp.MustCompile(`^/users/(?P<id>[0-9]+)(?P<rest>/.*)?$`)
	captures, _ := submatch.Compile(re.String())
	rt := &route{regex: re, captures: captures, pathTemplate: compilePathTemplate("/u/{id}/profile{rest}", re)}
	var sc submatch.Scratch
	path := []byte("/users/123456/posts/7")
	b.Run("match", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !re.Match(path) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("rewrite", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 64)
		for b.Loop() {
			buf = appendTemplatePath(buf[:0], rt, path, &sc)
		}
		if string(buf) != "/u/123456/profile/posts/7" {
			b.Fatalf("%s", buf)
		}
	})
}
