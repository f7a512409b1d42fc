package live

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/zishang520/socket.io/servers/engine/v3"
)

// clientAddrKey is the context key of the address WithClientAddr stores.
type clientAddrKey struct{}

// WithClientAddr returns r with addr recorded as the address of its client:
// the one MaxSessionsPerAddr counts sessions under. Without it (or with an
// empty addr) the host of r.RemoteAddr counts, which behind a reverse proxy
// is the proxy's, so that all clients share one cap.
//
// The router in front of Handler must set it, from the address it trusts:
// with Gin, c.ClientIP(), which believes X-Forwarded-For only from
// TRUSTED_PROXIES:
//
//	r.Any("/socket.io/*any", func(c *gin.Context) {
//		io.Handler().ServeHTTP(c.Writer, live.WithClientAddr(c.Request, c.ClientIP()))
//	})
func WithClientAddr(r *http.Request, addr string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), clientAddrKey{}, addr))
}

// clientAddr returns the address of r's client: the one WithClientAddr
// recorded, or else the host of r.RemoteAddr.
func clientAddr(r *http.Request) string {
	if addr, _ := r.Context().Value(clientAddrKey{}).(string); addr != "" {
		return addr
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// addrKey returns the key sessions from addr are counted under: an IPv4
// address itself (an IPv4-mapped IPv6 address as IPv4), an IPv6 address
// by its /64, which is what one host or one network is given (else one
// host could take the server with addresses from its /64), and anything
// else as it is. A port, if any, is dropped.
func addrKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return addr
		}
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}

// addrLimiter counts the sessions of each client address, and the
// handshakes under way from it, for MaxSessionsPerAddr. An address is in
// the map only while it has some: the map holds at most as many entries
// as there are sessions and handshakes.
type addrLimiter struct {
	max int // MaxSessionsPerAddr; negative: no cap
	log *slog.Logger

	mu     sync.Mutex
	byAddr map[string]*addrCount
}

type addrCount struct {
	n int // sessions and handshakes under way
	// refusing: a handshake was refused since n was last at half the cap
	// or below. The address is logged when it is set and when it is
	// cleared, not at each refusal.
	refusing bool
	refused  uint64 // handshakes refused while refusing
}

// addrSlotKey is the context key of a handshake's *addrSlot, for track.
type addrSlotKey struct{}

// addrSlot is a handshake's place under its address. The session the
// handshake opens takes it over (adopt) and gives it back when it closes
// (release); a handshake that opens none gives it back when it returns
// (endHandshake). Its fields are guarded by addrLimiter.mu.
type addrSlot struct {
	key     string
	adopted bool // a session took it over
	done    bool // the handshake returned
}

func newAddrLimiter(max int, log *slog.Logger) *addrLimiter {
	return &addrLimiter{max: max, log: log, byAddr: map[string]*addrCount{}}
}

// reserve takes a place for a handshake from key, unless the address's
// sessions and handshakes are at the cap.
func (l *addrLimiter) reserve(key string) (*addrSlot, bool) {
	l.mu.Lock()
	c := l.byAddr[key]
	if c == nil {
		c = &addrCount{}
		l.byAddr[key] = c
	}
	if l.max < 0 || c.n < l.max {
		c.n++
		l.mu.Unlock()
		return &addrSlot{key: key}, true
	}
	c.refused++
	first := !c.refusing
	c.refusing = true
	l.mu.Unlock()
	if first {
		l.log.Warn("socket.io sessions from one address at its cap: refusing its handshakes",
			"addr", key, "max_sessions_per_addr", l.max)
	}
	return nil, false
}

// adopt hands the place of the handshake h over to the session it opened.
// The session gives it back with release.
func (l *addrLimiter) adopt(h *addrSlot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !h.done {
		h.adopted = true
		return
	}
	// The handshake has returned and given its place back (the library
	// announced the session late): the session takes one of its own.
	c := l.byAddr[h.key]
	if c == nil {
		c = &addrCount{}
		l.byAddr[h.key] = c
	}
	c.n++
}

// endHandshake gives back the place of handshake h unless a session took
// it over.
func (l *addrLimiter) endHandshake(h *addrSlot) {
	l.mu.Lock()
	h.done = true
	adopted := h.adopted
	l.mu.Unlock()
	if !adopted {
		l.release(h.key)
	}
}

// release gives back one place of key's, and forgets the address when it
// has none left.
func (l *addrLimiter) release(key string) {
	l.mu.Lock()
	c := l.byAddr[key]
	if c == nil {
		l.mu.Unlock()
		return
	}
	c.n--
	var relieved bool
	if c.refusing && (c.n <= 0 || c.n <= l.max/2) {
		c.refusing, relieved = false, true
	}
	refused := c.refused
	if relieved {
		c.refused = 0
	}
	if c.n <= 0 {
		delete(l.byAddr, key)
	}
	n := max(c.n, 0)
	l.mu.Unlock()
	if relieved {
		l.log.Info("socket.io sessions from one address well below its cap again",
			"addr", key, "sessions", n, "max_sessions_per_addr", l.max, "refused", refused)
	}
}

// count returns the sessions and handshakes of key, and the number of
// addresses that have some.
func (l *addrLimiter) count(key string) (n, addrs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.byAddr[key]; c != nil {
		n = c.n
	}
	return n, len(l.byAddr)
}

// adoptAddr hands the place that conn's handshake took under its client's
// address over to the session conn, and returns the address's key.
func (s *Server) adoptAddr(conn engine.Socket) string {
	var r *http.Request
	if ctx := conn.Request(); ctx != nil {
		r = ctx.Request()
	}
	if r == nil {
		r = &http.Request{}
	}
	slot, _ := r.Context().Value(addrSlotKey{}).(*addrSlot)
	if slot == nil {
		// Not a handshake of serveHTTP: the session takes a place of
		// its own.
		slot = &addrSlot{key: addrKey(clientAddr(r)), done: true}
	}
	s.addrs.adopt(slot)
	return slot.key
}
