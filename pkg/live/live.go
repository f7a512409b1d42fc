// Package live is the Socket.IO side of the service: it accepts Socket.IO
// clients (Engine.IO 4, long-polling and WebSocket) and broadcasts training
// progress to all of them. *Server implements service.Events.
//
// Clients of the contract only ever send a connect ("40") and pongs ("3"),
// so the server accepts little from them: small payloads, no binary
// attachments, a bounded queue per session, a bounded number of sessions
// and of sessions per client address, and a short time to join namespace
// "/" (see Options). The router in front of Handler tells the client's
// address with WithClientAddr.
package live

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/mnist-go/nnserver/pkg/service"
)

// Event names of the contract (service's, where they have their one home).
const (
	EventUpdate   = service.EventUpdate
	EventComplete = service.EventComplete
	EventError    = service.EventError
	EventProgress = service.EventProgress
)

// The old server's heartbeat settings, which clients are tuned to.
const (
	PingInterval = 25 * time.Second
	PingTimeout  = 60 * time.Second
)

// Defaults of Options.
const (
	// DefaultMaxPayload caps one long-polling POST body and one WebSocket
	// message, in bytes (Engine.IO's maxHttpBufferSize, announced to
	// clients as maxPayload). Clients send a connect ("40", or "40" and a
	// JSON auth object) and pongs ("3"); socket.io-client splits its
	// polling batches to fit the announced maxPayload.
	DefaultMaxPayload = 4 << 10

	// DefaultMaxSessions caps concurrent Engine.IO sessions. An idle
	// session costs about 12 KB of heap and two goroutines (its timers),
	// ~20 KB of RSS in all: ~200 MB at the cap (measured: 10,000 abandoned
	// handshakes, 254 MB RSS, 20,109 goroutines). Handshakes beyond it are
	// answered 503.
	DefaultMaxSessions = 10_000

	// DefaultMaxSessionsPerAddr caps the sessions of one client address
	// (and its handshakes under way), so that one client cannot take all
	// of MaxSessions: at 200, taking the server takes 50 addresses. It is
	// well above what one address has legitimately: a classroom or an
	// office behind one NAT address, 30 to 60 people with a tab or three
	// each, plus the sessions of reloaded tabs that linger until their
	// ping timeout. 200 sessions cost about 4 MB.
	DefaultMaxSessionsPerAddr = 200

	// DefaultConnectTimeout is how long a session may stay without
	// joining namespace "/". socket.io-client sends its connect right
	// after the handshake.
	DefaultConnectTimeout = 15 * time.Second

	// DefaultMaxQueuedPackets caps the packets waiting in one session for
	// its transport (a long-poll that has not come back, a WebSocket that
	// is not being read). Events come a few times a second at most, so
	// 256 is tens of seconds of them; a session that exceeds it is closed.
	DefaultMaxQueuedPackets = 256

	// RetryAfter is the Retry-After sent with 503 answers to handshakes
	// beyond MaxSessions or MaxSessionsPerAddr, and while the server
	// closes.
	RetryAfter = 5 * time.Second

	// CloseTimeout bounds how long Close waits for WebSocket clients to
	// answer its close frame, and then for the library to let go of the
	// others.
	CloseTimeout = 2 * time.Second
)

