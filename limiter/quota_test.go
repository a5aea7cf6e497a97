package limiter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
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

// Two processes on one quota file, as during an upgrade: the new one
// (held) saves nothing while the old one counts; once the old one has
// saved at exit, the new one adds what the old one counted since it
// loaded the file. Counts from both are kept, none twice.
func TestLocalQuotasMergeSaved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quotas.json")
	old, err := OpenLocalQuotas(path, time.Hour, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	take := func(q *LocalQuotas, key string, n int) {
		for range n {
			if _, err := q.Take(key, 100, 24*time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	take(old, "a", 4)
	old.Close()
	old, _ = OpenLocalQuotas(path, time.Hour, quietLog()) // a first process, 4 counts saved
	next, _ := OpenLocalQuotas(path, time.Hour, quietLog())
	next.Hold()
	take(old, "a", 3)
	take(old, "b", 1)
	take(next, "a", 2)
	next.Close() // held: must not overwrite the old process's file
	next, _ = OpenLocalQuotas(path, time.Hour, quietLog())
	next.Hold()
	take(next, "a", 2)
	old.Close()
	if err := next.MergeSaved(); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{"a": 4 + 3 + 2, "b": 1} {
		if u, err := next.Usage(key); err != nil || u.Current != want {
			t.Errorf("%s: %+v %v, want %d counts", key, u, err, want)
		}
	}
	next.Close()
	again, _ := OpenLocalQuotas(path, time.Hour, quietLog())
	defer again.Close()
	if u, _ := again.Usage("a"); u.Current != 9 {
		t.Errorf("saved after the merge: %+v, want 9", u)
	}
}

// checkList counts distinct uses on keys under prefix (one of them with
// markup and the characters quota keys are joined and hash-tagged with),
// then pages through List limit 3 at a time: every key comes back with
// its usage, over several pages; a key whose windows have both expired
// is not listed. strictPages: every page but the last holds exactly
// limit keys and none repeats (the local store; Redis's SCAN is only
// about limit, and may repeat a key after a rehash).
func checkList(t *testing.T, q Quotas, prefix string, strictPages bool) {
	t.Helper()
	want := map[string]int{}
	for i := range 8 {
		key := fmt.Sprintf("%s%d", prefix, i)
		if i == 7 {
			key = prefix + `<b>x</b>|{a}}`
		}
		want[key] = i + 1
		for range i + 1 {
			if _, err := q.Take(key, 100, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Spent windows: taken with a short period, waited out (Usage shows
	// 0 used once both windows have passed).
	stale := prefix + "stale"
	if _, err := q.Take(stale, 100, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the short quota's windows to expire", func() bool {
		u, err := q.Usage(stale)
		if errors.Is(err, ErrNoQuota) {
			t.Fatal("the stale key was gone before it could be listed: the machine is too slow for this test")
		}
		return err == nil && u.Used == 0
	})
	got := map[string]int{}
	cursor, pages := "", 0
	for {
		pages++
		if pages > 100 {
			t.Fatalf("no end to the listing after 100 pages (cursor %q)", cursor)
		}
		page, next, err := q.List(cursor, 3)
		if err != nil {
			t.Fatalf("list page %d: %v", pages, err)
		}
		if strictPages && len(page) > 3 || strictPages && next != "" && len(page) != 3 {
			t.Fatalf("page %d holds %d keys, want 3 (next %q)", pages, len(page), next)
		}
		for _, u := range page {
			if !strings.HasPrefix(u.Key, prefix) {
				continue // another test's key in the same Redis
			}
			if _, dup := got[u.Key]; dup && strictPages {
				t.Errorf("key %q listed twice", u.Key)
			}
			if u.Per != "1h0m0s" || u.Used != u.Current {
				t.Errorf("listed %+v, want the hour's period and used = this window's count", u)
			}
			got[u.Key] = u.Used
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if _, ok := got[stale]; ok {
		t.Errorf("a key whose windows have expired is listed: %d used", got[stale])
	}
	if pages < 3 {
		t.Errorf("%d keys listed 3 a page in %d pages: no paging", len(want), pages)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("key %q listed with %d used, want %d", k, got[k], n)
		}
	}
	if u, err := q.Usage(stale); err != nil || u.Used != 0 {
		t.Fatalf("the stale key expired before the listing ended (%+v %v): inconclusive", u, err)
	}
}

func TestLocalQuotasList(t *testing.T) {
	q, err := OpenLocalQuotas("", time.Hour, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if page, next, err := q.List("", 10); err != nil || len(page) != 0 || next != "" {
		t.Fatalf("empty store: %v %q %v", page, next, err)
	}
	checkList(t, q, "local-", true)
	// The empty key (a header-keyed quota's, when the header is missing)
	// is listed, first, and paging goes on after it.
	if _, err := q.Take("", 100, time.Hour); err != nil {
		t.Fatal(err)
	}
	page, next, err := q.List("", 1)
	if err != nil || len(page) != 1 || page[0].Key != "" || page[0].Used != 1 || next == "" {
		t.Fatalf("first page of 1 with the empty key counted: %+v next %q %v", page, next, err)
	}
	if page, _, _ := q.List(next, 1); len(page) != 1 || page[0].Key != "local-0" {
		t.Errorf("the page after the empty key: %+v, want local-0", page)
	}
	if _, _, err := q.List("local-0", 1); !errors.Is(err, ErrBadCursor) {
		t.Errorf("a cursor the store did not hand out: %v, want ErrBadCursor", err)
	}
	// A reset key is gone from the list.
	if err := q.Reset("local-3"); err != nil {
		t.Fatal(err)
	}
	page, _, _ = q.List("after:local-2", 1)
	if len(page) != 1 || page[0].Key != "local-4" {
		t.Errorf("after resetting local-3 the key after local-2 is %+v, want local-4", page)
	}
}

func TestRedisQuotasList(t *testing.T) {
	r := testutil.StartRedis(t)
	c := testutil.RedisClient(t, r.Addr)
	fb, _ := OpenLocalQuotas("", time.Hour, quietLog())
	defer fb.Close()
	q := &RedisQuotas{Client: c, Timeout: time.Second, Fallback: fb, Log: quietLog()}
	// Other keys in the same database (rate limits, API keys) are not
	// quotas: SCAN's MATCH leaves them out, and many of them between the
	// quota keys only make pages shorter.
	ctx := context.Background()
	for i := range 200 {
		if err := c.Do(ctx, c.B().Set().Key(fmt.Sprint("sluice:rl:{other-", i, "}")).Value("1").Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	checkList(t, q, "redis-", false)
	if _, _, err := q.List("not-a-cursor", 3); !errors.Is(err, ErrBadCursor) {
		t.Errorf("a bad cursor: %v, want ErrBadCursor", err)
	}
	r.Stop()
	if _, _, err := q.List("", 3); err == nil {
		t.Error("listing with Redis down succeeded")
	}
}
