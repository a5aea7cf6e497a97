package edge

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/valyala/bytebufferpool"
)

// benchJSON is 1 MiB of API-like JSON: records with ids, names, emails,
// timestamps and free text, the kind of answer compression is for.
func benchJSON() []byte {
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"}
	for i := 0; b.Len() < 1<<20; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"%s %s","email":"user%d@example.com","created":"2026-11-%02dT%02d:%02d:00Z","active":%v,"score":%d.%d,"note":"%s %s %s %d"}`,
			100000+i*7, words[i%10], words[(i*3)%10], i*13, 1+i%28, i%24, i%60, i%3 != 0, i*37%1000, i%10,
			words[(i*7)%10], words[(i*11)%10], words[(i*5)%10], i*i%9973)
	}
	b.WriteString(`]}`)
	return b.Bytes()[:1<<20]
}

// BenchmarkCompression prices each coding at each level on 4 KiB (a
// typical API answer: the per-request cost of a pooled encoder's reset
// shows) and 1 MiB of JSON, through the step's own pooled encoders: MB/s
// is input compressed per second on one core, ratio is input/output.
// Results in bench/README.md.
func BenchmarkCompression(b *testing.B) {
	all := benchJSON()
	for _, size := range []int{4 << 10, 1 << 20} {
		data := all[:size]
		for _, cd := range []coding{codingGzip, codingBr, codingZstd} {
			for level, name := range []string{"fast", "default", "better"} {
				b.Run(fmt.Sprintf("%dKiB/%s/%s", size>>10, codingNames[cd], name), func(b *testing.B) {
					pool := encoderPool(cd, level)
					b.SetBytes(int64(len(data)))
					b.ReportAllocs()
					var out int
					once := func() {
						buf := bytebufferpool.Get()
						e := pool.Get().(encoder)
						e.Reset(buf)
						_, _ = e.Write(data)
						_ = e.Close()
						pool.Put(e)
						out = len(buf.B)
						bytebufferpool.Put(buf)
					}
					once() // warm the encoder's tables and the buffer pool
					for b.Loop() {
						once()
					}
					b.ReportMetric(float64(len(data))/float64(out), "ratio")
				})
			}
		}
	}
}
