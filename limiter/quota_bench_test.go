package limiter

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkLocalQuotasList is the first page (500, the admin API's cap)
// of a store of 100k consumers: one scan of the map under the lock the
// data plane's Take waits on, so its time and garbage are the data
// plane's stall while an operator lists quotas.
func BenchmarkLocalQuotasList(b *testing.B) {
	q, err := OpenLocalQuotas("", time.Hour, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	for i := range 100_000 {
		if _, err := q.Take(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), 1000, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		page, next, err := q.List("", 500)
		if err != nil || len(page) != 500 || next == "" {
			b.Fatalf("%d keys, next %q, %v", len(page), next, err)
		}
	}
}
