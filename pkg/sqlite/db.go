// Package sqlite keeps single mode's training jobs in an embedded SQLite
// file (pure Go: modernc.org/sqlite, so the binary stays static), so that
// they survive a restart: a graceful stop, a crash, kill -9 or a new deploy
// on the same volume. Its Queue is the in-memory queue's behaviour
// (service.NewMemoryQueue: FIFO, a fixed pool of workers, one job per
// network at a time, the same admission and retention), with every change
// of state a transaction; and like scaled mode's it hands its running jobs
// over when it stops (service.ErrHandOver), so that the next process
// resumes them from their last recorded epoch.
//
// There is no Catalog here: in single mode the model files are the
// networks' source of truth (each holds every field of the network's
// record), and the service rebuilds its in-memory catalog from them at
// start. A persistent copy would add nothing the files do not say, and a
// way for the two to disagree: a crash between a model's save and the
// record's update, a file deleted or copied in by hand.
//
// Not River (whose SQLite driver would share pkg/postgres's design): one
// process needs none of its distributed machinery (leader election,
// rescuers, snoozes), and one job per network at a time, which River does
// not know, pkg/postgres builds from Postgres's advisory locks, which
// SQLite lacks. Here a mutex and a condition variable schedule, and the
// file records.
//
// # Durability
//
// The file is in WAL mode with synchronous=FULL: a transaction is on disk
// (the WAL is fsynced) when its commit returns, so an epoch recorded, a job
// added or ended survives a power cut, not only a crash of the process,
// like the model file the epoch was saved to (pkg/dirstore fsyncs it).
// foreign_keys is on: an epoch's record goes with its job.
//
// # One process at a time
//
// Open takes an exclusive lock (flock) on a file beside the database,
// path+".lock", held until Close: a second process on the same file (an
// overlapping deploy on the same volume) waits until the first has closed
// it, rather than both resuming the same jobs. The kernel releases the
// lock when a process dies, however it dies.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// DefaultBusyTimeout is Config.BusyTimeout's default.
const DefaultBusyTimeout = 5 * time.Second

// SQLite's memory is outside Go's heap (the driver's C library allocates
// with mmap), so neither the memory budget nor the garbage collector's
// limit holds it: it is bounded here instead. Each connection's page cache
// holds at most CachePages pages of 4 KiB (the jobs database of a busy
// server is a few MB: a job is about 250 bytes, an epoch 70), and SQLite
// frees cache pages to keep all it allocates under HeapLimit (its soft
// heap limit, process-wide). docs/LIMITS.md counts HeapLimit in the
// arithmetic of a container's memory.
const (
	CachePages = 256     // 1 MiB per connection, at most maxConns connections
	HeapLimit  = 4 << 20 // 4 MiB
	maxConns   = 4
)

// Config configures a DB.
type Config struct {
	// BusyTimeout is how long a statement waits for a lock another
	// connection holds (SQLite's busy_timeout). The Queue makes one write
	// at a time, so this is a guard against the unexpected, such as a
	// checkpoint. 0: DefaultBusyTimeout.
	BusyTimeout time.Duration
	// Logger logs what the DB and its Queue cannot return as an error
	// (a worker's failure to read the database, a wait for the lock).
	// nil: slog.Default().
	Logger *slog.Logger
}

// DB is an open job database.
type DB struct {
	sql  *sql.DB
	path string
	log  *slog.Logger

	mu     sync.Mutex
	queued bool   // Queue was called
	unlock func() // releases the file lock
}

// Open opens the database at path, creating it (and its directory) if
// needed, and brings its schema up to date. It first takes the file's lock
// (see the package's doc), waiting for another process to release it until
// ctx ends.
func Open(ctx context.Context, path string, cfg Config) (*DB, error) {
	if cfg.BusyTimeout <= 0 {
		cfg.BusyTimeout = DefaultBusyTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	unlock, err := lockFile(ctx, abs+".lock", cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("sqlite: locking %s: %w", abs, err)
	}
	sqldb, err := sql.Open("sqlite", dsn(abs, cfg.BusyTimeout))
	if err != nil {
		unlock()
		return nil, fmt.Errorf("sqlite: opening %s: %w", abs, err)
	}
	// Reads (Get, Active) run beside the one write of the moment.
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
	db := &DB{sql: sqldb, path: abs, log: cfg.Logger, unlock: unlock}
	if err := db.check(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", abs, err)
	}
	if err := migrate(ctx, sqldb); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", abs, err)
	}
	return db, nil
}

// dsn is the driver's name for the file at abs with our settings, which the
// driver applies to every connection it opens. The path is a URI's, so
// that no character of it ('?', '#', '%') is taken for anything else.
func dsn(abs string, busy time.Duration) string {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(busy.Milliseconds(), 10))
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_foreign_keys", "1")
	// Writes take the write lock when they begin, so that one never has to
	// upgrade a read to a write (which fails at once, busy timeout or not,
	// if another connection wrote meanwhile). Read-only transactions still
	// begin deferred.
	q.Set("_txlock", "immediate")
	q.Add("_pragma", fmt.Sprintf("cache_size(%d)", CachePages))
	q.Add("_pragma", fmt.Sprintf("soft_heap_limit(%d)", HeapLimit))
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}).String()
}

// check makes sure the settings took (journal_mode=WAL can silently stay
// what it was, on a file system without shared memory) and that the file
// is not corrupt.
func (db *DB) check(ctx context.Context) error {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var mode string
	var sync, fk, cache, heap int
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&cache); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA soft_heap_limit").Scan(&heap); err != nil {
		return err
	}
	if mode != "wal" || sync != 2 || fk != 1 || cache != CachePages || heap != HeapLimit {
		return fmt.Errorf("settings did not take: journal_mode %s, synchronous %d, foreign_keys %d, cache_size %d, soft_heap_limit %d (want wal, 2, 1, %d, %d)",
			mode, sync, fk, cache, heap, CachePages, HeapLimit)
	}
	var ok string
	if err := conn.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&ok); err != nil {
		return err
	}
	if ok != "ok" {
		return fmt.Errorf("the database is corrupt (%s); move it aside to start with no jobs", ok)
	}
	return nil
}

// Path returns the database file's absolute path.
func (db *DB) Path() string { return db.path }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.sql.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close closes the database and releases its lock. Stop the Queue first:
// its workers use the database until Stop has returned.
func (db *DB) Close() error {
	err := db.sql.Close()
	db.mu.Lock()
	unlock := db.unlock
	db.unlock = nil
	db.mu.Unlock()
	if unlock != nil {
		unlock()
	}
	if err != nil {
		return fmt.Errorf("sqlite: closing %s: %w", db.path, err)
	}
	return nil
}

// errQueueTwice: a DB has one Queue.
var errQueueTwice = errors.New("sqlite: DB.Queue called twice: a DB has one Queue, which alone runs its jobs")
