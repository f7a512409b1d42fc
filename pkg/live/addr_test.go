package live

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mnist-go/nnserver/internal/testutil"
)

// addrHeader carries a test client's address to the router of startRouted.
const addrHeader = "X-Test-Client-Addr"

// startRouted is start with a router in front of the server, as pkg/api
// has: it hands the server the client address of each request (here from
// addrHeader, when set) with WithClientAddr.
func startRouted(t *testing.T, o Options) (*Server, string) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := New(o)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if addr := r.Header.Get(addrHeader); addr != "" {
			r = WithClientAddr(r, addr)
		}
		s.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	t.Cleanup(s.Close)
	return s, hs.URL
}

// handshakeURL is the URL of a polling handshake.
func handshakeURL(base string) string { return base + "/socket.io/?EIO=4&transport=polling" }

// handshakeFrom opens a polling session from addr ("": the connection's).
func handshakeFrom(t *testing.T, base, addr string) *poller {
	t.Helper()
	status, body, _ := do(t, http.MethodGet, handshakeURL(base), "", fromAddr(addr))
	if status != http.StatusOK || !strings.HasPrefix(body, "0{") {
		t.Fatalf("handshake from %q: %d %q", addr, status, body)
	}
	p := &poller{t: t, base: base, sid: body[strings.Index(body, `"sid":"`)+7:]}
	p.sid = p.sid[:strings.IndexByte(p.sid, '"')]
	return p
}

// dialFrom opens a WebSocket session from addr without joining "/".
func dialFrom(t *testing.T, base, addr string) *client {
	t.Helper()
	ws, res, err := websocket.DefaultDialer.Dial(wsURL(base), fromAddr(addr))
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial from %q: %v (HTTP %d)", addr, err, status)
	}
	t.Cleanup(func() { ws.Close() })
	c := &client{t, ws}
	if open := c.read(); !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %q", open)
	}
	return c
}

func fromAddr(addr string) http.Header {
	if addr == "" {
		return nil
	}
	return http.Header{addrHeader: {addr}}
}

const (
	bodyAddrFull   = `{"code":503,"message":"Too many sessions from this address, retry later"}`
	bodyServerFull = `{"code":503,"message":"Too many sessions, retry later"}`
)

// refused checks that a polling handshake from addr gets 503 with body,
// Retry-After, and CORS, and that a WebSocket handshake gets 503 too.
func refused(t *testing.T, base, addr, body string) {
	t.Helper()
	h := fromAddr(addr)
	if h == nil {
		h = http.Header{}
	}
	h.Set("Origin", "http://example.com")
	status, got, rh := do(t, http.MethodGet, handshakeURL(base), "", h)
	if status != http.StatusServiceUnavailable || got != body ||
		rh.Get("Retry-After") != strconv.Itoa(int(RetryAfter.Seconds())) ||
		rh.Get("Access-Control-Allow-Origin") != "*" || rh.Get("Content-Type") != "application/json" {
		t.Fatalf("handshake from %q: %d %q %v, want 503 %s", addr, status, got, rh, body)
	}
	_, res, err := websocket.DefaultDialer.Dial(wsURL(base), fromAddr(addr))
	if err == nil || res == nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("WebSocket handshake from %q: %v %v, want 503", addr, err, res)
	}
}

// addrSessions returns the sessions and handshakes counted under key.
func (s *Server) addrSessions(key string) int {
	n, _ := s.addrs.count(key)
	return n
}

// addrsTracked returns the number of addresses with sessions or
// handshakes counted.
func (s *Server) addrsTracked() int {
	_, n := s.addrs.count("")
	return n
}

// idle waits until the server has no session and counts none by address.
func idle(t *testing.T, s *Server) {
	t.Helper()
	testutil.Eventually(t, waitLimit, "no session, and none counted by address", func() bool {
		return s.Sessions() == 0 && s.tracked() == 0 && s.addrsTracked() == 0
	})
}

// An address at its cap is refused, polling and WebSocket alike; other
// addresses still connect. Sessions and handshakes are counted by address.
func TestMaxSessionsPerAddr(t *testing.T) {
	t.Parallel()
	const max = 4
	s, base := startRouted(t, Options{MaxSessionsPerAddr: max})
	a, b := "198.51.100.7", "203.0.113.9"
	var ps []*poller
	for range max - 1 {
		ps = append(ps, handshakeFrom(t, base, a))
	}
	ws := dialFrom(t, base, a)
	for range 3 {
		refused(t, base, a, bodyAddrFull)
	}
	if n := s.addrSessions(a); n != max {
		t.Errorf("%s: %d counted, want %d", a, n, max)
	}
	// Another address connects, both ways, and joins.
	handshakeFrom(t, base, b).join()
	dialFrom(t, base, b)
	if n, all := s.addrSessions(b), s.Sessions(); n != 2 || all != max+2 {
		t.Errorf("%s: %d counted, %d sessions in all; want 2 and %d", b, n, all, max+2)
	}
	if n := s.addrsTracked(); n != 2 {
		t.Errorf("%d addresses counted, want 2", n)
	}
	// The sessions at the cap work: they join "/".
	ps[0].join()
	if err := ws.ws.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	if ack := ws.read(); !strings.HasPrefix(ack, `40{"sid":`) {
		t.Fatalf("connect ack %q", ack)
	}
	testutil.Eventually(t, waitLimit, "three clients joined", func() bool { return s.Clients() == 3 })
}

