package cache

import (
	"reflect"
	"testing"
	"time"
)

func TestEntryMarshalRoundTrip(t *testing.T) {
	e := &Entry{Key: "GET a/b?c=1", Route: "r", Status: 200,
		Header: []Field{{[]byte("Content-Type"), []byte("text/plain")}, {[]byte("ETag"), []byte(`"x"`)}},
		Body:   []byte("hello"), ResponseTime: 1, InitialAge: 2, Lifetime: 3, SWR: 4, SIE: -5,
		MustRevalidate: true, ETag: []byte(`"x"`), LastModified: []byte("Wed, 01 Jan 2025 00:00:00 GMT"),
		Tags: []string{"a", "b"}, Vary: []string{"accept-language"}}
	got, err := Unmarshal(e.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
	}
	for i := range len(e.Marshal()) {
		if _, err := Unmarshal(e.Marshal()[:i]); err == nil {
			t.Fatalf("a %d-byte prefix decoded", i)
		}
	}
}

// FuzzUnmarshal: bytes from Redis (possibly another writer's, or
// garbage) never panic, and what decodes encodes back the same.
func FuzzUnmarshal(f *testing.F) {
	e := &Entry{Key: "k", Status: 200, Body: []byte("b"), Header: []Field{{[]byte("A"), []byte("B")}}, Tags: []string{"t"}}
	f.Add(e.Marshal())
	f.Add([]byte("SLC1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := Unmarshal(got.Marshal())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("decoded entry does not round-trip: %v", err)
		}
	})
}

// An entry from the shared store whose fields could split the answer or
// set a cookie is refused (a tampered or foreign Redis value).
func TestUnmarshalRefusesUnsafeFields(t *testing.T) {
	for _, f := range []Field{
		{[]byte("X-A"), []byte("v\r\nSet-Cookie: s=1")},
		{[]byte("X-A\r\nX-B"), []byte("v")},
		{[]byte("Set-Cookie"), []byte("s=1")},
		{[]byte(""), []byte("v")},
	} {
		e := &Entry{Key: "k", Status: 200, Header: []Field{f}}
		if _, err := Unmarshal(e.Marshal()); err == nil {
			t.Errorf("%q: %q accepted", f.Name, f.Value)
		}
	}
}

func TestEntryFreshness(t *testing.T) {
	now := time.Now().UnixNano()
	e := &Entry{ResponseTime: now, InitialAge: int64(10 * time.Second), Lifetime: int64(60 * time.Second)}
	if !e.Fresh(now) || e.Age(now+int64(5*time.Second)) != int64(15*time.Second) {
		t.Fatalf("age %d", e.Age(now+int64(5*time.Second)))
	}
	if e.Fresh(now + int64(50*time.Second)) {
		t.Fatal("fresh past its lifetime (RFC 9111 4.2: age 60s >= lifetime 60s)")
	}
	e.NoCache = true
	if e.Fresh(now) {
		t.Fatal("a no-cache entry is never fresh (RFC 9111 5.2.2.4)")
	}
}
