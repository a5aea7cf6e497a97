package edge

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/sluicegw/sluice/limiter"
)

// Through Sentinel: the client asks the sentinel for the master and strict
// limits are exact there too.
func TestRedisThroughSentinel(t *testing.T) {
	sentinel, _ := testutil.StartRedisSentinel(t)
	client, err := rueidis.NewClient(redisOptions(&config.Redis{Addrs: []string{sentinel}, MasterSet: "sluice"}))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	s := &limiter.Strict{Client: client, Local: limiter.New(), Timeout: time.Second, Instances: 1, Log: quietLogger()}
	lim := limiter.Limit{Rate: 10, Per: time.Hour, Burst: 10}
	key := []byte(fmt.Sprint("sentinel-", time.Now().UnixNano()))
	var allowed atomic.Int64
	for i := 0; i < 30; i++ {
		if s.Take(key, lim, limiter.Now()).Allowed {
			allowed.Add(1)
		}
	}
	if allowed.Load() != 10 || s.FallbackActive() {
		t.Fatalf("through sentinel: %d admitted, fallback %v", allowed.Load(), s.FallbackActive())
	}
}