// Every way a session ends gives its place under its address back: the
// address can open as many sessions again, and is forgotten once it has
// none.
func TestAddrPlacesFreed(t *testing.T) {
	t.Parallel()
	const max = 3
	// A body of connects to a namespace that does not exist: each queues a
	// CONNECT_ERROR, more than MaxQueuedPackets.
	tooMany := strings.TrimSuffix(strings.Repeat("40/nope,\x1e", 20), "\x1e")
	for _, tc := range []struct {
		name string
		opts Options
		// open opens a session from addr and returns what ends it; nil
		// if it ends by itself (a timeout).
		open func(t *testing.T, base, addr string) func()
	}{
		{"client close over polling", Options{}, func(t *testing.T, base, addr string) func() {
			p := handshakeFrom(t, base, addr)
			p.join()
			return func() {
				if status, body := p.post("1"); status != http.StatusOK {
					t.Errorf("close packet: %d %q", status, body)
				}
			}
		}},
		{"client close over WebSocket", Options{}, func(t *testing.T, base, addr string) func() {
			c := dialFrom(t, base, addr)
			return func() {
				c.ws.WriteMessage(websocket.TextMessage, []byte("1"))
				if code := c.closeCode(); code != websocket.CloseNormalClosure {
					t.Errorf("close code %d, want 1000", code)
				}
			}
		}},
		{"WebSocket connection dropped", Options{}, func(t *testing.T, base, addr string) func() {
			c := dialFrom(t, base, addr)
			return func() { c.ws.Close() }
		}},
		{"connect timeout, polling", Options{ConnectTimeout: 200 * time.Millisecond}, func(t *testing.T, base, addr string) func() {
			handshakeFrom(t, base, addr)
			return nil
		}},
		{"connect timeout, WebSocket", Options{ConnectTimeout: 200 * time.Millisecond}, func(t *testing.T, base, addr string) func() {
			dialFrom(t, base, addr)
			return nil
		}},
		{"ping timeout", Options{PingInterval: 300 * time.Millisecond, PingTimeout: 100 * time.Millisecond}, func(t *testing.T, base, addr string) func() {
			handshakeFrom(t, base, addr).join() // and then it neither polls nor pongs
			return nil
		}},
		{"queue bound", Options{MaxQueuedPackets: 8}, func(t *testing.T, base, addr string) func() {
			p := handshakeFrom(t, base, addr)
			p.join()
			return func() { p.post(tooMany) }
		}},
		{"invalid payload", Options{}, func(t *testing.T, base, addr string) func() {
			p := handshakeFrom(t, base, addr)
			return func() {
				if status, _ := p.post("abc"); status != http.StatusBadRequest {
					t.Errorf("invalid payload: %d, want 400", status)
				}
			}
		}},
		{"binary packet", Options{}, func(t *testing.T, base, addr string) func() {
			c := dialFrom(t, base, addr)
			return func() {
				c.ws.WriteMessage(websocket.BinaryMessage, []byte{4, 1})
				if code := c.closeCode(); code != websocket.ClosePolicyViolation {
					t.Errorf("close code %d, want 1008", code)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.MaxSessionsPerAddr = max
			s, base := startRouted(t, tc.opts)
			const addr = "192.0.2.33"
			for round := range 2 {
				var ends []func()
				for range max {
					if end := tc.open(t, base, addr); end != nil {
						ends = append(ends, end)
					}
				}
				if len(ends) == max {
					// Not ending by themselves: the address is at its cap.
					refused(t, base, addr, bodyAddrFull)
					if n := s.addrSessions(addr); n != max {
						t.Fatalf("round %d: %d counted, want %d", round, n, max)
					}
				}
				for _, end := range ends {
					end()
				}
				idle(t, s)
			}
		})
	}
}

// Close ends every session: no address is counted any more. Handshakes
// refused by Close leave no count either.
func TestAddrCountsAfterClose(t *testing.T) {
	t.Parallel()
	s, base := startRouted(t, Options{MaxSessionsPerAddr: 3})
	addrs := []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}
	var codes []chan int
	for _, addr := range addrs {
		handshakeFrom(t, base, "") // from the connection's address, and never polls
		handshakeFrom(t, base, addr).join()
		handshakeFrom(t, base, addr)
		c := dialFrom(t, base, addr)
		code := make(chan int, 1)
		go func() { code <- c.closeCode() }()
		codes = append(codes, code)
	}
	if n := s.addrsTracked(); n != len(addrs)+1 {
		t.Fatalf("%d addresses counted, want %d", n, len(addrs)+1)
	}
	s.Close()
	for _, code := range codes {
		if c := <-code; c != websocket.CloseGoingAway {
			t.Errorf("close code %d, want 1001", c)
		}
	}
	idle(t, s)
	for _, addr := range addrs {
		refused(t, base, addr, bodyServerFull) // closing
	}
	if n := s.addrsTracked(); n != 0 {
		t.Errorf("%d addresses counted after refused handshakes", n)
	}
}

// Handshakes that fail before a session is opened give their place back.
func TestAddrPlaceOfFailedHandshake(t *testing.T) {
	t.Parallel()
	s, base := startRouted(t, Options{MaxSessionsPerAddr: 1})
	const addr = "192.0.2.44"
	for _, tc := range []struct{ name, query string }{
		{"unknown transport", "?EIO=4&transport=nope"},
		{"no transport", "?EIO=4"},
		{"Engine.IO 3", "?EIO=3&transport=polling"},
		{"WebSocket without an upgrade", "?EIO=4&transport=websocket"},
	} {
		status, body, _ := do(t, http.MethodGet, base+"/socket.io/"+tc.query, "", fromAddr(addr))
		if status != http.StatusBadRequest {
			t.Errorf("%s: %d %q, want 400", tc.name, status, body)
		}
		if n := s.addrsTracked(); n != 0 {
			t.Fatalf("%s: %d addresses counted after the handshake failed", tc.name, n)
		}
	}
	// The one place is free.
	handshakeFrom(t, base, addr)
	if n := s.addrSessions(addr); n != 1 {
		t.Errorf("%d counted, want 1", n)
	}
}

// The address of WithClientAddr counts, not RemoteAddr's; without it,
// RemoteAddr's host does.
func TestWithClientAddr(t *testing.T) {
	t.Parallel()
	s, base := startRouted(t, Options{MaxSessionsPerAddr: 2})
	const addr = "203.0.113.50"
	handshakeFrom(t, base, "")
	dialFrom(t, base, "")
	refused(t, base, "", bodyAddrFull)
	handshakeFrom(t, base, addr) // same connection address, another client address
	dialFrom(t, base, addr)
	refused(t, base, addr, bodyAddrFull)
	for key, want := range map[string]int{"127.0.0.1": 2, addr: 2} {
		if n := s.addrSessions(key); n != want {
			t.Errorf("%s: %d counted, want %d", key, n, want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ remote, given, want string }{
		{"192.0.2.1:5000", "", "192.0.2.1"},
		{"192.0.2.1:5000", "203.0.113.1", "203.0.113.1"},
		{"[2001:db8::1]:443", "", "2001:db8::1"},
		{"192.0.2.1", "", "192.0.2.1"}, // no port
		{"", "", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "/socket.io/", nil)
		r.RemoteAddr = tc.remote
		if tc.given != "" {
			r = WithClientAddr(r, tc.given)
		}
		if got := clientAddr(r); got != tc.want {
			t.Errorf("RemoteAddr %q, WithClientAddr %q: %q, want %q", tc.remote, tc.given, got, tc.want)
		}
	}
	for addr, want := range map[string]string{
		"192.0.2.1":                       "192.0.2.1",
		"::ffff:192.0.2.1":                "192.0.2.1",
		"192.0.2.1:80":                    "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":            "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff:ffff:fff": "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:443":           "2001:db8:1:2::/64",
		"fe80::1%eth0":                    "fe80::/64",
		"::1":                             "::/64",
		"not an address":                  "not an address",
		"":                                "",
	} {
		if got := addrKey(addr); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", addr, got, want)
		}
	}
}

// IPv6 clients count by their /64.
func TestMaxSessionsPerAddrIPv6(t *testing.T) {
	t.Parallel()
	s, base := startRouted(t, Options{MaxSessionsPerAddr: 2})
	handshakeFrom(t, base, "2001:db8:0:1::1")
	handshakeFrom(t, base, "2001:db8:0:1::2")
	refused(t, base, "2001:db8:0:1:ffff::3", bodyAddrFull)
	handshakeFrom(t, base, "2001:db8:0:2::1")
	if n := s.addrSessions("2001:db8:0:1::/64"); n != 2 {
		t.Errorf("%d counted, want 2", n)
	}
}

// The global cap still holds, and refuses with its own message; a handshake
// it refuses leaves no count under its address.
func TestMaxSessionsWithPerAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		perAddr   int
		wantAddrA int // sessions address A gets
	}{
		{"per-address cap below the global one", 3, 3},
		{"no per-address cap", -1, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const max = 5
			s, base := startRouted(t, Options{MaxSessions: max, MaxSessionsPerAddr: tc.perAddr})
			a, b := "192.0.2.10", "192.0.2.11"
			for range tc.wantAddrA {
				handshakeFrom(t, base, a)
			}
			if tc.perAddr > 0 {
				refused(t, base, a, bodyAddrFull)
			}
			for range max - tc.wantAddrA {
				handshakeFrom(t, base, b)
			}
			refused(t, base, b, bodyServerFull)
			refused(t, base, "192.0.2.12", bodyServerFull)
			if n, m := s.addrSessions(a), s.addrSessions(b); n != tc.wantAddrA || m != max-tc.wantAddrA {
				t.Errorf("counted %d and %d, want %d and %d", n, m, tc.wantAddrA, max-tc.wantAddrA)
			}
			if n := s.addrsTracked(); n != 1+min(1, max-tc.wantAddrA) {
				t.Errorf("%d addresses counted", n)
			}
		})
	}
}

