package live

import (
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/pkg/service"
)

// client is a bare Engine.IO 4 / Socket.IO 5 client over WebSocket: enough
// to see exactly which packets the server sends.
type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	c := &client{t, ws}
	if open := c.read(); !strings.HasPrefix(open, `0{`) || !strings.Contains(open, `"pingInterval":25000`) ||
		!strings.Contains(open, `"pingTimeout":60000`) {
		t.Fatalf("open packet %q", open)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	if ack := c.read(); !strings.HasPrefix(ack, `40{"sid":`) {
		t.Fatalf("connect ack %q", ack)
	}
	return c
}

// read returns the next packet that is not a ping, or "" after a second.
func (c *client) read() string {
	c.t.Helper()
	for {
		c.ws.SetReadDeadline(time.Now().Add(time.Second))
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return ""
		}
		if string(msg) != "2" {
			return string(msg)
		}
	}
}

// event decodes a Socket.IO EVENT packet, 42["name",{...}].
func (c *client) event() (string, map[string]any) {
	c.t.Helper()
	p := c.read()
	var args []json.RawMessage
	if !strings.HasPrefix(p, "42") || json.Unmarshal([]byte(p[2:]), &args) != nil || len(args) != 2 {
		c.t.Fatalf("not an event with one payload: %q", p)
	}
	var name string
	var payload map[string]any
	json.Unmarshal(args[0], &name)
	json.Unmarshal(args[1], &payload)
	return name, payload
}

func TestBroadcast(t *testing.T) {
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	defer s.Close()
	a, b := dial(t, hs.URL), dial(t, hs.URL)
	testutil.Eventually(t, waitLimit, "two clients connected", func() bool { return s.Clients() == 2 })

	s.TrainingUpdate(service.Update{JobID: "j", NetworkID: "n", Epoch: 1, TotalEpochs: 2, NetworkEpoch: 4, Accuracy: 0.9,
		ElapsedTime: 0.1234567891, Progress: 50, Correct: 9000, Total: 10000, ValidationAccuracy: 0.91, TrainingCost: 0.25})
	// A NaN cannot be encoded: nothing may go out, or socket.io-client
	// would choke on a bare packet.
	s.TrainingUpdate(service.Update{JobID: "j", Accuracy: math.NaN()})
	s.TrainingComplete(service.Complete{JobID: "j", NetworkID: "n", Accuracy: 0.9})
	s.TrainingError(service.Failure{JobID: "k", NetworkID: "n", Status: service.StatusFailed, Error: "boom"})

	for _, c := range []*client{a, b} {
		name, p := c.event()
		// The contract's 9 fields, and network_epoch, validation_accuracy
		// and training_cost added.
		if name != EventUpdate || p["epoch"] != 1.0 || p["progress"] != 50.0 || p["correct"] != 9000.0 ||
			p["network_epoch"] != 4.0 || p["elapsed_time"] != 0.123457 || p["validation_accuracy"] != 0.91 ||
			p["training_cost"] != 0.25 || len(p) != 12 {
			t.Errorf("first event %s %v", name, p)
		}
		name, p = c.event()
		if name != EventComplete || p["status"] != "completed" || p["progress"] != 100.0 || len(p) != 5 {
			t.Errorf("second event %s %v", name, p)
		}
		name, p = c.event()
		if name != EventError || p["error"] != "boom" || p["status"] != "failed" || len(p) != 4 {
			t.Errorf("third event %s %v", name, p)
		}
		if extra := c.read(); extra != "" {
			t.Errorf("unexpected packet %q", extra)
		}
	}
}
