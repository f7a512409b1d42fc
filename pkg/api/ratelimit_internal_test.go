package api

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock is a time that only the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) add(d time.Duration)     { c.t = c.t.Add(d) }
func newClock() *fakeClock                   { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func (l *addrLimiter) ok(addr string) bool   { ok, _ := l.allow(addr); return ok }
func (l *addrLimiter) wait(addr string) bool { _, d := l.allow(addr); return d > 0 }

// TestAddrLimiter: a minute's worth at once, then one every 60/n seconds;
// each address its own bucket; a refused request takes no token; how long
// to wait is said.
func TestAddrLimiter(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perMinute int
	}{
		{"one a minute", 1},
		{"60 a minute", 60},
		{"120 a minute", 120},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			l := newAddrLimiter("things", tc.perMinute, clock.now)
			for i := range tc.perMinute {
				if !l.ok("192.0.2.1") {
					t.Fatalf("request %d of a burst of %d refused", i+1, tc.perMinute)
				}
			}
			ok, retry := l.allow("192.0.2.1")
			step := time.Minute / time.Duration(tc.perMinute)
			if ok || retry <= 0 || retry > step {
				t.Fatalf("past the burst: ok %v, retry %v; want refused, at most %v", ok, retry, step)
			}
			// The refusals took nothing: after one step, one more goes.
			for range 5 {
				l.allow("192.0.2.1")
			}
			clock.add(step)
			if !l.ok("192.0.2.1") || l.ok("192.0.2.1") {
				t.Errorf("one step later: want exactly one more")
			}
			if !l.ok("192.0.2.2") {
				t.Error("another address shares the bucket")
			}
		})
	}
	if newAddrLimiter("things", 0, time.Now) != nil {
		t.Error("0 a minute is a limiter, want none")
	}
}

// TestAddrLimiterIsBounded: the buckets kept stay within max, however many
// addresses come; idle ones (full again) go first, so a busy address keeps
// its bucket while others come and go.
func TestAddrLimiterIsBounded(t *testing.T) {
	clock := newClock()
	l := newAddrLimiter("things", 2, clock.now)
	l.max = 100
	// The busy address uses up its bucket.
	l.ok("busy")
	l.ok("busy")
	if !l.wait("busy") {
		t.Fatal("busy is not refused")
	}
	for i := range 1000 {
		l.ok(fmt.Sprintf("198.51.100.%d", i))
		if n := l.tracked(); n > l.max {
			t.Fatalf("%d addresses tracked, more than %d", n, l.max)
		}
		if i%99 == 98 {
			clock.add(time.Minute) // the ones before are idle now; busy is not: it keeps asking
			l.allow("busy")
			l.allow("busy")
		}
	}
	if !l.wait("busy") {
		t.Error("the busy address lost its bucket to idle ones")
	}
}
