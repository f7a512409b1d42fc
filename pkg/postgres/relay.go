package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mnist-go/nnserver/pkg/service"
)

// relayChannel is the NOTIFY channel of the events table.
const relayChannel = "nnserver_events"

// removedChannel is the NOTIFY channel of deleted networks: the payload is
// the network's id. Removals are not stored: a replica that is not
// listening when one is sent misses it, and drops its copy of the network
// at its next use instead (the catalog no longer has it).
const removedChannel = "nnserver_removed"

// relayLockKey is the pg_advisory_xact_lock key publishers hold while they
// insert an event: "nnsrvevt" in ASCII.
const relayLockKey int64 = 0x6e6e737276657674

// The kinds of events, as stored in nnserver_events.kind: the contract's
// event names.
const (
	kindUpdate   = service.EventUpdate
	kindProgress = service.EventProgress
	kindComplete = service.EventComplete
	kindError    = service.EventError
)

// Relay carries training events and removals between replicas. Its methods of
// service.Events publish each event once, to the nnserver_events table; its
// Run, on every replica, reads them back in order and hands each to that
// replica's local Events (its Socket.IO clients) exactly once. A client
// connected to any replica thus sees every event of every job, once, in
// the order they were published: the publishing replica's own clients get
// their events through Run too, like everyone else's.
//
// # Order
//
// Events are read back by id, so ids must become visible in the order they
// are assigned: were two publishers to commit ids 6 and then 5, a reader
// that saw 6 would skip 5 for good. Publishers therefore take a transaction
// advisory lock before the id is drawn, and hold it until commit: events
// are committed one at a time, cluster-wide. That costs one short
// statement's worth of serialisation per event, which training events (a
// few a second per job) never feel.
//
// # Failures
//
// The service.Events methods have no error to return. A publish that fails
// (Postgres is down) is retried once or twice (it cannot be inserted twice:
// see event_key), then dropped: the first drop of an outage is logged, the
// others only counted (Dropped), and the return of publishing is logged
// with the count. Run survives lost connections: it reconnects with backoff
// and resumes after the last event it delivered, so nothing committed is
// lost or repeated; it also polls every few seconds in case a notification
// went missing.
//
// Rows older than ten minutes are deleted by publishers, at most once a
// minute each. A replica cut off for longer misses what was deleted.
//
// # Removals
//
// NetworkRemoved (service.Replicas) tells every replica's Run that a
// network was deleted, through a notification of its own (removedChannel),
// and Run hands the id to the function set with OnRemoved (the service's
// Forget). Every replica runs a relay for this, workers included: a
// relay without local Events (RelayConfig.Local nil) only listens for
// removals.
//
// # Deadlines
//
// Every call to Postgres takes at most RelayConfig.Timeout. Run waits for
// notifications poll at a time, and between two waits reads the events
// table, or, listening only for removals, pings the server: a server that
// stops answering is noticed within poll plus the timeout, and Run
// reconnects.
type Relay struct {
	pool      *pgxpool.Pool
	local     service.Events // nil: Run listens only for removals
	log       *slog.Logger
	timeout   time.Duration // bounds each call to Postgres
	onRemoved atomic.Pointer[func(id string)]

	// Tests shorten these.
	poll       time.Duration // Run reads the table (or pings) at least this often
	retention  time.Duration // rows older than this are deleted
	pruneEvery time.Duration // each publisher prunes at most this often
	maxBackoff time.Duration // the longest wait between reconnections

	dropped atomic.Uint64

	mu        sync.Mutex // guards failing and lastPrune
	failing   bool       // the last publish failed, and that was logged
	droppedAt uint64     // dropped when failing began
	lastPrune time.Time

	ready     chan struct{} // closed once Run listens and knows where to start
	readyOnce sync.Once

	// delivered is the id of the last event Run has delivered (or, at its
	// start, skipped); moved is closed, and replaced, whenever it grows.
	// Sync waits on them.
	delivered atomic.Int64
	movedMu   sync.Mutex
	moved     chan struct{}
}

// RelayConfig configures a Relay.
type RelayConfig struct {
	// Local receives every replica's training events (this replica's
	// Socket.IO clients). nil: this replica has no clients to give them to
	// (a worker); its relay still publishes events, and its Run listens
	// only for removals.
	Local service.Events
	// Logger: nil, slog.Default().
	Logger *slog.Logger
	// Timeout bounds each call to Postgres; 0: DefaultTimeout.
	Timeout time.Duration
}

