package live

import (
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mnist-go/nnserver/internal/testutil"
)

func TestDefaults(t *testing.T) {
	s, base := start(t, Options{})
	want := Options{
		Logger: s.opts.Logger, PingInterval: 25 * time.Second, PingTimeout: 60 * time.Second,
		MaxPayload: 4096, MaxSessions: 10_000, MaxSessionsPerAddr: 200, ConnectTimeout: 15 * time.Second, MaxQueuedPackets: 256,
	}
	if s.opts != want {
		t.Errorf("options with defaults: %+v, want %+v", s.opts, want)
	}
	// The handshake announces them.
	p := handshake(t, base)
	for k, v := range map[string]float64{"pingInterval": 25000, "pingTimeout": 60000, "maxPayload": 4096} {
		if p.open[k] != v {
			t.Errorf("handshake %s = %v, want %v (%v)", k, p.open[k], v, p.open)
		}
	}
	if fmt.Sprint(p.open["upgrades"]) != "[websocket]" {
		t.Errorf("upgrades %v", p.open["upgrades"])
	}
}

// A connect with an auth object fits MaxPayload; bodies and messages above
// it are refused.
func TestMaxPayload(t *testing.T) {
	s, base := start(t, Options{})

	p := handshake(t, base)
	auth := `40{"token":"` + strings.Repeat("x", 2000) + `"}`
	if status, body := p.post(auth); status != http.StatusOK {
		t.Fatalf("connect with auth: %d %q", status, body)
	}
	if status, body := p.get(); status != http.StatusOK || !strings.HasPrefix(body, `40{"sid":`) {
		t.Fatalf("connect with auth: ack %d %q", status, body)
	}
	// The attack's 1 MB POST, and one byte over the cap.
	for _, n := range []int{1 << 20, DefaultMaxPayload + 1} {
		if status, body := p.post("40/nope," + strings.Repeat("x", n-8)); status != http.StatusRequestEntityTooLarge {
			t.Errorf("POST of %d bytes: %d %q, want 413", n, status, body)
		}
	}

	c := dialRaw(t, base)
	c.ws.WriteMessage(websocket.TextMessage, []byte(`40{"a":"`+strings.Repeat("x", DefaultMaxPayload)+`"}`))
	if code := c.closeCode(); code != websocket.CloseMessageTooBig {
		t.Errorf("WebSocket message over the cap: close code %d, want 1009", code)
	}
	testutil.Eventually(t, waitLimit, "the sessions over the cap are closed, the polling one stays", func() bool { return s.Sessions() == 1 })
}

// A1: connect packets for a namespace that does not exist each queue a
// CONNECT_ERROR; a client that never polls used to keep them all. The
// session is now closed once MaxQueuedPackets are waiting, and the memory
// goes with it.
func TestQueuedRepliesBounded(t *testing.T) {
	const (
		sessions = 20
		posts    = 30 // per session: 30 × 455 replies if nothing stopped them
	)
	s, base := start(t, Options{})
	body := strings.TrimSuffix(strings.Repeat("40/nope,\x1e", DefaultMaxPayload/9), "\x1e")
	perPost := strings.Count(body, "\x1e") + 1

	before := heapInUse()
	var wg sync.WaitGroup
	accepted := make([]int, sessions)
	for i := range sessions {
		p := handshake(t, base)
		p.join()
		wg.Go(func() {
			for range posts {
				status, _ := p.post(body)
				if status != http.StatusOK {
					break
				}
				accepted[i]++
				if status, _ := p.post("3"); status != http.StatusOK { // only pongs otherwise
					break
				}
			}
		})
	}
	wg.Wait()
	testutil.Eventually(t, waitLimit, "every session over the queue bound is closed", func() bool { return s.Sessions() == 0 })
	grown := int64(heapInUse()) - int64(before)
	t.Logf("%d sessions × %d POSTs of %d connects: heap grew by %d KiB", sessions, posts, perPost, grown>>10)

	// The first POST queues 455 > 256 replies; the close is asynchronous,
	// so one more POST may get in.
	maxAccepted := DefaultMaxQueuedPackets/perPost + 2
	for i, n := range accepted {
		if n > maxAccepted {
			t.Errorf("session %d: %d POSTs accepted, want at most %d", i, n, maxAccepted)
		}
	}
	// Unbounded, this held ~60 MB (20 × 13,650 queued replies).
	if grown > 8<<20 {
		t.Errorf("heap grew by %d KiB after the sessions were closed", grown>>10)
	}
}

