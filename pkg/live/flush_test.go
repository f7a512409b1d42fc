package live

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mnist-go/nnserver/internal/testutil"
)

// A5: Flush returns once the events emitted so far are written to every
// WebSocket and taken by every pending long-poll.
func TestFlush(t *testing.T) {
	s, base := start(t, Options{})
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush with no clients: %v", err)
	}

	ws := dial(t, base)
	p := handshake(t, base)
	p.join()
	testutil.Eventually(t, waitLimit, "both clients joined", func() bool { return s.Clients() == 2 })

	// A long-poll is pending (or about to be: then it takes the event as
	// it comes).
	polled := make(chan string, 1)
	go func() {
		_, body := p.get()
		polled <- body
	}()
	s.TrainingError(trainingFailure("boom"))
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	ws.ws.SetReadDeadline(time.Now().Add(waitLimit))
	if name, payload := ws.event(); name != EventError || payload["error"] != "boom" {
		t.Errorf("WebSocket client: %s %v", name, payload)
	}
	if body := <-polled; !strings.HasPrefix(body, `42["training_error",`) {
		t.Errorf("polling client: %q", body)
	}

	// No long-poll pending: nothing can take the event until one comes.
	s.TrainingError(trainingFailure("again"))
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if err := s.Flush(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush with a polling client between polls: %v, want a deadline error", err)
	}
	if _, body := p.get(); !strings.Contains(body, `"again"`) {
		t.Errorf("next poll: %q", body)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush after the poll: %v", err)
	}
	if name, _ := ws.event(); name != EventError {
		t.Errorf("WebSocket client: %s", name)
	}

	// A client that leaves does not hold Flush up.
	s.TrainingError(trainingFailure("last"))
	p.post("1")
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush after the polling client left: %v", err)
	}
	if got := s.Emitted(); got != 3 {
		t.Errorf("Emitted() = %d, want 3", got)
	}
}

// A5: Close sends WebSocket clients a close frame (1001) and pending
// long-polls a close packet.
func TestCloseIsOrderly(t *testing.T) {
	s, base := start(t, Options{})
	ws := dial(t, base)
	raw := dialRaw(t, base)
	p := handshake(t, base)
	p.join()
	testutil.Eventually(t, waitLimit, "clients joined", func() bool { return s.Clients() == 2 && s.tracked() == 3 })
	polled := make(chan string, 1)
	go func() {
		_, body := p.get()
		polled <- body
	}()
	testutil.Eventually(t, waitLimit, "the long-poll is pending", func() bool { return s.polling(p.sid) })
	// The close frame is answered by the client as it reads.
	codes := make(chan int, 2)
	go func() { codes <- ws.closeCode() }()
	go func() { codes <- raw.closeCode() }()

	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	for range 2 {
		if code := <-codes; code != websocket.CloseGoingAway {
			t.Errorf("WebSocket client: close code %d, want 1001", code)
		}
	}
	if body := <-polled; body != "1" && body != "6\x1e1" {
		t.Errorf("pending long-poll: %q, want a close packet", body)
	}
	<-closed
	if n := s.Sessions(); n != 0 {
		t.Errorf("%d sessions after Close", n)
	}
	status, _, _ := do(t, http.MethodGet, base+"/socket.io/?EIO=4&transport=polling", "", nil)
	if status != http.StatusServiceUnavailable {
		t.Errorf("handshake after Close: %d, want 503", status)
	}
}

// A polling client that has no long-poll pending when Close begins (it has
// just taken a batch) gets the close packet with its next one, so its
// transport closes rather than errs: socket.io-client then reconnects by
// itself once a server is back.
func TestCloseWaitsForTheNextPoll(t *testing.T) {
	s, base := start(t, Options{})
	p := handshake(t, base)
	p.join()
	testutil.Eventually(t, waitLimit, "the client joined", func() bool { return s.Clients() == 1 })
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	testutil.Eventually(t, waitLimit, "Close has begun", func() bool { return s.closing.Load() })
	if status, body := p.get(); status != http.StatusOK || (body != "1" && body != "6\x1e1") {
		t.Errorf("the next long-poll: %d %q, want a close packet", status, body)
	}
	select {
	case <-closed:
	case <-time.After(waitLimit):
		t.Fatal("Close did not return")
	}
	if n := s.Sessions(); n != 0 {
		t.Errorf("%d sessions after Close", n)
	}
}

// A6: Emitted counts the events broadcast, not the ones that could not be
// encoded.
func TestEmitted(t *testing.T) {
	s, _ := start(t, Options{})
	s.TrainingError(trainingFailure("x"))
	s.TrainingComplete(trainingComplete())
	s.TrainingUpdate(nanUpdate())
	if got := s.Emitted(); got != 2 {
		t.Errorf("Emitted() = %d, want 2", got)
	}
}

// The shutdown order of cmd/server with a polling client whose long-poll
// is pending: an event, Flush, Close. The client gets the event with that
// poll and then a close packet with its next one.
func TestEventFlushCloseOverPolling(t *testing.T) {
	for i := range 20 {
		s, base := start(t, Options{})
		p := handshake(t, base)
		p.join()
		testutil.Eventually(t, waitLimit, "the client joined", func() bool { return s.Clients() == 1 })
		polled := make(chan string, 1)
		go func() {
			_, body := p.get()
			polled <- body
		}()
		testutil.Eventually(t, waitLimit, "the long-poll is pending", func() bool { return s.polling(p.sid) })
		s.TrainingError(trainingFailure("the server is shutting down"))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := s.Flush(ctx); err != nil {
			t.Fatalf("run %d: Flush: %v", i, err)
		}
		cancel()
		closed := make(chan struct{})
		go func() { s.Close(); close(closed) }()
		if body := <-polled; !strings.Contains(body, "training_error") {
			t.Fatalf("run %d: the pending long-poll got %q, want the event", i, body)
		}
		if status, body := p.get(); status != http.StatusOK || (body != "1" && body != "6\x1e1") {
			t.Errorf("run %d: the next long-poll: %d %q, want a close packet", i, status, body)
		}
		<-closed
	}
}