// NewRelay returns a relay publishing through pool. Nothing is delivered
// until Run runs.
func NewRelay(pool *pgxpool.Pool, cfg RelayConfig) *Relay {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Relay{
		pool: pool, local: cfg.Local, log: cfg.Logger, timeout: orDefault(cfg.Timeout),
		poll: 5 * time.Second, retention: 10 * time.Minute, pruneEvery: time.Minute,
		maxBackoff: 5 * time.Second,
		ready:      make(chan struct{}),
		moved:      make(chan struct{}),
	}
}

var (
	_ service.Events   = (*Relay)(nil)
	_ service.Replicas = (*Relay)(nil)
)

// OnRemoved sets the function Run calls with the id of each network
// deleted on any replica, this one included (dropping a network that is
// not loaded does nothing). It is called from Run's goroutine, one id at a
// time, and must not block. It may be set at any time; until it is,
// removals are ignored.
func (r *Relay) OnRemoved(f func(id string)) { r.onRemoved.Store(&f) }

// NetworkRemoved tells every replica's relay, within the timeout, that a
// network was deleted (service.Replicas).
func (r *Relay) NetworkRemoved(ctx context.Context, id string) error {
	if !canonicalUUID(id) {
		return fmt.Errorf("postgres: network removed: %.40q is not a network id", id)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if _, err := r.pool.Exec(ctx, "SELECT pg_notify('"+removedChannel+"', $1)", id); err != nil {
		return fmt.Errorf("postgres: telling the replicas that network %s was removed: %w", id, err)
	}
	return nil
}

// TrainingUpdate publishes u.
func (r *Relay) TrainingUpdate(u service.Update) { r.publish(kindUpdate, u.JobID, u) }

// TrainingProgress publishes p.
func (r *Relay) TrainingProgress(p service.Progress) { r.publish(kindProgress, p.JobID, p) }

// TrainingComplete publishes c.
func (r *Relay) TrainingComplete(c service.Complete) { r.publish(kindComplete, c.JobID, c) }

// TrainingError publishes f.
func (r *Relay) TrainingError(f service.Failure) { r.publish(kindError, f.JobID, f) }

// Dropped returns the number of events this relay failed to publish.
func (r *Relay) Dropped() uint64 { return r.dropped.Load() }

// Ready is closed once Run listens for events and removals, and has chosen
// where to start: events published and networks removed after that reach
// this replica.
func (r *Relay) Ready() <-chan struct{} { return r.ready }

// publishSQL inserts an event and notifies listeners of its id, in one
// statement, so one round trip. pg_advisory_xact_lock runs in FROM, so
// before the row, hence its id, is made; it is held until commit (see Order
// in Relay's doc). A retried publish finds its event_key taken, inserts
// nothing, and notifies nobody.
const publishSQL = `INSERT INTO nnserver_events (event_key, kind, job_id, payload)
SELECT $2::uuid, $3::text, $4::text, $5::json FROM pg_advisory_xact_lock($1::bigint)
ON CONFLICT (event_key) DO NOTHING
RETURNING pg_notify('` + relayChannel + `', id::text)`

// publishAttempts bounds the attempts to publish an event. After Postgres
// restarts, the pool may hold several dead connections that it has not
// pinged yet (it pings those idle for a second or more); each attempt
// discards one.
const publishAttempts = 3

func (r *Relay) publish(kind, jobID string, v any) {
	payload, err := json.Marshal(v)
	if err != nil {
		r.failed(kind, jobID, fmt.Errorf("encoding the event: %w", err))
		return
	}
	key := uuid.NewString()
	r.mu.Lock()
	attempts := publishAttempts
	if r.failing {
		// Known to be failing: do not hold up the job with retries.
		attempts = 1
	}
	r.mu.Unlock()
	for attempt := 1; ; attempt++ {
		// Not a request's context: events are published from training
		// jobs, which outlive requests; each attempt has its deadline.
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		_, err = r.pool.Exec(ctx, publishSQL, relayLockKey, key, kind, jobID, payload)
		cancel()
		if err == nil || attempt >= attempts || !connectionError(err) {
			break
		}
	}
	if err != nil {
		r.failed(kind, jobID, err)
		return
	}
	r.mu.Lock()
	recovered, dropped := r.failing, r.dropped.Load()-r.droppedAt
	r.failing = false
	prune := time.Since(r.lastPrune) >= r.pruneEvery
	if prune {
		r.lastPrune = time.Now()
	}
	r.mu.Unlock()
	if recovered {
		r.log.Info("event relay: publishing training events again", "dropped", dropped)
	}
	if prune {
		r.prune()
	}
}

// connectionError reports whether err may come from a lost connection or a
// server going down, rather than from the statement.
func connectionError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57P01-03: the server shutting down,
		// crashed, or starting up.
		return pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// failed counts an event that was not published, and logs the first of an
// outage.
func (r *Relay) failed(kind, jobID string, err error) {
	r.mu.Lock()
	first := !r.failing
	if first {
		r.failing = true
		r.droppedAt = r.dropped.Load()
	}
	r.dropped.Add(1)
	r.mu.Unlock()
	if first {
		r.log.Error("event relay: cannot publish training events; they are dropped until publishing works again",
			"kind", kind, "job_id", jobID, "err", err)
	}
}

// prune deletes the rows older than r.retention.
func (r *Relay) prune() {
	// Not a request's context: see publish.
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	_, err := r.pool.Exec(ctx, "DELETE FROM nnserver_events WHERE created_at < now() - $1::float8 * interval '1 second'",
		r.retention.Seconds())
	if err != nil {
		r.log.Warn("event relay: deleting old events", "err", err)
	}
}

// Run delivers events to the local Events, and removals to the function
// set with OnRemoved, until ctx is done, then returns nil. Call it once per
// Relay, in a goroutine of its own, for as long as the replica runs. It
// starts after the last event published before it began listening (see
// Ready). It needs a connection of its own, opened with the pool's
// settings but outside the pool: LISTEN belongs to a session. Connection
// failures, and a server that stops answering, are logged and retried with
// backoff, forever.
func (r *Relay) Run(ctx context.Context) error {
	var (
		last    int64 // the id of the last event delivered
		started bool  // last is set
		backoff = 50 * time.Millisecond
		outage  int // failed sessions in a row
	)
	for {
		listened, err := r.session(ctx, &last, &started)
		if ctx.Err() != nil {
			return nil
		}
		if listened {
			// It worked for a while: this is a new outage.
			backoff, outage = 50*time.Millisecond, 0
		}
		outage++
		if outage == 1 {
			r.log.Warn("event relay: lost the connection to Postgres; reconnecting", "err", err)
		} else {
			r.log.Debug("event relay: still reconnecting", "attempt", outage, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, r.maxBackoff)
		// The first session after an outage says it is back, in session.
	}
}

// session connects, listens, catches up and delivers until the connection
// fails, the server stops answering, or ctx is done. listened reports
// whether it got as far as listening.
func (r *Relay) session(ctx context.Context, last *int64, started *bool) (listened bool, err error) {
	cfg := r.pool.Config().ConnConfig
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return false, fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		// ctx may have ended: the connection is closed all the same.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
		defer cancel()
		conn.Close(cctx)
	}()
	events := r.local != nil
	qctx, cancel := context.WithTimeout(ctx, r.timeout)
	listen := "LISTEN " + removedChannel
	if events {
		listen += "; LISTEN " + relayChannel
	}
	_, err = conn.Exec(qctx, listen)
	if err == nil && events && !*started {
		// Listening first, then reading the last id: an event committed
		// in between is either counted in it or notified after it.
		err = conn.QueryRow(qctx, "SELECT coalesce(max(id), 0) FROM nnserver_events").Scan(last)
	}
	cancel()
	if err != nil {
		return false, fmt.Errorf("listening: %w", err)
	}
	if *started {
		r.log.Info("event relay: reconnected; catching up", "after_id", *last)
	}
	*started = true
	r.advance(*last) // what came before is not for this replica
	r.readyOnce.Do(func() {
		r.log.Debug("event relay: listening")
		close(r.ready)
	})

	// Catch up on what was committed while we were not listening.
	if events {
		if err := r.drain(ctx, conn, last); err != nil {
			return true, err
		}
	}
	for {
		// A long wait by design, in bounded steps: between two, the table
		// is read or the server pinged, so that a server that stopped
		// answering is noticed (a frozen one never closes the connection).
		wctx, cancel := context.WithTimeout(ctx, r.poll)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return true, ctx.Err()
		case err == nil && n.Channel == removedChannel:
			r.removed(n.Payload)
			continue
		case err == nil:
			if id, perr := strconv.ParseInt(n.Payload, 10, 64); perr == nil && id <= *last {
				continue // delivered by an earlier drain
			}
		case pgconn.Timeout(err):
			// Nothing for a while: read the table anyway, in case a
			// notification was missed; this also checks the connection.
		default:
			return true, fmt.Errorf("waiting for events: %w", err)
		}
		if !events {
			pctx, cancel := context.WithTimeout(ctx, r.timeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return true, fmt.Errorf("checking the connection: %w", err)
			}
			continue
		}
		if err := r.drain(ctx, conn, last); err != nil {
			return true, err
		}
	}
}