// The queue bound also closes a WebSocket client that does not read.
func TestQueuedPacketsBoundedWebSocket(t *testing.T) {
	const max = 16
	s, base := start(t, Options{MaxQueuedPackets: max})
	c := dial(t, base)
	testutil.Eventually(t, waitLimit, "one client connected", func() bool { return s.Clients() == 1 })
	// Enough events to fill the socket buffers of a client that does not
	// read, and then the queue.
	big := strings.Repeat("x", 64<<10)
	emitted := 0
	testutil.Eventually(t, waitLimit, "the session of a client that does not read is closed", func() bool {
		s.TrainingError(trainingFailure(big))
		emitted++
		return s.Sessions() == 0
	})
	t.Logf("closed after %d events", emitted)
	if code := c.closeCode(); code != websocket.ClosePolicyViolation && code != websocket.CloseAbnormalClosure {
		t.Errorf("close code %d", code)
	}
}

// A2: binary packets are refused: the header that announces attachments
// closes the connection, so no attachment is ever held.
func TestBinaryRefused(t *testing.T) {
	const conns = 50
	s, base := start(t, Options{})
	before := heapInUse()
	header := `451-["x",{"_placeholder":true,"num":0}]`
	attachment := make([]byte, DefaultMaxPayload-1)
	var wg sync.WaitGroup
	closed := make(chan int, conns)
	for range conns {
		c := dial(t, base)
		wg.Go(func() {
			c.ws.WriteMessage(websocket.TextMessage, []byte(strings.Replace(header, "451", "4510", 1)))
			for range 9 {
				if c.ws.WriteMessage(websocket.BinaryMessage, append([]byte{4}, attachment...)) != nil {
					break
				}
			}
			closed <- c.closeCode()
		})
	}
	wg.Wait()
	close(closed)
	for code := range closed {
		if code != websocket.ClosePolicyViolation {
			t.Errorf("close code %d, want 1008", code)
		}
	}
	testutil.Eventually(t, waitLimit, "every session that sent a binary header is closed", func() bool { return s.Sessions() == 0 })
	grown := int64(heapInUse()) - int64(before)
	t.Logf("%d connections × (header + 9 attachments of %d bytes): heap grew by %d KiB", conns, len(attachment)+1, grown>>10)
	if grown > 4<<20 {
		t.Errorf("heap grew by %d KiB", grown>>10)
	}

	// A bare attachment, and a binary header over polling.
	c := dial(t, base)
	c.ws.WriteMessage(websocket.BinaryMessage, []byte{4, 1, 2, 3})
	if code := c.closeCode(); code != websocket.ClosePolicyViolation {
		t.Errorf("bare attachment: close code %d, want 1008", code)
	}
	p := handshake(t, base)
	p.join()
	p.post(header)
	testutil.Eventually(t, waitLimit, "the binary sessions are closed", func() bool { return s.Sessions() == 0 })
	if status, body := p.get(); status != http.StatusBadRequest {
		t.Errorf("GET after a binary header: %d %q, want 400", status, body)
	}
}

