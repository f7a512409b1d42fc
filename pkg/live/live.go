// Package live is the Socket.IO side of the service: it accepts Socket.IO
// clients (Engine.IO 4, long-polling and WebSocket) and broadcasts training
// progress to all of them. *Server implements service.Events.
package live

import (
	"encoding/json"
	"log/slog"
	"math"
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
	EventProgress = "training_progress"
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

// Event payloads as they go on the wire: the contract's field names, the
// status strings, and times rounded to microseconds.
type (
	updateEvent struct {
		JobID       string  `json:"job_id"`
		NetworkID   string  `json:"network_id"`
		Epoch       int     `json:"epoch"`
		TotalEpochs int     `json:"total_epochs"`
		Accuracy    float64 `json:"accuracy"`
		ElapsedTime float64 `json:"elapsed_time"`
		Progress    float64 `json:"progress"`
		Correct     int     `json:"correct"`
		Total       int     `json:"total"`
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

// Microseconds rounds seconds to the microsecond: 0.406542 rather than
// 0.40654210700000004.
func Microseconds(seconds float64) float64 { return math.Round(seconds*1e6) / 1e6 }

// TrainingUpdate broadcasts a training_update event.
func (s *Server) TrainingUpdate(u service.Update) {
	s.broadcast(EventUpdate, updateEvent{
		JobID: u.JobID, NetworkID: u.NetworkID, Epoch: u.Epoch, TotalEpochs: u.TotalEpochs,
		Accuracy: u.Accuracy, ElapsedTime: Microseconds(u.ElapsedTime), Progress: u.Progress,
		Correct: u.Correct, Total: u.Total,
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
	if err := s.io.Sockets().Emit(event, payload); err != nil {
		s.log.Error("event not sent", "event", event, "err", err)
		return
	}
	s.log.Debug("event sent", "event", event, "payload", payload, "emitted_at", at)
}
