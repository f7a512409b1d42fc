package testutil

import (
	"testing"
	"time"
)

// TestPoll: Poll returns once the condition holds, checking it as often as
// it takes; with a condition that never holds it gives up only after the
// limit, having checked it more than once.
func TestPoll(t *testing.T) {
	n := 0
	if !Poll(time.Minute, 0, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("Poll of a condition true at the third check: checked %d times", n)
	}
	const limit = 20 * time.Millisecond
	n = 0
	start := time.Now()
	if Poll(limit, time.Millisecond, func() bool { n++; return false }) {
		t.Error("Poll of a condition never true reported true")
	}
	if took := time.Since(start); took < limit || n < 2 {
		t.Errorf("Poll gave up after %v and %d checks, want at least %v and 2", took, n, limit)
	}
	n = 0
	Eventually(t, time.Minute, "the third check", func() bool { n++; return n == 3 })
}