// advance notes that every event up to id has been delivered.
func (r *Relay) advance(id int64) {
	if id <= r.delivered.Load() {
		return
	}
	r.delivered.Store(id)
	r.movedMu.Lock()
	close(r.moved)
	r.moved = make(chan struct{})
	r.movedMu.Unlock()
}

// Sync waits until Run has delivered to the local Events every event
// published, by any replica, before Sync was called, or until ctx ends. A
// replica that stops calls it between stopping its service and stopping
// Run, so that its own clients get the events of its shutdown (the
// training_error "interrupted" of each job it hands over) before their
// connections close. Without local Events it returns at once.
func (r *Relay) Sync(ctx context.Context) error {
	if r.local == nil {
		return nil
	}
	var target int64
	qctx, cancel := context.WithTimeout(ctx, r.timeout)
	err := r.pool.QueryRow(qctx, "SELECT coalesce(max(id), 0) FROM nnserver_events").Scan(&target)
	cancel()
	if err != nil {
		return fmt.Errorf("postgres: relay: reading the last event: %w", err)
	}
	for {
		r.movedMu.Lock()
		moved := r.moved
		r.movedMu.Unlock()
		if r.delivered.Load() >= target {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("postgres: relay: delivering up to event %d (delivered %d): %w", target, r.delivered.Load(), ctx.Err())
		}
	}
}

