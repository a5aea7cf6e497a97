package limiter

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// The estimate at an offset into a window: the previous window's count
// weighted by its remaining overlap, plus the current count.
func TestSlidingEstimate(t *testing.T) {
	per := int64(100)
	if e := estimate(10, 100, 25, per); e != 85 {
		t.Errorf("estimate %v, want 100*0.75+10", e)
	}
	if c, p := slide(5, 7, 3, 6); c != 0 || p != 7 {
		t.Errorf("roll one window: %d %d", c, p)
	}
	if c, p := slide(5, 7, 3, 9); c != 0 || p != 0 {
		t.Errorf("roll several windows: %d %d", c, p)
	}
}

func checkQuota(t *testing.T, q Quotas, key string) {
	t.Helper()
	for i := 0; i < 5; i++ {
		r, err := q.Take(key, 5, time.Hour)
		if err != nil || !r.Allowed || r.Remaining != 4-i || r.Limit != 5 {
			t.Fatalf("take %d: %+v %v", i, r, err)
		}
	}
	r, _ := q.Take(key, 5, time.Hour)
	if r.Allowed || r.ResetAfter <= 0 || r.ResetAfter > time.Hour {
		t.Fatalf("over quota: %+v", r)
	}
	u, err := q.Usage(key)
	if err != nil || u.Used != 5 || u.Current != 5 || u.Per != "1h0m0s" {
		t.Fatalf("usage %+v %v", u, err)
	}
	if r, _ := q.Take(key+"-other", 5, time.Hour); !r.Allowed {
		t.Fatal("another key shares the quota")
	}
	if err := q.Reset(key); err != nil {
		t.Fatal(err)
	}
	if r, _ := q.Take(key, 5, time.Hour); !r.Allowed || r.Remaining != 4 {
		t.Fatalf("after reset: %+v", r)
	}
	if err := q.Reset("never-used"); !errors.Is(err, ErrNoQuota) {
		t.Fatalf("reset of an unused key: %v", err)
	}
}

func TestLocalQuotasSurviveARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quotas.json")
	q, err := OpenLocalQuotas(path, time.Hour, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	checkQuota(t, q, "k")
	for i := 0; i < 3; i++ {
		q.Take("day", 3, 24*time.Hour)
	}
	q.Close() // saves
	q2, err := OpenLocalQuotas(path, time.Hour, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if r, _ := q2.Take("day", 3, 24*time.Hour); r.Allowed {
		t.Fatal("a spent daily quota came back after a restart")
	}
}

func TestRedisQuotasSharedAndFallback(t *testing.T) {
	r := testutil.StartRedis(t)
	mk := func() *RedisQuotas {
		c := testutil.RedisClient(t, r.Addr)
		fb, _ := OpenLocalQuotas("", time.Hour, quietLog())
		t.Cleanup(fb.Close)
		return &RedisQuotas{Client: c, Timeout: 200 * time.Millisecond, Fallback: fb, Log: quietLog()}
	}
	a, b := mk(), mk()
	key := fmt.Sprint("q-", time.Now().UnixNano())
	checkQuota(t, a, key)
	// Shared: four more from b fill the quota a started (1 used after reset).
	for i := 0; i < 4; i++ {
		if res, _ := b.Take(key, 5, time.Hour); !res.Allowed {
			t.Fatalf("b take %d refused", i)
		}
	}
	if res, _ := a.Take(key, 5, time.Hour); res.Allowed {
		t.Fatal("the quota is not shared between instances")
	}
	r.Stop()
	if res, err := a.Take(key+"-down", 5, time.Hour); err != nil || !res.Allowed {
		t.Fatalf("with Redis down quotas must count locally: %+v %v", res, err)
	}
}