// Options configure a Server. A zero field takes its default.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()

	// PingInterval and PingTimeout are the heartbeat announced in the
	// handshake (default: the contract's PingInterval and PingTimeout).
	PingInterval, PingTimeout time.Duration

	// MaxPayload caps a polling POST body and a WebSocket message, in
	// bytes (default DefaultMaxPayload). Larger POSTs are answered 413,
	// larger WebSocket messages close the connection (1009).
	MaxPayload int64

	// MaxSessions caps concurrent Engine.IO sessions (default
	// DefaultMaxSessions): handshakes beyond it get 503, a JSON body
	// {"code":503,"message":...} and Retry-After.
	MaxSessions int

	// MaxSessionsPerAddr caps the sessions of one client address, counted
	// with its handshakes under way (default DefaultMaxSessionsPerAddr;
	// negative: no cap). Handshakes beyond it get 503 like those beyond
	// MaxSessions, with the message "Too many sessions from this address,
	// retry later". The address is the one given with WithClientAddr, or
	// else the host of the request's RemoteAddr; IPv6 addresses count by
	// their /64. The first refusal for an address is logged (a warning),
	// and then nothing more until its sessions are down to half the cap
	// (an info line, with the number refused meanwhile).
	MaxSessionsPerAddr int

	// ConnectTimeout closes sessions that have not joined namespace "/"
	// this long after their handshake (default DefaultConnectTimeout).
	ConnectTimeout time.Duration

	// MaxQueuedPackets caps the packets queued in one session and not yet
	// handed to its transport (default DefaultMaxQueuedPackets); the
	// session is closed when it is exceeded.
	MaxQueuedPackets int
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PingInterval <= 0 {
		o.PingInterval = PingInterval
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = PingTimeout
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.MaxSessionsPerAddr == 0 {
		o.MaxSessionsPerAddr = DefaultMaxSessionsPerAddr
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxQueuedPackets <= 0 {
		o.MaxQueuedPackets = DefaultMaxQueuedPackets
	}
	return o
}

// Server is an embedded Socket.IO server.
type Server struct {
	io      *socket.Server
	engine  engine.BaseServer
	eio     http.Handler // the Engine.IO handler we wrap
	handler http.Handler
	opts    Options
	log     *slog.Logger

	emitted     atomic.Uint64
	emitMu      sync.Mutex  // one broadcast at a time, so that…
	emitting    atomic.Bool // …packets queued while it is set are events
	handshaking atomic.Int64
	atCapacity  atomic.Bool
	addrs       *addrLimiter // sessions and handshakes by client address
	closing     atomic.Bool
	// Handshakes hold handshakeMu for reading; Close takes it for writing
	// once closing is set, so that it never closes the engine under a
	// handshake: the library would then abort the handshake with a close
	// frame written concurrently with its open packet (a data race).
	handshakeMu sync.RWMutex

	wsConns sync.Map // transports.Transport → *types.WebSocketConn

	mu       sync.Mutex
	sessions map[string]*session // by Engine.IO sid
	joined   map[string]bool     // sids whose client joined "/"
	changed  chan struct{}       // closed and replaced on progress while waiters > 0
	waiters  int                 // Flush and Close calls waiting on changed
}

// New returns a Socket.IO server with the contract's settings and the
// bounds of o; mount its Handler at /socket.io/ for every method.
func New(o Options) *Server {
	o = o.withDefaults()
	s := &Server{
		opts:     o,
		log:      o.Logger,
		sessions: map[string]*session{},
		joined:   map[string]bool{},
		changed:  make(chan struct{}),
		addrs:    newAddrLimiter(o.MaxSessionsPerAddr, o.Logger),
	}

	opts := socket.DefaultServerOptions()
	opts.SetServeClient(false) // the page gets the client from web/vendor
	opts.SetPingInterval(o.PingInterval)
	opts.SetPingTimeout(o.PingTimeout)
	opts.SetMaxHttpBufferSize(o.MaxPayload)
	// Polling and WebSocket only (no WebTransport); the WebSocket builder
	// remembers each connection so that sessions can be closed with a
	// close frame.
	opts.SetTransports(types.NewSet[engine.TransportCtor](engine.Polling, &wsBuilder{conns: &s.wsConns}))
	// The contract: Access-Control-Allow-Origin: * and no credentials,
	// preflights included (the library answers OPTIONS with 204).
	opts.SetCors(&types.Cors{Origin: "*"})
	// The library closes clients without a namespace after this, but
	// with an orderly close that keeps a polling session up to 30 s more;
	// our own timer (ConnectTimeout) closes them at once, first.
	opts.SetConnectTimeout(2 * o.ConnectTimeout)
	opts.SetParser(textOnlyParser{})

	s.io = socket.NewServer(nil, opts)
	s.eio = s.io.ServeHandler(nil) // creates the engine
	s.engine = s.io.Engine()
	s.handler = http.HandlerFunc(s.serveHTTP)

	_ = s.engine.On("connection", func(args ...any) {
		if conn, ok := arg[engine.Socket](args); ok {
			s.track(conn)
		}
	})
	s.io.On("connection", func(args ...any) {
		c, ok := arg[*socket.Socket](args)
		if !ok {
			return
		}
		s.joinedNamespace(c.Conn().Id())
		s.log.Debug("socket.io client connected", "sid", c.Id(), "transport", c.Conn().Transport().Name())
		c.On("disconnect", func(args ...any) {
			s.log.Debug("socket.io client disconnected", "sid", c.Id(), "reason", args)
		})
		// The library writes the connect acknowledgement before it
		// registers the socket with its client: a client that closes
		// right after the acknowledgement leaves the socket in "/" for
		// good. The registration is done by now; if the connection
		// closed first, nothing else will remove the socket.
		if c.Conn().ReadyState() == "closed" {
			c.Disconnect(false)
		}
	})
	return s
}

// Handler serves the Socket.IO protocol. Mount it at /socket.io/ for
// every method: it answers the ones Engine.IO does not use with 400. Hand
// it each request with the client's address (WithClientAddr), or all
// clients behind a proxy share one MaxSessionsPerAddr.
func (s *Server) Handler() http.Handler { return s.handler }

// Clients returns the number of clients connected to namespace "/".
func (s *Server) Clients() int { return s.io.Sockets().Sockets().Len() }

// Sessions returns the number of Engine.IO sessions, joined to "/" or not
// (what MaxSessions bounds).
func (s *Server) Sessions() int { return int(s.engine.ClientsCount()) }

// Emitted returns the number of events broadcast so far.
func (s *Server) Emitted() uint64 { return s.emitted.Load() }

// Flush returns once every event broadcast so far has been handed to the
// transport of every client that is still connected: written to its
// WebSocket, or taken by its pending long-poll. A polling client with no
// long-poll pending takes it with its next one. It returns an error if ctx
// ends first.
func (s *Server) Flush(ctx context.Context) error {
	s.wait(+1)
	defer s.wait(-1)
	for {
		s.mu.Lock()
		behind := 0
		for _, p := range s.sessions {
			if !p.flushed() {
				behind++
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if behind == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("live: flush: %d clients have not taken every event: %w", behind, ctx.Err())
		}
	}
}

// Close disconnects every client: WebSocket clients get a close frame
// (1001, going away), polling clients a close packet (with their pending
// long-poll, or else their next one); both are given CloseTimeout to take
// it. New handshakes are refused. Call it after Flush and before
// http.Server.Shutdown, which would otherwise wait for open long-polls.
// Clients see their transport closed, not a Socket.IO disconnect, so they
// reconnect by themselves once a server is back.
func (s *Server) Close() {
	// Once handshakes under way have ended (they hold handshakeMu for
	// reading), closing is set: later ones get 503.
	s.handshakeMu.Lock()
	s.closing.Store(true)
	s.handshakeMu.Unlock()
	deadline := time.Now().Add(CloseTimeout)

	s.mu.Lock()
	var all []*session
	for _, p := range s.sessions {
		all = append(all, p)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var polling []*session
	for _, p := range all {
		if !p.sendCloseFrame(closeGoingAway, "server shutting down") {
			polling = append(polling, p)
		}
	}
	// Polling: the close packet goes with a long-poll, once the one being
	// answered (if any) is done: see session.answering.
	if err := s.waitAnswered(ctx, polling); err != nil {
		s.log.Debug("long-polls still being answered at close", "err", err)
	}
	for _, p := range polling {
		s.closePolling(ctx, p)
	}
	// Wait for the answers and the long-polls: each closes its session.
	if err := s.waitClosed(ctx, all); err != nil {
		s.log.Debug("clients did not take their close in time", "err", err)
	}

	done := make(chan struct{})
	s.io.Close(func(error) { close(done) })
	select {
	case <-done:
	case <-time.After(time.Until(deadline) + CloseTimeout/2):
		s.log.Warn("socket.io server did not close in time")
	}
}

// closePolling closes a polling session the protocol's way, with a close
// packet in a long-poll. With none in the handler, the server answers the
// next one itself; with one pending in the library, once the library holds
// it (its transport is writable), the library's orderly close answers it.
func (s *Server) closePolling(ctx context.Context, p *session) {
	for {
		s.mu.Lock()
		switch {
		case p.closed:
			s.mu.Unlock()
			return
		case p.getting == 0:
			p.closeOnPoll = true
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if t := p.conn.Transport(); t == nil || t.Writable() || ctx.Err() != nil {
			p.closeOrderly()
			return
		}
		// A long-poll entered the handler and is not yet pending in the
		// library: it will be in a moment.
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
	}
}

// waitAnswered waits until no long-poll of sessions is being answered.
func (s *Server) waitAnswered(ctx context.Context, sessions []*session) error {
	return s.waitFor(ctx, sessions, func(p *session) bool { return p.closed || !p.answering }, "being answered")
}

// waitClosed waits until every one of sessions is closed.
func (s *Server) waitClosed(ctx context.Context, sessions []*session) error {
	return s.waitFor(ctx, sessions, func(p *session) bool { return p.closed }, "still open")
}

// waitFor waits until done holds for every one of sessions (checked with
// s.mu held), or ctx ends.
func (s *Server) waitFor(ctx context.Context, sessions []*session, done func(*session) bool, what string) error {
	s.wait(+1)
	defer s.wait(-1)
	for {
		s.mu.Lock()
		left := 0
		for _, p := range sessions {
			if !done(p) {
				left++
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%d sessions %s: %w", left, what, ctx.Err())
		}
	}
}

// wait counts a caller that waits on s.changed.
func (s *Server) wait(n int) {
	s.mu.Lock()
	s.waiters += n
	s.mu.Unlock()
}

// notifyLocked wakes every caller waiting on s.changed. Call with s.mu held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Event payloads as they go on the wire: the contract's field names, the
// status strings, and times rounded to microseconds.
type (
	updateEvent struct {
		JobID        string  `json:"job_id"`
		NetworkID    string  `json:"network_id"`
		Epoch        int     `json:"epoch"`
		TotalEpochs  int     `json:"total_epochs"`
		Accuracy     float64 `json:"accuracy"`
		ElapsedTime  float64 `json:"elapsed_time"`
		Progress     float64 `json:"progress"`
		Correct      int     `json:"correct"`
		Total        int     `json:"total"`
		NetworkEpoch int     `json:"network_epoch"` // added: the epoch counted from the network's creation
		// Added: the accuracy on the validation images and the epoch's
		// training cost.
		ValidationAccuracy float64 `json:"validation_accuracy"`
		TrainingCost       float64 `json:"training_cost"`
	}
	progressEvent struct {
		JobID       string  `json:"job_id"`
		NetworkID   string  `json:"network_id"`
		Epoch       int     `json:"epoch"`
		TotalEpochs int     `json:"total_epochs"`
		Batch       int     `json:"batch"`
		Batches     int     `json:"batches"`
		Progress    float64 `json:"progress"`
	}
	completeEvent struct {
		JobID     string  `json:"job_id"`
		NetworkID string  `json:"network_id"`
		Status    string  `json:"status"`
		Accuracy  float64 `json:"accuracy"`
		Progress  int     `json:"progress"`
	}
	errorEvent struct {
		JobID     string `json:"job_id"`
		NetworkID string `json:"network_id"`
		Status    string `json:"status"`
		Error     string `json:"error"`
	}
)

// TrainingUpdate broadcasts a training_update event.
func (s *Server) TrainingUpdate(u service.Update) {
	s.broadcast(EventUpdate, updateEvent{
		JobID: u.JobID, NetworkID: u.NetworkID, Epoch: u.Epoch, TotalEpochs: u.TotalEpochs,
		Accuracy: u.Accuracy, ElapsedTime: service.Microseconds(u.ElapsedTime), Progress: u.Progress,
		Correct: u.Correct, Total: u.Total, NetworkEpoch: u.NetworkEpoch,
		ValidationAccuracy: u.ValidationAccuracy, TrainingCost: u.TrainingCost,
	})
}

// TrainingProgress broadcasts a training_progress event.
func (s *Server) TrainingProgress(p service.Progress) {
	s.broadcast(EventProgress, progressEvent{
		JobID: p.JobID, NetworkID: p.NetworkID, Epoch: p.Epoch, TotalEpochs: p.TotalEpochs,
		Batch: p.Batch, Batches: p.Batches, Progress: p.Progress,
	})
}

// TrainingComplete broadcasts a training_complete event.
func (s *Server) TrainingComplete(c service.Complete) {
	s.broadcast(EventComplete, completeEvent{
		JobID: c.JobID, NetworkID: c.NetworkID, Status: string(service.StatusCompleted), Accuracy: c.Accuracy, Progress: 100,
	})
}

// TrainingError broadcasts a training_error event.
func (s *Server) TrainingError(f service.Failure) {
	s.broadcast(EventError, errorEvent{JobID: f.JobID, NetworkID: f.NetworkID, Status: string(f.Status), Error: f.Error})
}

func (s *Server) broadcast(event string, payload any) {
	// A payload that cannot be encoded (a NaN, say) would go out as a bare
	// packet that crashes socket.io-client: check before emitting.
	if _, err := json.Marshal(payload); err != nil {
		s.log.Error("event not sent: payload does not encode", "event", event, "err", err)
		return
	}
	at := time.Now()
	// The adapter writes to every client's session before Emit returns;
	// the packets queued meanwhile are what Flush waits for.
	s.emitMu.Lock()
	s.emitting.Store(true)
	err := s.io.Sockets().Emit(event, payload)
	s.emitting.Store(false)
	s.emitMu.Unlock()
	if err != nil {
		s.log.Error("event not sent", "event", event, "err", err)
		return
	}
	s.emitted.Add(1)
	s.log.Debug("event sent", "event", event, "payload", payload, "emitted_at", at)
}
