package postgres

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Deadlines
//
// Every call this package makes to Postgres has a deadline: a replica whose
// database hangs (a frozen server or machine, a network that drops packets
// without resetting connections) answers 503 within the timeout, never
// waits for it. The timeout (DB_TIMEOUT, DefaultTimeout unless set) bounds:
//
//   - each method of Catalog and Queue, and each call Relay makes: their
//     context is the caller's, with the timeout on top (the caller's own
//     deadline or cancellation still applies). The goroutines that outlive
//     any request (River's workers, the takeover sweep, the relay's loop,
//     the release of a lock) bound each call in the same way;
//   - each connection attempt (pgx's ConnectTimeout, set by Connect), and so
//     each wait for a connection of the pool, since the pool connects with
//     the caller's context;
//   - each statement on the server too: Connect sets statement_timeout to
//     the timeout plus a second, so that the server stops a statement whose
//     client gave up (a client that times out closes its connection and
//     asks the server to cancel, but the request can be lost).
//
// What waits by design is bounded by the caller's context alone, and polls
// within the timeout: LockSaves and Migrate wait for a lock in attempts
// bounded by the timeout (half of it on the server: lock_timeout), and the
// relay waits for notifications a few seconds at a time, checking the
// connection in between. The steps of a migration, which may rewrite a
// table, have a deadline of their own, migrateStepTimeout; River's Start,
// whose context is the client's life, is abandoned past the timeout.

// DefaultTimeout is the timeout of every call to Postgres when none is set
// (DB_TIMEOUT). Every statement of this package is a small one (a row by
// key, a count, a short transaction): a healthy server answers in
// milliseconds, so five seconds is a thousand times that, room for load
// spikes, checkpoints and a busy machine, while a client of a hung server
// hears so well before a load balancer's or a browser's patience ends
// (nginx waits 60 s). It matches the connect timeout a replica always had.
const DefaultTimeout = 5 * time.Second

// orDefault returns d, or DefaultTimeout if d is not positive.
func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

// statementTimeout is the server's statement_timeout for a client timeout
// of d: a second more, so that the client's own deadline is what callers
// see, while the server still stops what a departed client left running.
func statementTimeout(d time.Duration) time.Duration { return d + time.Second }

// lockWait is the lock_timeout of an attempt to take a lock that may be
// held for long: half the client's timeout, so that a healthy server ends
// the attempt (and the client tries again) well before the client's
// deadline would end it, and close the connection.
func lockWait(d time.Duration) time.Duration { return max(d/2, time.Millisecond) }

// ms is d as a Postgres setting in milliseconds.
func ms(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) + "ms" }

// lockNotAvailable reports whether err is lock_timeout ending a wait.
func lockNotAvailable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// waitLock runs sql, a pg_advisory_lock call, on conn until it takes the
// lock, in attempts bounded by d on the client and by lockWait(d) on the
// server (conn's lock_timeout, set by the caller): the wait lasts as long
// as the lock is busy and ctx allows, but a server that stops answering is
// noticed within d. On error, conn may have been closed (a deadline or a
// cancellation closes it, which drops any lock it took).
func waitLock(ctx context.Context, conn *pgx.Conn, d time.Duration, sql string, args ...any) error {
	for {
		actx, cancel := context.WithTimeout(ctx, d)
		_, err := conn.Exec(actx, sql, args...)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !lockNotAvailable(err) {
			return err
		}
	}
}
