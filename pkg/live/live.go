// Package live is the Socket.IO side of the service: it accepts Socket.IO
// clients (Engine.IO 4, long-polling and WebSocket) and broadcasts training
// progress to all of them. *Server implements service.Events.
package live

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/mnist-go/nnserver/pkg/service"
)

// Event names of the contract.
const (
	EventUpdate   = "training_update"
	EventComplete = "training_complete"
	EventError    = "training_error"
)

// The old server's heartbeat settings, which clients are tuned to.
const (
	PingInterval = 25 * time.Second
	PingTimeout  = 60 * time.Second
)

// Server is an embedded Socket.IO server.
type Server struct {
	io  *socket.Server
	log *slog.Logger
}

// New returns a Socket.IO server with the contract's settings; mount its
// Handler at /socket.io/.
func New(log *slog.Logger) *Server {
	opts := socket.DefaultServerOptions()
	opts.SetServeClient(false) // the page gets the client from web/vendor
	opts.SetPingInterval(PingInterval)
	opts.SetPingTimeout(PingTimeout)
	opts.SetMaxHttpBufferSize(1 << 20)
	// Engine.IO answers CORS for /socket.io/ itself, mirroring the origin
	// as Flask-SocketIO did with cors_allowed_origins="*".
	opts.SetCors(&types.Cors{Origin: true, Credentials: true})
	io := socket.NewServer(nil, opts)
	s := &Server{io: io, log: log}
	io.On("connection", func(args ...any) {
		c, ok := args[0].(*socket.Socket)
		if !ok {
			return
		}
		log.Debug("socket.io client connected", "sid", c.Id(), "transport", c.Conn().Transport().Name())
		c.On("disconnect", func(args ...any) {
			log.Debug("socket.io client disconnected", "sid", c.Id(), "reason", args)
		})
	})
	return s
}

// Handler serves the Socket.IO protocol (GET, POST and OPTIONS).
func (s *Server) Handler() http.Handler { return s.io.ServeHandler(nil) }

// Clients returns the number of connected clients.
func (s *Server) Clients() int { return s.io.Sockets().Sockets().Len() }

// Close disconnects every client. Call it before http.Server.Shutdown,
// which would otherwise wait for open long-polls.
func (s *Server) Close() {
	done := make(chan struct{})
	s.io.Close(func(error) { close(done) })
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		s.log.Warn("socket.io server did not close in time")
	}
}

// TrainingUpdate broadcasts a training_update event.
func (s *Server) TrainingUpdate(u service.Update) { s.broadcast(EventUpdate, u) }

// TrainingComplete broadcasts a training_complete event.
func (s *Server) TrainingComplete(c service.Complete) { s.broadcast(EventComplete, c) }

// TrainingError broadcasts a training_error event.
func (s *Server) TrainingError(f service.Failure) { s.broadcast(EventError, f) }

func (s *Server) broadcast(event string, payload any) {
	// A payload that cannot be encoded (a NaN, say) would go out as a bare
	// packet that crashes socket.io-client: check before emitting.
	if _, err := json.Marshal(payload); err != nil {
		s.log.Error("event not sent: payload does not encode", "event", event, "err", err)
		return
	}
	at := time.Now()
	if err := s.io.Sockets().Emit(event, payload); err != nil {
		s.log.Error("event not sent", "event", event, "err", err)
		return
	}
	s.log.Debug("event sent", "event", event, "payload", payload, "emitted_at", at)
}