// A3: sessions beyond MaxSessions are refused with 503 and Retry-After;
// when one closes there is room again.
func TestMaxSessions(t *testing.T) {
	const max = 20
	s, base := start(t, Options{MaxSessions: max})
	goroutines := runtime.NumGoroutine()
	var ps []*poller
	for range max {
		ps = append(ps, handshake(t, base))
	}
	for range 5 * max {
		status, body, h := do(t, http.MethodGet, base+"/socket.io/?EIO=4&transport=polling", "", http.Header{"Origin": {"http://example.com"}})
		if status != http.StatusServiceUnavailable || h.Get("Retry-After") != strconv.Itoa(int(RetryAfter.Seconds())) ||
			body != `{"code":503,"message":"Too many sessions, retry later"}` || h.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("handshake over the cap: %d %q %v", status, body, h)
		}
	}
	_, res, err := websocket.DefaultDialer.Dial(wsURL(base), nil)
	if err == nil || res == nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("WebSocket handshake over the cap: %v %v", err, res)
	}
	if n := s.Sessions(); n != max {
		t.Errorf("%d sessions, want %d", n, max)
	}
	grown := runtime.NumGoroutine() - goroutines
	t.Logf("%d sessions and %d refused handshakes: %d more goroutines", max, 5*max+1, grown)
	if grown > 4*max {
		t.Errorf("%d more goroutines for %d sessions", grown, max)
	}

	// Sessions that end make room.
	for _, p := range ps[:2] {
		if status, _ := p.post("1"); status != http.StatusOK {
			t.Fatal("close packet not accepted")
		}
	}
	testutil.Eventually(t, waitLimit, "the closed sessions are gone", func() bool { return s.Sessions() == max-2 })
	handshake(t, base)
	dialRaw(t, base).ws.Close()
}

// A3: sessions that do not join "/" within ConnectTimeout are closed;
// joined ones stay. Abandoned handshakes give back their goroutines and
// memory.
func TestConnectTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s, base := start(t, Options{ConnectTimeout: timeout})

	joined := dial(t, base) // opened first: its timer would fire first
	abandonedWS := dialRaw(t, base)
	abandonedPolling := handshake(t, base)
	if code := abandonedWS.closeCode(); code != websocket.ClosePolicyViolation {
		t.Errorf("abandoned WebSocket: close code %d, want 1008", code)
	}
	testutil.Eventually(t, waitLimit, "abandoned sessions closed", func() bool { return s.Sessions() == 1 })
	if status, body := abandonedPolling.get(); status != http.StatusBadRequest {
		t.Errorf("GET on the abandoned polling session: %d %q, want 400", status, body)
	}
	if s.Clients() != 1 {
		t.Fatalf("the joined client was closed too")
	}
	s.TrainingError(trainingFailure("x"))
	if name, _ := joined.event(); name != EventError {
		t.Errorf("joined client got %q", name)
	}

}

// A3: a burst of abandoned handshakes holds goroutines and memory only
// until ConnectTimeout.
func TestAbandonedHandshakes(t *testing.T) {
	const (
		burst   = 1000
		timeout = 3 * time.Second
	)
	// All from one address: the burst is within its cap.
	s, base := start(t, Options{ConnectTimeout: timeout, MaxSessionsPerAddr: burst})
	goroutines, heap := runtime.NumGoroutine(), heapInUse()
	for range burst {
		handshake(t, base)
	}
	held := s.Sessions()
	heldGoroutines, heldHeap := runtime.NumGoroutine()-goroutines, int64(heapInUse())-int64(heap)
	testutil.Eventually(t, waitLimit, "abandoned handshakes closed", func() bool { return s.Sessions() == 0 })
	testutil.Eventually(t, waitLimit, "their goroutines end", func() bool { return runtime.NumGoroutine()-goroutines < 50 })
	left := int64(heapInUse()) - int64(heap)
	t.Logf("%d abandoned handshakes: %d sessions, %d goroutines, %d KiB held; after %v: %d goroutines, %d KiB",
		burst, held, heldGoroutines, heldHeap>>10, timeout, runtime.NumGoroutine()-goroutines, left>>10)
	if left > 4<<20 {
		t.Errorf("heap still %d KiB larger", left>>10)
	}
}
