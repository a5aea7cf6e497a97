package edge

import (
	"fmt"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/valyala/bytebufferpool"
)

// BenchmarkCompression prices each coding at each level on 4 KiB (a
// typical API answer: the per-request cost of a pooled encoder's reset
// shows) and 1 MiB of JSON, through the step's own pooled encoders: MB/s
// is input compressed per second on one core, ratio is input/output.
// Results in bench/README.md.
func BenchmarkCompression(b *testing.B) {
	all := stub.APIJSON(1 << 20)
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
