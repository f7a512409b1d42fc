package live

import (
	"context"
	"net"
	"net/http"
	"net/netip"
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
