package live

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mnist-go/nnserver/internal/testutil"
)

// A4: CORS on /socket.io/ is "*" without credentials, preflights and errors
// included.
func TestCORS(t *testing.T) {
	_, base := start(t, Options{})
	origin := http.Header{"Origin": {"http://example.com"}}
	check := func(what string, h http.Header) {
		t.Helper()
		if got := h.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want *", what, got)
		}
		if got := h.Values("Access-Control-Allow-Credentials"); len(got) != 0 {
			t.Errorf("%s: Access-Control-Allow-Credentials %q, want none", what, got)
		}
	}
	status, body, h := do(t, http.MethodGet, base+"/socket.io/?EIO=4&transport=polling", "", origin)
	if status != http.StatusOK {
		t.Fatalf("handshake: %d %q", status, body)
	}
	check("handshake", h)
	sid := body[strings.Index(body, `"sid":"`)+7:]
	sid = sid[:strings.IndexByte(sid, '"')]
	url := base + "/socket.io/?EIO=4&transport=polling&sid=" + sid

	status, _, h = do(t, http.MethodPost, url, "40", origin)
	if status != http.StatusOK {
		t.Fatalf("POST: %d", status)
	}
	check("POST", h)

	preflight := http.Header{
		"Origin": {"http://example.com"}, "Access-Control-Request-Method": {"POST"},
		"Access-Control-Request-Headers": {"content-type"},
	}
	status, _, h = do(t, http.MethodOptions, url, "", preflight)
	if status != http.StatusNoContent {
		t.Errorf("preflight: %d, want 204", status)
	}
	check("preflight", h)
	if m := h.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") {
		t.Errorf("preflight: Access-Control-Allow-Methods %q", m)
	}
	if m := strings.ToLower(h.Get("Access-Control-Allow-Headers")); !strings.Contains(m, "content-type") {
		t.Errorf("preflight: Access-Control-Allow-Headers %q", m)
	}

	_, _, h = do(t, http.MethodGet, base+"/socket.io/?EIO=4&transport=polling&sid=nope", "", origin)
	check("unknown sid", h)
	_, _, h = do(t, http.MethodPut, url, "", origin)
	check("PUT", h)

	// A WebSocket from another origin is accepted.
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(base), origin)
	if err != nil {
		t.Fatalf("WebSocket with an Origin: %v", err)
	}
	ws.Close()
}

// B1: methods Engine.IO does not use get 400 and an Engine.IO error body,
// as a POST without sid does.
func TestOtherMethods(t *testing.T) {
	s, base := start(t, Options{})
	p := handshake(t, base)
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch, "PROPFIND"} {
		status, body, h := do(t, m, base+"/socket.io/?EIO=4&transport=polling", "x", nil)
		if status != http.StatusBadRequest || body != `{"code":2,"message":"Bad handshake method"}` ||
			h.Get("Content-Type") != "application/json" {
			t.Errorf("%s without sid: %d %q", m, status, body)
		}
		status, body, _ = do(t, m, p.url(), "x", nil)
		if status != http.StatusBadRequest || body != `{"code":3,"message":"Bad request"}` {
			t.Errorf("%s with sid: %d %q", m, status, body)
		}
	}
	status, body, _ := do(t, http.MethodPost, base+"/socket.io/?EIO=4&transport=polling", "40", nil)
	if status != http.StatusBadRequest || body != `{"code":2,"message":"Bad handshake method"}` {
		t.Errorf("POST without sid: %d %q", status, body)
	}
	// JSONP is not offered.
	status, body, _ = do(t, http.MethodGet, base+"/socket.io/?EIO=4&transport=polling&j=0", "", nil)
	if status != http.StatusBadRequest || body != `{"code":0,"message":"Transport unknown"}` {
		t.Errorf("JSONP handshake: %d %q", status, body)
	}
	// The session is untouched.
	if status, _ := p.post("40"); status != http.StatusOK || s.Sessions() != 1 {
		t.Errorf("session after the refused requests: %d, %d sessions", status, s.Sessions())
	}
}

// B2: a close packet over WebSocket closes the session and the connection
// at once, with a close frame.
func TestClosePacketOverWebSocket(t *testing.T) {
	s, base := start(t, Options{})
	for _, joined := range []bool{false, true} {
		var c *client
		if joined {
			c = dial(t, base)
		} else {
			c = dialRaw(t, base)
		}
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte("1")); err != nil {
			t.Fatal(err)
		}
		if code := c.closeCode(); code != websocket.CloseNormalClosure {
			t.Errorf("joined %v: close code %d, want 1000", joined, code)
		}
		// Closed right after the connect acknowledgement: the socket
		// leaves "/" too.
		testutil.Eventually(t, waitLimit, "the session is closed", func() bool { return s.Sessions() == 0 && s.Clients() == 0 })
	}
}

// B3: an invalid packet over long-polling gets 400 and closes the session;
// the next poll gets 400 at once.
func TestInvalidPollingPayload(t *testing.T) {
	s, base := start(t, Options{})
	for _, body := range []string{"abc", "40\x1eabc", "b!!!", "\x00"} {
		p := handshake(t, base)
		if status, text := p.post(body); status != http.StatusBadRequest || text != `{"code":3,"message":"Bad request"}` {
			t.Errorf("POST %q: %d %q, want 400", body, status, text)
		}
		start := time.Now()
		if status, text := p.get(); status != http.StatusBadRequest || text != `{"code":1,"message":"Session ID unknown"}` {
			t.Errorf("GET after POST %q: %d %q, want 400 Session ID unknown", body, status, text)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("GET after POST %q took %v", body, d)
		}
	}
	if n := s.Sessions(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	// Valid payloads still pass.
	p := handshake(t, base)
	if status, _ := p.post("40\x1e3"); status != http.StatusOK {
		t.Errorf("valid payload: %d", status)
	}
}
