package live

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mnist-go/nnserver/pkg/service"
)

// waitLimit bounds every wait of these tests for the server to do something.
const waitLimit = 10 * time.Second

// start returns a server with o (quiet unless o.Logger is set) behind a real
// HTTP server, and its base URL. Both are closed when the test ends, after
// the clients the test opened.
func start(t *testing.T, o Options) (*Server, string) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := New(o)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	t.Cleanup(s.Close)
	return s, hs.URL
}

// poller is a bare Engine.IO 4 long-polling client.
type poller struct {
	t    *testing.T
	base string
	sid  string
	open map[string]any
}

var httpClient = &http.Client{Timeout: waitLimit}

// handshake opens a polling session (without joining a namespace).
func handshake(t *testing.T, base string) *poller {
	t.Helper()
	status, body, _ := do(t, http.MethodGet, base+"/socket.io/?EIO=4&transport=polling", "", nil)
	if status != http.StatusOK || !strings.HasPrefix(body, "0{") {
		t.Fatalf("handshake: %d %q", status, body)
	}
	p := &poller{t: t, base: base}
	if err := json.Unmarshal([]byte(body[1:]), &p.open); err != nil {
		t.Fatalf("handshake %q: %v", body, err)
	}
	p.sid, _ = p.open["sid"].(string)
	return p
}

func (p *poller) url() string {
	return p.base + "/socket.io/?EIO=4&transport=polling&sid=" + p.sid
}

func (p *poller) post(body string) (int, string) {
	p.t.Helper()
	status, text, _ := do(p.t, http.MethodPost, p.url(), body, nil)
	return status, text
}

func (p *poller) get() (int, string) {
	p.t.Helper()
	status, text, _ := do(p.t, http.MethodGet, p.url(), "", nil)
	return status, text
}

// join sends the Socket.IO connect and reads its acknowledgement.
func (p *poller) join() {
	p.t.Helper()
	if status, body := p.post("40"); status != http.StatusOK {
		p.t.Fatalf("connect: %d %q", status, body)
	}
	if status, body := p.get(); status != http.StatusOK || !strings.HasPrefix(body, `40{"sid":`) {
		p.t.Fatalf("connect ack: %d %q", status, body)
	}
}

// do sends one request and returns the status, the body and the headers.
func do(t *testing.T, method, url, body string, header http.Header) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return res.StatusCode, string(b), res.Header
}

// dialRaw opens a WebSocket session and reads the open packet, without
// joining a namespace.
func dialRaw(t *testing.T, base string) *client {
	t.Helper()
	ws, res, err := websocket.DefaultDialer.Dial(wsURL(base), nil)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial: %v (HTTP %d)", err, status)
	}
	t.Cleanup(func() { ws.Close() })
	c := &client{t, ws}
	if open := c.read(); !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %q", open)
	}
	return c
}

func wsURL(base string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
}

// closeCode reads until the connection ends and returns the close code the
// server sent (1006 if it sent none).
func (c *client) closeCode() int {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(waitLimit))
	for {
		if _, _, err := c.ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			return websocket.CloseAbnormalClosure
		}
	}
}

// heapInUse returns the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func trainingFailure(msg string) service.Failure {
	return service.Failure{JobID: "j", NetworkID: "n", Status: service.StatusFailed, Error: msg}
}

func trainingComplete() service.Complete {
	return service.Complete{JobID: "j", NetworkID: "n", Accuracy: 0.9}
}

func nanUpdate() service.Update { return service.Update{JobID: "j", Accuracy: math.NaN()} }

// tracked returns the number of sessions the server follows.
func (s *Server) tracked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// polling reports whether session sid has a long-poll pending.
func (s *Server) polling(sid string) bool {
	conn, ok := s.engine.Clients().Load(sid)
	return ok && conn.Transport().Name() == "polling" && conn.Transport().Writable()
}
