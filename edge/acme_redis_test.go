package edge

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

func TestListUnder(t *testing.T) {
	keys := []string{"certs/ca/a.example/a.crt", "certs/ca/a.example/a.key", "certs/ca/b.example/b.crt", "users/x.json", "certsx/y"}
	for _, tc := range []struct {
		dir       string
		recursive bool
		want      []string
	}{
		{"certs", false, []string{"certs/ca"}},
		{"certs/", false, []string{"certs/ca"}},
		{"certs/ca", false, []string{"certs/ca/a.example", "certs/ca/b.example"}},
		{"certs/ca", true, []string{"certs/ca/a.example", "certs/ca/a.example/a.crt", "certs/ca/a.example/a.key", "certs/ca/b.example", "certs/ca/b.example/b.crt"}},
		{"", false, []string{"certs", "certsx", "users"}},
		{"cert", false, nil}, // a prefix of a name is not a directory
		{"users/x.json", false, nil},
	} {
		if got := listUnder(keys, tc.dir, tc.recursive); !slices.Equal(got, tc.want) {
			t.Errorf("listUnder(%q, %v) = %q, want %q", tc.dir, tc.recursive, got, tc.want)
		}
	}
}

// The Redis storage against a real redis-server: values, directory
// semantics (Stat, Exists, List, Delete of a directory), fs.ErrNotExist
// for what is not there.
func TestRedisStorageKeys(t *testing.T) {
	ctx := context.Background()
	s := newRedisStorage(testutil.RedisClient(t, testutil.StartRedis(t).Addr), "t", slog.Default())
	if _, err := s.Load(ctx, "a/b"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of nothing: %v", err)
	}
	for _, k := range []string{"a/b/c", "a/b/d", "a/e"} {
		if err := s.Store(ctx, k, []byte("v:"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := s.Load(ctx, "a/b/c"); err != nil || string(v) != "v:a/b/c" {
		t.Fatalf("Load: %q %v", v, err)
	}
	if ki, err := s.Stat(ctx, "a/e"); err != nil || !ki.IsTerminal || ki.Size != 5 || time.Since(ki.Modified) > time.Minute {
		t.Errorf("Stat of a key: %+v %v", ki, err)
	}
	if ki, err := s.Stat(ctx, "a/b"); err != nil || ki.IsTerminal {
		t.Errorf("Stat of a directory: %+v %v", ki, err)
	}
	if !s.Exists(ctx, "a") || s.Exists(ctx, "a/x") {
		t.Error("Exists is wrong")
	}
	if l, err := s.List(ctx, "a", false); err != nil || !slices.Equal(l, []string{"a/b", "a/e"}) {
		t.Errorf("List: %q %v", l, err)
	}
	if err := s.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "a/b/c"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a key in a deleted directory: %v", err)
	}
	if _, err := s.List(ctx, "a/b", true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List of a deleted directory: %v", err)
	}
	if err := s.Delete(ctx, "nothing"); err != nil {
		t.Errorf("Delete of nothing: %v", err)
	}
}

// Locks: a second holder waits until the first unlocks; a holder that
// died (its lock no longer refreshed) loses the lock when it expires; a
// stale holder's Unlock does not free the new holder's lock.
func TestRedisStorageLocks(t *testing.T) {
	ttl := redisLockTTL
	redisLockTTL = 600 * time.Millisecond
	t.Cleanup(func() { redisLockTTL = ttl })
	addr := testutil.StartRedis(t).Addr
	a := newRedisStorage(testutil.RedisClient(t, addr), "t", slog.Default())
	b := newRedisStorage(testutil.RedisClient(t, addr), "t", slog.Default())
	ctx := context.Background()
	if err := a.Lock(ctx, "issue"); err != nil {
		t.Fatal(err)
	}
	// Held and refreshed past its TTL: b can't take it.
	short, cancel := context.WithTimeout(ctx, 3*redisLockTTL)
	err := b.Lock(short, "issue")
	cancel()
	if err == nil {
		t.Fatal("b took a lock a holds")
	}
	// b waits: it tried (SET NX) twice since, and is still waiting.
	sets, _ := strconv.Atoi(redisCommandCount(t, addr, "set"))
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "issue") }()
	testutil.WaitFor(t, "b to try for the lock twice", func() bool {
		n, _ := strconv.Atoi(redisCommandCount(t, addr, "set"))
		return n >= sets+2
	})
	select {
	case err := <-got:
		t.Fatalf("b took the lock while a holds it (%v)", err)
	default:
	}
	if err := a.Unlock(ctx, "issue"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// b dies holding it: its refresher stops, the lock expires, a gets it.
	b.mu.Lock()
	b.locks["issue"].stop()
	b.mu.Unlock()
	if err := a.Lock(ctx, "issue"); err != nil {
		t.Fatal(err)
	}
	// b's late Unlock leaves a's lock alone.
	if err := b.Unlock(ctx, "issue"); err != nil {
		t.Fatal(err)
	}
	short, cancel = context.WithTimeout(ctx, 2*redisLockTTL)
	defer cancel()
	c := newRedisStorage(testutil.RedisClient(t, addr), "t", slog.Default())
	if err := c.Lock(short, "issue"); err == nil {
		t.Error("a stale holder's Unlock freed the current holder's lock")
	}
	if err := a.Unlock(ctx, "issue"); err != nil {
		t.Fatal(err)
	}
}

// One instance whose lock expired (Redis unreachable for a TTL, say) and
// that asks for it again: the second holder waits for the first one's
// Unlock, which then does not free the second's lock.
func TestRedisStorageLockRetakenBySameInstance(t *testing.T) {
	addr := testutil.StartRedis(t).Addr
	rc := testutil.RedisClient(t, addr)
	s := newRedisStorage(testutil.RedisClient(t, addr), "t", slog.Default())
	ctx := context.Background()
	if err := s.Lock(ctx, "n"); err != nil { // holder 1
		t.Fatal(err)
	}
	if err := rc.Do(ctx, rc.B().Del().Key(s.lockKey("n")).Build()).Error(); err != nil { // it expires
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- s.Lock(ctx, "n") }() // holder 2, same instance
	if err := s.Unlock(ctx, "n"); err != nil { // holder 1 is done
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	// Holder 2 holds it in Redis, where another instance sees it.
	if err := rc.Do(ctx, rc.B().Get().Key(s.lockKey("n")).Build()).Error(); err != nil {
		t.Errorf("holder 2's lock is not in Redis (%v): holder 1's Unlock freed it", err)
	}
	if err := s.Unlock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
}

// A held lock found gone at its refresh (it expired, or another instance
// took it) is logged: two instances may be doing the same work.
func TestRedisStorageLockLostIsLogged(t *testing.T) {
	ttl := redisLockTTL
	redisLockTTL = 300 * time.Millisecond
	t.Cleanup(func() { redisLockTTL = ttl })
	addr := testutil.StartRedis(t).Addr
	rc := testutil.RedisClient(t, addr)
	log := newTestLog(t)
	s := newRedisStorage(testutil.RedisClient(t, addr), "t", slog.New(slog.NewTextHandler(log, nil)))
	ctx := context.Background()
	if err := s.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if err := rc.Do(ctx, rc.B().Del().Key(s.lockKey("n")).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the lost lock to be logged", func() bool {
		return strings.Contains(log.String(), `level=ERROR msg="acme redis storage: lock lost`) && strings.Contains(log.String(), "lock=n")
	})
	_ = s.Unlock(ctx, "n")
}
