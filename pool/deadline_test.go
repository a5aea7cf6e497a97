package pool

import (
	"errors"
	"os"
	"testing"
	"time"
)

// setDeadlineCoarse keeps an armed deadline only while it is at or after
// the one asked for, by at most timeout/deadlineSlack; anything else
// re-arms, and any other deadline change forgets it.
func TestSetDeadlineCoarse(t *testing.T) {
	c := quietConn(t)
	uc := c.(*upstreamConn)
	const timeout = 64 * time.Second // slack: 1 s
	base := time.Now().Add(timeout)
	steps := []struct {
		name      string
		d         time.Time
		other     func() // a deadline change by other code before this step
		wantArmed time.Time
	}{
		{name: "first: armed one slack later", d: base, wantArmed: base.Add(time.Second)},
		{name: "later within the slack: kept", d: base.Add(999 * time.Millisecond), wantArmed: base.Add(time.Second)},
		{name: "exactly at the armed one: kept", d: base.Add(time.Second), wantArmed: base.Add(time.Second)},
		{name: "past the armed one: re-armed", d: base.Add(1001 * time.Millisecond), wantArmed: base.Add(2001 * time.Millisecond)},
		{name: "earlier by more than the slack: re-armed", d: base.Add(999 * time.Millisecond), wantArmed: base.Add(1999 * time.Millisecond)},
		{name: "after a read deadline set elsewhere: re-armed", d: base, wantArmed: base.Add(time.Second),
			other: func() { _ = c.SetReadDeadline(time.Now().Add(time.Hour)) }},
	}
	for _, s := range steps {
		if s.other != nil {
			s.other()
			if a := uc.deadline.armed.Load(); a != 0 {
				t.Fatalf("%s: a deadline set elsewhere left armed at %v", s.name, time.Unix(0, a))
			}
		}
		if err := setDeadlineCoarse(c, s.d, timeout); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if a := uc.deadline.armed.Load(); a != s.wantArmed.UnixNano() {
			t.Errorf("%s: armed %v, want %v", s.name, time.Unix(0, a).Sub(base), s.wantArmed.Sub(base))
		}
	}
}

// The deadline is really on the socket: a read on a quiet connection ends
// with a timeout, and not before the deadline asked for.
func TestSetDeadlineCoarseTimesOutNeverEarly(t *testing.T) {
	c := quietConn(t)
	start := time.Now()
	d := start.Add(20 * time.Millisecond)
	if err := setDeadlineCoarse(c, d, 640*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error", err)
	}
	if now := time.Now(); now.Before(d) {
		t.Errorf("timed out %v before the deadline asked for", d.Sub(now))
	}
}

// Covers answers without a timeout what Next would keep: a deadline at
// or before the armed one, within the slack it was armed with.
func TestCoarseDeadlineCovers(t *testing.T) {
	var c CoarseDeadline
	const timeout = 64 * time.Second // slack: 1 s
	base := time.Now().Add(timeout)
	if c.Covers(base) {
		t.Fatal("nothing armed, yet covered")
	}
	if _, arm := c.Next(base, timeout); !arm {
		t.Fatal("first deadline not armed")
	}
	cases := []struct {
		name string
		d    time.Time
		want bool
	}{
		{"the deadline armed for", base, true},
		{"at the armed one", base.Add(time.Second), true},
		{"past the armed one", base.Add(time.Second + 1), false},
		{"earlier by the slack exactly", base, true},
		{"earlier by more than the slack", base.Add(-1), false},
		{"no deadline", time.Time{}, false},
	}
	for _, k := range cases {
		if got := c.Covers(k.d); got != k.want {
			t.Errorf("%s: covered %v, want %v", k.name, got, k.want)
		}
	}
	c.Forget()
	if c.Covers(base) {
		t.Error("covered after Forget")
	}
}
