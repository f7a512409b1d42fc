package live

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// WebSocket close codes the server sends.
const (
	closeNormal    = websocket.CloseNormalClosure   // the client sent a close packet
	closeGoingAway = websocket.CloseGoingAway       // the server shuts down
	closePolicy    = websocket.ClosePolicyViolation // a bound was exceeded
)

// closeWriteWait bounds the write of one close frame (to a client that does
// not read, say).
const closeWriteWait = time.Second

// session follows one Engine.IO session: the packets queued in it and
// handed to its transport (for MaxQueuedPackets and Flush), whether it
// joined "/" in time (ConnectTimeout), and close packets over WebSocket.
//
// Counters are guarded by Server.mu. Listeners run in the library's
// goroutines, sometimes under its locks: they never call into the library
// while holding Server.mu.
type session struct {
	srv  *Server
	conn engine.Socket
	id   string
	addr string // the key of its client's address, whose place it holds until it closes

	created   uint64 // packets queued in the session ("packetCreate")
	handed    uint64 // packets handed to a transport ("flush")
	inflight  uint64 // handed when the last WebSocket batch was sent
	written   uint64 // written to the WebSocket, or taken by a long-poll
	lastEvent uint64 // created, as of the last broadcast event queued
	// answering: a batch was handed to a long-poll whose answer is still
	// being written. Until its GET returns, the transport may still look
	// writable to the library, whose orderly close would then take the
	// session down at once instead of with the next poll.
	answering bool
	// getting counts the long-polls inside the handler (pending with the
	// library, or being answered). When Close finds none, it answers the
	// next one itself (closeOnPoll): the library's orderly close can miss
	// a long-poll that arrives while it runs, which then hangs.
	getting     int
	closeOnPoll bool
	closed      bool
	capped      bool // closed for exceeding MaxQueuedPackets
	timer       *time.Timer

	// Closes wait for the polling POSTs in flight (posting): the library's
	// polling close writes to the request of a POST in flight, which races
	// with that POST's own answer. A close requested meanwhile (closeCode
	// != 0) is carried out by the last POST, and later POSTs are refused.
	posting     int
	closeCode   int
	closeReason string
	orderly     bool // the close requested waits for a long-poll to carry the close packet
}

// track starts following a new session (engine "connection").
func (s *Server) track(conn engine.Socket) {
	p := &session{srv: s, conn: conn, id: conn.Id(), addr: s.adoptAddr(conn)}
	s.mu.Lock()
	s.sessions[p.id] = p
	// The connect may have been processed before this listener ran.
	if !s.joined[p.id] {
		p.timer = time.AfterFunc(s.opts.ConnectTimeout, p.connectTimedOut)
	}
	s.mu.Unlock()

	_ = conn.On("packetCreate", p.onPacketCreate)
	_ = conn.On("flush", p.onFlush)
	_ = conn.On("packet", p.onPacket)
	_ = conn.On("upgrade", func(args ...any) {
		if t, ok := arg[transports.Transport](args); ok {
			p.watch(t)
		}
	})
	_ = conn.Once("close", func(...any) { p.onClose() })
	p.watch(conn.Transport())
	if conn.ReadyState() == "closed" {
		p.onClose()
	}
}

// joinedNamespace records that the session's client joined "/".
func (s *Server) joinedNamespace(sid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.joined[sid] = true
	if p := s.sessions[sid]; p != nil && p.timer != nil {
		p.timer.Stop()
	}
}

// arg returns args[0] as a T.
func arg[T any](args []any) (T, bool) {
	var zero T
	if len(args) == 0 {
		return zero, false
	}
	v, ok := args[0].(T)
	return v, ok
}

// watch follows the writes of a WebSocket transport: a batch handed to it
// is written when it drains. (A long-poll takes a batch when it is handed
// over: the library hands batches to polling only while a GET is pending.)
func (p *session) watch(t transports.Transport) {
	if t == nil || t.Name() != transports.WEBSOCKET {
		return
	}
	_ = t.On("drain", func(...any) {
		s := p.srv
		s.mu.Lock()
		defer s.mu.Unlock()
		p.written = max(p.written, p.inflight)
		s.progressLocked()
	})
}

func (p *session) onPacketCreate(...any) {
	s := p.srv
	s.mu.Lock()
	p.created++
	if s.emitting.Load() {
		p.lastEvent = p.created
	}
	over := !p.capped && p.created-p.handed > uint64(s.opts.MaxQueuedPackets)
	if over {
		p.capped = true
	}
	s.mu.Unlock()
	if over {
		// The library is queueing, maybe under its locks: close from
		// elsewhere.
		s.log.Debug("session closed: too many packets queued", "sid", p.id, "max_queued_packets", s.opts.MaxQueuedPackets)
		go p.close(closePolicy, "too many packets queued")
	}
}

func (p *session) onFlush(args ...any) {
	batch, _ := arg[[]*packet.Packet](args)
	t := p.conn.Transport()
	s := p.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	p.handed += uint64(len(batch))
	if t != nil && t.Name() == transports.WEBSOCKET {
		p.inflight = p.handed
		return
	}
	p.written = p.handed
	p.answering = true
	s.progressLocked()
}

// beginGet admits a long-poll of session sid, or reports that the server
// is closing the session and answers it itself (with a close packet).
func (s *Server) beginGet(sid string) (p *session, closeNow bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p = s.sessions[sid]
	if p == nil {
		return nil, false // unknown to us: the library answers
	}
	if p.closeOnPoll {
		return p, true
	}
	p.getting++
	return p, false
}

