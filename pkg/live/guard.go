package live

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/zishang520/socket.io/parsers/engine/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Engine.IO error codes, as the library writes them in {"code","message"}.
const (
	codeUnknownTransport = 0
	codeUnknownSid       = 1
	codeBadHandshake     = 2
	codeBadRequest       = 3
)

// engineError is the body of the library's error answers, which ours copy.
type engineError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// serveHTTP admits a request to the library, or answers it itself:
//   - methods Engine.IO does not use get 400 (not 405 or 500);
//   - JSONP polling (?j=) is not offered: 400;
//   - handshakes beyond MaxSessions or MaxSessionsPerAddr, or during
//     Close, get 503;
//   - a polling POST whose payload does not decode gets 400 and closes
//     its session (the library would answer "ok" and keep it).
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sid := q.Get("sid")
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodOptions:
	default:
		if sid == "" {
			writeEngineError(w, http.StatusBadRequest, codeBadHandshake, "Bad handshake method")
		} else {
			writeEngineError(w, http.StatusBadRequest, codeBadRequest, "Bad request")
		}
		return
	}
	if q.Has("j") {
		writeEngineError(w, http.StatusBadRequest, codeUnknownTransport, "Transport unknown")
		return
	}
	if sid == "" && r.Method == http.MethodGet {
		s.handshakeMu.RLock()
		defer s.handshakeMu.RUnlock()
		slot, ok := s.addrs.reserve(addrKey(clientAddr(r)))
		if !ok {
			writeUnavailable(w, "Too many sessions from this address, retry later")
			return
		}
		if !s.admit() {
			s.addrs.endHandshake(slot)
			writeUnavailable(w, "Too many sessions, retry later")
			return
		}
		defer s.handshaking.Add(-1)
		// The session the handshake opens takes the slot over (track);
		// otherwise it is given back here.
		defer s.addrs.endHandshake(slot)
		r = r.WithContext(context.WithValue(r.Context(), addrSlotKey{}, slot))
	}
	if sid != "" && r.Method == http.MethodGet {
		p, closing := s.beginGet(sid)
		if closing {
			// The server is shutting down: the close packet, then the
			// session goes (the client sees its transport closed).
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			w.Header().Set("Access-Control-Allow-Origin", "*")
			_, _ = io.WriteString(w, "1")
			p.closeNow(closeGoingAway, "server shutting down")
			return
		}
		if p != nil {
			defer s.endGet(p)
		}
	}
	if sid != "" && r.Method == http.MethodPost {
		p, ok := s.beginPost(sid)
		if !ok {
			writeEngineError(w, http.StatusBadRequest, codeUnknownSid, "Session ID unknown")
			return
		}
		if p != nil {
			defer s.endPost(p)
			if !s.checkPayload(w, r, p) {
				return
			}
		}
	}
	s.eio.ServeHTTP(w, r)
}

// admit reserves room for a handshake: sessions and handshakes under way
// stay within MaxSessions. The caller releases the reservation
// (handshaking) when the handshake is done: a session it opened is counted
// by then.
func (s *Server) admit() bool {
	n := s.handshaking.Add(1)
	if !s.closing.Load() && s.engine.ClientsCount()+uint64(n) <= uint64(s.opts.MaxSessions) {
		if s.atCapacity.CompareAndSwap(true, false) {
			s.log.Info("socket.io sessions below the cap again", "max_sessions", s.opts.MaxSessions)
		}
		return true
	}
	s.handshaking.Add(-1)
	if !s.closing.Load() && s.atCapacity.CompareAndSwap(false, true) {
		s.log.Warn("socket.io sessions at the cap: refusing handshakes", "max_sessions", s.opts.MaxSessions)
	}
	return false
}

// checkPayload reads a polling POST of session p and checks that it
// decodes. If it does not, it closes the session, answers 400 and returns
// false. Otherwise the body is put back for the library.
func (s *Server) checkPayload(w http.ResponseWriter, r *http.Request, p *session) bool {
	sid := p.id
	if r.URL.Query().Get("transport") != transports.POLLING || r.ContentLength > s.opts.MaxPayload {
		return true // the library answers: transport mismatch, 413
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.opts.MaxPayload+1))
	if err != nil {
		s.log.Debug("polling POST not read", "sid", sid, "err", err)
		writeEngineError(w, http.StatusBadRequest, codeBadRequest, "Bad request")
		return false
	}
	if int64(len(body)) > s.opts.MaxPayload {
		writeEngineError(w, http.StatusRequestEntityTooLarge, codeBadRequest, "Payload too large")
		return false
	}
	if _, err := parser.Parserv4().DecodePayload(types.NewStringBuffer(bytes.Clone(body))); err != nil {
		s.log.Debug("session closed: invalid polling payload", "sid", sid, "err", err)
		p.close(closePolicy, "invalid payload")
		writeEngineError(w, http.StatusBadRequest, codeBadRequest, "Bad request")
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return true
}

// writeUnavailable refuses a handshake: 503, Retry-After, and an Engine.IO
// error body with code 503.
func writeUnavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter.Seconds())))
	w.Header().Set("Access-Control-Expose-Headers", "Retry-After")
	writeEngineError(w, http.StatusServiceUnavailable, http.StatusServiceUnavailable, msg)
}

// writeEngineError answers like the library does: JSON {"code","message"},
// readable from any origin.
func writeEngineError(w http.ResponseWriter, status, code int, msg string) {
	b, err := json.Marshal(engineError{Code: code, Message: msg})
	if err != nil {
		b = []byte(`{"code":3,"message":"Bad request"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