// Concurrent handshakes from one address: exactly the cap get in.
func TestMaxSessionsPerAddrConcurrent(t *testing.T) {
	t.Parallel()
	const (
		max      = 10
		attempts = 60
	)
	s, base := startRouted(t, Options{MaxSessionsPerAddr: max})
	const addr = "192.0.2.99"
	var (
		wg           sync.WaitGroup
		mu           sync.Mutex
		ok, rejected int
	)
	for range attempts {
		wg.Go(func() {
			status, body, _ := do(t, http.MethodGet, handshakeURL(base), "", fromAddr(addr))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == http.StatusOK:
				ok++
			case status == http.StatusServiceUnavailable && body == bodyAddrFull:
				rejected++
			default:
				t.Errorf("handshake: %d %q", status, body)
			}
		})
	}
	wg.Wait()
	if ok != max || rejected != attempts-max {
		t.Errorf("%d admitted, %d refused; want %d and %d", ok, rejected, max, attempts-max)
	}
	if n, all := s.addrSessions(addr), s.Sessions(); n != max || all != max {
		t.Errorf("%d counted, %d sessions; want %d", n, all, max)
	}
}

// syncBuffer is a log destination for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) lines(substr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.b.String(), substr)
}

// An address at its cap is logged once, not for each refused handshake,
// and once more when it is down to half its cap; then again if it is
// refused again.
func TestMaxSessionsPerAddrLogged(t *testing.T) {
	t.Parallel()
	const (
		max     = 4
		atCap   = "socket.io sessions from one address at its cap"
		relieve = "socket.io sessions from one address well below its cap again"
	)
	var logs syncBuffer
	s, base := startRouted(t, Options{MaxSessionsPerAddr: max, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const addr = "192.0.2.77"
	var ps []*poller
	for range max {
		ps = append(ps, handshakeFrom(t, base, addr))
	}
	for range 5 {
		refused(t, base, addr, bodyAddrFull) // twice each: polling and WebSocket
	}
	if n, m := logs.lines(atCap), logs.lines(relieve); n != 1 || m != 0 {
		t.Fatalf("%d lines at the cap, %d below, want 1 and 0:\n%s", n, m, logs.b.String())
	}
	if n := logs.lines("addr=" + addr); n != 1 {
		t.Errorf("the line names the address %d times", n)
	}
	// Down to 3: still refusing as far as the log goes.
	end := func(p *poller) {
		t.Helper()
		if status, _ := p.post("1"); status != http.StatusOK {
			t.Fatal("close packet not accepted")
		}
	}
	end(ps[0])
	testutil.Eventually(t, waitLimit, "one session closed", func() bool { return s.addrSessions(addr) == max-1 })
	handshakeFrom(t, base, addr)
	refused(t, base, addr, bodyAddrFull)
	if n, m := logs.lines(atCap), logs.lines(relieve); n != 1 || m != 0 {
		t.Fatalf("%d lines at the cap, %d below, want 1 and 0:\n%s", n, m, logs.b.String())
	}
	// Down to half the cap.
	end(ps[1])
	end(ps[2])
	testutil.Eventually(t, waitLimit, "at half the cap, and logged", func() bool { return s.addrSessions(addr) == max/2 && logs.lines(relieve) == 1 })
	if n := logs.lines(atCap); n != 1 || logs.lines("refused=12") != 1 {
		t.Fatalf("%d lines at the cap, want 1, and 12 refused:\n%s", n, logs.b.String())
	}
	for range max / 2 {
		handshakeFrom(t, base, addr)
	}
	refused(t, base, addr, bodyAddrFull)
	if n := logs.lines(atCap); n != 2 {
		t.Fatalf("%d lines at the cap, want 2:\n%s", n, logs.b.String())
	}
}