// endGet notes that a long-poll of session p has been answered.
func (s *Server) endGet(p *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.getting--
	if p.answering {
		p.answering = false
	}
	s.progressLocked()
}

// onPacket closes the session when the client sends a close packet over
// WebSocket (over polling the library does it), or a binary packet. It
// runs before the packet reaches the Socket.IO decoder, which refuses
// binary packets too (textOnlyParser) but then lets the library close
// the session in order: a polling session would linger up to 30 s.
func (p *session) onPacket(args ...any) {
	pkt, ok := arg[*packet.Packet](args)
	if !ok {
		return
	}
	switch {
	case pkt.Type == packet.CLOSE:
		p.close(closeNormal, "")
	case pkt.Type == packet.MESSAGE && isBinary(pkt.Data):
		p.srv.log.Debug("session closed: binary packet", "sid", p.id)
		p.close(closePolicy, errBinary.Error())
	}
}

// onClose forgets the session (once), on every path that closes it: the
// client's close, a ping or connect timeout, a bound exceeded, Close. Its
// place under its client's address is given back.
func (p *session) onClose() {
	s := p.srv
	s.mu.Lock()
	if p.closed {
		s.mu.Unlock()
		return
	}
	p.closed = true
	if p.timer != nil {
		p.timer.Stop()
	}
	if s.sessions[p.id] == p {
		delete(s.sessions, p.id)
		delete(s.joined, p.id)
	}
	s.progressLocked()
	s.mu.Unlock()
	s.addrs.release(p.addr)
}

func (p *session) connectTimedOut() {
	s := p.srv
	s.mu.Lock()
	skip := p.closed || s.joined[p.id]
	s.mu.Unlock()
	if !skip {
		s.log.Debug("session closed: no namespace joined in time", "sid", p.id, "connect_timeout", s.opts.ConnectTimeout)
		p.close(closePolicy, "no namespace joined in time")
	}
}

// flushed reports whether every event queued in the session has been
// written to its WebSocket or answered to a long-poll, or the session is
// gone. Call with Server.mu held.
func (p *session) flushed() bool { return p.closed || p.written >= p.lastEvent && !p.answering }

// close closes the session: now, after a close frame if it is on a
// WebSocket, or when the polling POSTs in flight are answered.
func (p *session) close(code int, reason string) {
	s := p.srv
	s.mu.Lock()
	if p.closed || p.closeCode != 0 {
		s.mu.Unlock()
		return
	}
	p.closeCode, p.closeReason = code, reason
	later := p.posting > 0
	s.mu.Unlock()
	if !later {
		p.closeNow(code, reason)
	}
}

// closeOrderly closes a polling session the way the protocol does: its
// pending long-poll, or else its next one, carries a close packet (the
// library's own orderly close, bounded by its close timeout). Like close,
// it waits for the polling POSTs in flight.
func (p *session) closeOrderly() {
	s := p.srv
	s.mu.Lock()
	if p.closed || p.closeCode != 0 {
		s.mu.Unlock()
		return
	}
	p.closeCode, p.closeReason, p.orderly = closeGoingAway, "server shutting down", true
	later := p.posting > 0
	s.mu.Unlock()
	if !later {
		p.conn.Close(false)
	}
}

func (p *session) closeNow(code int, reason string) {
	p.sendCloseFrame(code, reason)
	p.conn.Close(true) // discard: no orderly close that waits for a long-poll
}

// beginPost admits a polling POST of session sid to the library, unless
// the session is being closed. Call endPost when the library is done.
func (s *Server) beginPost(sid string) (p *session, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p = s.sessions[sid]
	if p == nil {
		return nil, true // unknown to us: the library answers
	}
	if p.closeCode != 0 {
		return p, false
	}
	p.posting++
	return p, true
}

// endPost carries out a close requested while the POST was in flight.
func (s *Server) endPost(p *session) {
	s.mu.Lock()
	p.posting--
	code, reason, orderly := p.closeCode, p.closeReason, p.orderly
	now := code != 0 && p.posting == 0 && !p.closed
	s.mu.Unlock()
	switch {
	case now && orderly:
		p.conn.Close(false)
	case now:
		p.closeNow(code, reason)
	}
}

// sendCloseFrame writes a WebSocket close frame if the session is on a
// WebSocket, and reports whether it did.
func (p *session) sendCloseFrame(code int, reason string) bool {
	v, ok := p.srv.wsConns.Load(p.conn.Transport())
	if !ok {
		return false
	}
	conn, ok := v.(*types.WebSocketConn)
	if !ok || conn.Conn == nil {
		return false
	}
	err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(closeWriteWait))
	return err == nil
}

// progressLocked wakes Flush and Close. Call with Server.mu held.
func (s *Server) progressLocked() {
	if s.waiters > 0 {
		s.notifyLocked()
	}
}

// wsBuilder is the library's WebSocket transport, remembering each
// transport's connection in conns until the transport closes.
type wsBuilder struct {
	transports.WebSocketBuilder
	conns *sync.Map // transports.Transport → *types.WebSocketConn
}

func (b *wsBuilder) New(ctx *types.HttpContext) transports.Transport {
	t := b.WebSocketBuilder.New(ctx)
	if conn := ctx.Websocket; conn != nil {
		b.conns.Store(t, conn)
		_ = t.Once("close", func(...any) { b.conns.Delete(t) })
		if t.ReadyState() == "closed" {
			b.conns.Delete(t)
		}
	}
	return t
}
