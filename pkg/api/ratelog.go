package api

import (
	"sync"
	"time"
)

// logLimiter lets at most burst log lines per key through in every period,
// and counts the lines it holds back so that the next line let through can
// say how many were dropped: a flood of requests cannot flood the log.
// Keys must come from a small set (route patterns and status classes).
type logLimiter struct {
	period time.Duration
	burst  int

	mu   sync.Mutex
	keys map[string]*logWindow
}

type logWindow struct {
	start      time.Time
	n          int // lines let through in this window
	suppressed int // lines held back since the last one let through
}

func newLogLimiter(period time.Duration, burst int) *logLimiter {
	return &logLimiter{period: period, burst: burst, keys: map[string]*logWindow{}}
}

// allow reports whether a line for key may be written now, and how many
// lines for key were held back before it.
func (l *logLimiter) allow(key string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.keys[key]
	if w == nil {
		w = &logWindow{start: now}
		l.keys[key] = w
	}
	if now.Sub(w.start) >= l.period {
		w.start, w.n = now, 0
	}
	if w.n >= l.burst {
		w.suppressed++
		return false, 0
	}
	w.n++
	suppressed, w.suppressed = w.suppressed, 0
	return true, suppressed
}
