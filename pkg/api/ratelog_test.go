package api

import (
	"testing"
	"time"
)

// TestLogLimiter: at most burst lines per key in each period; the first
// line let through after some were held back says how many; keys are
// counted apart. Times are given, not waited for.
func TestLogLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLogLimiter(time.Second, 3)
	type step struct {
		key        string
		at         time.Duration // after t0
		ok         bool
		suppressed int
	}
	for i, s := range []step{
		{"a", 0, true, 0},
		{"a", 10 * time.Millisecond, true, 0},
		{"b", 20 * time.Millisecond, true, 0}, // another key: its own burst
		{"a", 30 * time.Millisecond, true, 0},
		{"a", 40 * time.Millisecond, false, 0}, // the fourth in the window
		{"a", 999 * time.Millisecond, false, 0},
		{"b", 999 * time.Millisecond, true, 0},
		{"a", time.Second, true, 2}, // a new window: two were held back
		{"a", time.Second + time.Millisecond, true, 0},
		{"a", time.Second + 2*time.Millisecond, true, 0},
		{"a", time.Second + 3*time.Millisecond, false, 0},
		{"a", 5 * time.Second, true, 1},
	} {
		ok, suppressed := l.allow(s.key, t0.Add(s.at))
		if ok != s.ok || suppressed != s.suppressed {
			t.Errorf("step %d (%s at %v): allow = %v, %d; want %v, %d", i, s.key, s.at, ok, suppressed, s.ok, s.suppressed)
		}
	}
}
