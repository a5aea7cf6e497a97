package cache

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicegw/sluice/internal/testutil"
)

func memEntry(url, route, rest string) *Entry {
	return &Entry{Key: url + "\x00r:" + route + rest, Route: route, Status: 200, Body: []byte("b")}
}

// An invalidation (RFC 9111 4.4, after a successful unsafe request)
// removes the URL's entries of one route, every scheme, caller and
// variant, through the URL index, and nothing else; the index forgets
// what is gone, so it is only as large as the store.
func TestMemoryInvalidateThroughURLIndex(t *testing.T) {
	m, err := NewMemory(64<<20, Events{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	const url = "GET h/p?q=1"
	mine := []*Entry{
		memEntry(url, "r", "\x00s:http"),
		memEntry(url, "r", "\x00s:https"),
		memEntry(url, "r", "\x00s:http\x00id:abc"),
		memEntry(url, "r", "\x00s:http\x00v:gzip"),
	}
	others := []*Entry{
		memEntry(url, "other", "\x00s:http"), // another route's
		memEntry(url+"2", "r", "\x00s:http"), // a URL extending this one
		memEntry("GET h/p?q=2", "r", "\x00s:http"),
	}
	for i := 0; i < 5000; i++ {
		others = append(others, memEntry(fmt.Sprintf("GET h/other/%d", i), "r", "\x00s:http"))
	}
	for _, e := range append(append([]*Entry{}, mine...), others...) {
		m.Set(ctx, e, 0)
	}
	n, err := m.Purge(ctx, Purge{Kind: PurgeInvalidate, Arg: url + "\x00r:r"})
	if err != nil || n != len(mine) {
		t.Fatalf("invalidated %d (%v), want %d", n, err, len(mine))
	}
	for _, e := range mine {
		if _, ok := m.Get(ctx, []byte(e.Key)); ok {
			t.Errorf("%q still stored", e.Key)
		}
	}
	for _, e := range others {
		if _, ok := m.Get(ctx, []byte(e.Key)); !ok {
			t.Errorf("%q was purged too", e.Key)
		}
	}
	// A key purge takes every route's entries for the URL.
	if n, _ := m.Purge(ctx, Purge{Kind: PurgeKey, Arg: url}); n != 1 {
		t.Errorf("key purge removed %d, want 1 (the other route's)", n)
	}
	if n, _ := m.Purge(ctx, Purge{Kind: PurgePrefix, Arg: "GET h/"}); n != len(others)-1 {
		t.Errorf("prefix purge removed %d, want %d", n, len(others)-1)
	}
	// otter reports deletions from its own goroutine: wait for them.
	testutil.WaitFor(t, "the URL index to empty with the store", func() bool {
		m.c.CleanUp()
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.urls) == 0
	})
}

// An invalidation costs the URL's entries, not the store's: compare
// -bench 'MemoryInvalidate/entries=1000' with 'entries=100000'.
func BenchmarkMemoryInvalidate(b *testing.B) {
	for _, size := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("entries=%d", size), func(b *testing.B) {
			m, _ := NewMemory(1<<30, Events{})
			defer m.Close()
			ctx := context.Background()
			for i := 0; i < size; i++ {
				m.Set(ctx, memEntry(fmt.Sprintf("GET h/%d", i), "r", "\x00s:http"), 0)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, _ = m.Purge(ctx, Purge{Kind: PurgeInvalidate, Arg: "GET h/nothing-here\x00r:r"})
			}
		})
	}
}