// removed hands a removal's network id to the OnRemoved function.
func (r *Relay) removed(id string) {
	if !canonicalUUID(id) {
		r.log.Warn("event relay: skipping a removal that names no network", "payload", fmt.Sprintf("%.40q", id))
		return
	}
	if f := r.onRemoved.Load(); f != nil {
		(*f)(id)
	}
}

// drainBatch bounds the rows read at once.
const drainBatch = 500

type eventRow struct {
	ID      int64
	Kind    string
	Payload []byte
}

// drain delivers every event after *last, in id order, advancing *last.
func (r *Relay) drain(ctx context.Context, conn *pgx.Conn, last *int64) error {
	for {
		qctx, cancel := context.WithTimeout(ctx, r.timeout)
		rows, _ := conn.Query(qctx, "SELECT id, kind, payload FROM nnserver_events WHERE id > $1 ORDER BY id LIMIT $2", *last, drainBatch)
		batch, err := pgx.CollectRows(rows, pgx.RowToStructByPos[eventRow])
		cancel()
		if err != nil {
			return fmt.Errorf("reading events: %w", err)
		}
		for _, e := range batch {
			r.deliver(e)
			*last = e.ID
		}
		r.advance(*last)
		if len(batch) < drainBatch {
			return nil
		}
	}
}

// deliver hands one event to the local Events. An event that does not
// decode (a newer release's kind) is logged and skipped.
func (r *Relay) deliver(e eventRow) {
	var err error
	switch e.Kind {
	case kindUpdate:
		var v service.Update
		if err = json.Unmarshal(e.Payload, &v); err == nil {
			r.local.TrainingUpdate(v)
		}
	case kindProgress:
		var v service.Progress
		if err = json.Unmarshal(e.Payload, &v); err == nil {
			r.local.TrainingProgress(v)
		}
	case kindComplete:
		var v service.Complete
		if err = json.Unmarshal(e.Payload, &v); err == nil {
			r.local.TrainingComplete(v)
		}
	case kindError:
		var v service.Failure
		if err = json.Unmarshal(e.Payload, &v); err == nil {
			r.local.TrainingError(v)
		}
	default:
		err = fmt.Errorf("unknown kind %q", e.Kind)
	}
	if err != nil {
		r.log.Warn("event relay: skipping an event that does not decode", "id", e.ID, "kind", e.Kind, "err", err)
	}
}
