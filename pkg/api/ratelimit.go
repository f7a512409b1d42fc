package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// RateLimits bound how often one client address (c.ClientIP(): behind
// TRUSTED_PROXIES, the forwarded one) may create networks, start training
// jobs and import networks: each is a token bucket of that many requests
// a minute, which holds as many (a burst of a whole minute's worth is
// allowed). 0: no bound. Past it, the request is answered 429 with
// Retry-After.
type RateLimits struct {
	Create, Train, Import int
}

// DefaultRateLimits are what a classroom of about 30 behind one NAT
// address does not reach, even at the start of a lesson when everyone
// creates a network or two in the same minute and then trains one every
// 20 seconds, while one script in a loop is held to a request a second (or
// two for training). docs/DEPLOY.md gives the reasoning.
func DefaultRateLimits() RateLimits { return RateLimits{Create: 60, Train: 120, Import: 30} }

// maxTrackedAddrs bounds the addresses whose buckets are kept: about 100
// bytes each. Past it, buckets that have filled up again (idle for a
// minute: dropping them changes nothing) are dropped, at most once a
// second; failing that, one at random.
const maxTrackedAddrs = 10_000

// addrLimiter is one token bucket per client address for one kind of
// request. It is safe for concurrent use.
type addrLimiter struct {
	what      string // "networks created", for the message
	perMinute int
	max       int // addresses tracked at most
	now       func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

// newAddrLimiter returns a limiter of perMinute requests a minute per
// address, or nil (no bound) for perMinute 0.
func newAddrLimiter(what string, perMinute int, now func() time.Time) *addrLimiter {
	if perMinute <= 0 {
		return nil
	}
	return &addrLimiter{what: what, perMinute: perMinute, max: maxTrackedAddrs, now: now, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token of addr's bucket, or says how long until there is
// one.
func (l *addrLimiter) allow(addr string) (ok bool, retry time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[addr]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.makeRoom(now)
		}
		b = rate.NewLimiter(rate.Limit(float64(l.perMinute)/60), l.perMinute)
		l.buckets[addr] = b
	}
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // the token is not taken: the request is refused
		return false, d
	}
	return true, 0
}

// makeRoom drops the buckets that are full again (as good as new), at
// most once a second; if none is, or it is too soon, one at random. l.mu
// is held.
func (l *addrLimiter) makeRoom(now time.Time) {
	if now.Sub(l.lastSweep) >= time.Second {
		l.lastSweep = now
		for addr, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.perMinute) {
				delete(l.buckets, addr)
			}
		}
	}
	for addr := range l.buckets { // map order is random
		if len(l.buckets) < l.max {
			break
		}
		delete(l.buckets, addr)
	}
}

// tracked returns the number of addresses with a bucket.
func (l *addrLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// rateLimited answers 429 with Retry-After, before anything else is read,
// when the client's address has used up l's bucket; a nil l lets every
// request through.
func rateLimited(l *addrLimiter) gin.HandlerFunc {
	return func(c *gin.Context) {
		if l == nil {
			return
		}
		ok, retry := l.allow(c.ClientIP())
		if ok {
			return
		}
		secs := int(math.Ceil(retry.Seconds()))
		c.Header("Retry-After", strconv.Itoa(max(1, secs)))
		writeError(c, http.StatusTooManyRequests, fmt.Sprintf(
			"too many %s from your address (at most %d a minute); try again in %d s", l.what, l.perMinute, max(1, secs)))
	}
}
