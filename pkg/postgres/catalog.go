package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/model"
	"hash/fnv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mnist-go/nnserver/pkg/service"
)

// Advisory locks
//
// Postgres has one space of advisory locks per database, shared by every
// client: the one-bigint form pg_advisory_lock(key) and the two-int form
// pg_advisory_lock(classid, objid) never collide (pg_locks tells them apart
// by objsubid, 1 and 2). This package uses:
//
//   - bigint keys, each an 8-letter ASCII name, for locks around a whole
//     table: migrateLockKey, relayLockKey, catalogAddLockKey, queueAddLockKey.
//     River's own locks are bigint keys too (hashes).
//   - two-int keys for locks per network: classid says what is locked
//     (saveLockClass, trainLockClass), objid is a 32-bit FNV-1a hash of the
//     network id (lockObjID). Two networks may share a hash (one chance in
//     2^32 per pair): they then wait for each other, which is slower, never
//     wrong.
const (
	// catalogAddLockKey serialises Catalog.Add, so that the count it checks
	// against max cannot change before its insert commits: "nnsrvnet".
	catalogAddLockKey int64 = 0x6e6e7372766e6574
	// saveLockClass is the classid of a network's save lock: "nnsS".
	saveLockClass int32 = 0x6e6e7353
	// trainLockClass is the classid of a network's training lock: "nnsT".
	trainLockClass int32 = 0x6e6e7354
)

// lockObjID is the objid of a network's two-int advisory locks.
func lockObjID(networkID string) int32 {
	h := fnv.New32a()
	h.Write([]byte(networkID))
	return int32(h.Sum32())
}

// keepaliveSQL makes Postgres notice within about 25 s that a client
// holding a lock has vanished (its machine died, the network dropped): the
// kernel's default, two hours, would keep the lock that long. A process
// that dies on a live machine closes its connections at once. On a Unix
// socket the settings do nothing.
const keepaliveSQL = "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3"

// Catalog is the service.Catalog of scaled mode: the networks table,
// nnserver_networks, shared by every replica.
//
// Times are kept to the microsecond, as Postgres keeps them: CreatedAt and
// UpdatedAt are rounded to the microsecond on the way in, and come back in
// UTC.
//
// Each method's call to Postgres is bounded by the catalog's timeout, on top
// of the caller's context (see Deadlines in timeout.go).
type Catalog struct {
	pool    *pgxpool.Pool
	timeout time.Duration
}

var (
	_ service.Catalog = (*Catalog)(nil)
	_ service.Pinger  = (*Catalog)(nil)
)

// NewCatalog returns the Catalog kept in pool's database (migrated with
// Migrate), whose calls each take at most timeout (DB_TIMEOUT; 0:
// DefaultTimeout).
func NewCatalog(pool *pgxpool.Pool, timeout time.Duration) *Catalog {
	return &Catalog{pool: pool, timeout: orDefault(timeout)}
}

// Ping checks that the database answers within the timeout: the service's
// readiness (service.Pinger).
func (c *Catalog) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var one int
	if err := c.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// canonicalUUID reports whether id is a UUID as this service writes them
// (lowercase, with hyphens): anything else names no network or job, and
// must not reach a uuid column, where Postgres would reject it or accept
// other spellings.
func canonicalUUID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

func roundTime(t time.Time) time.Time { return t.Round(time.Microsecond).UTC() }

const networkColumns = "id::text, sizes, init, seed, trained, accuracy, epochs_trained, created_at, updated_at, version, owner_hash, name, notes, layers"

func scanNetwork(row pgx.Row) (service.NetworkRecord, error) {
	var (
		r     service.NetworkRecord
		sizes []int32
		init  string
		seed  *int64
		owner *string
		lays  []byte
	)
	if err := row.Scan(&r.ID, &sizes, &init, &seed, &r.Trained, &r.Accuracy, &r.EpochsTrained,
		&r.CreatedAt, &r.UpdatedAt, &r.Version, &owner, &r.Name, &r.Notes, &lays); err != nil {
		return service.NetworkRecord{}, err
	}
	if lays != nil {
		var js []model.LayerJSON
		if err := json.Unmarshal(lays, &js); err != nil {
			return service.NetworkRecord{}, fmt.Errorf("network %s: layers: %w", r.ID, err)
		}
		r.Layers = model.FromJSON(js)
	}
	r.Sizes = make([]int, len(sizes))
	for i, s := range sizes {
		r.Sizes[i] = int(s)
	}
	r.Init = service.Init(init)
	if owner != nil {
		r.OwnerHash = *owner
	}
	if seed != nil {
		s := uint64(*seed)
		r.Seed = &s
	}
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return r, nil
}

// networkArgs returns rec's columns after id, in networkColumns' order,
// without owner_hash, name and notes, which only Add (and Label) write.
func networkArgs(rec service.NetworkRecord) []any {
	sizes := make([]int32, len(rec.Sizes))
	for i, s := range rec.Sizes {
		sizes[i] = int32(s)
	}
	var seed *int64
	if rec.Seed != nil {
		s := int64(*rec.Seed) // the bits; seeds are below 2^53 anyway
		seed = &s
	}
	return []any{sizes, string(rec.Init), seed, rec.Trained, rec.Accuracy, rec.EpochsTrained,
		roundTime(rec.CreatedAt), roundTime(rec.UpdatedAt), rec.Version}
}

// Add records rec unless max networks are recorded. Concurrent Adds, on any
// replica, take turns on an advisory transaction lock: each counts and
// inserts alone, so max holds for the whole deployment.
func (c *Catalog) Add(ctx context.Context, rec service.NetworkRecord, max int) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		// Separate statements: in READ COMMITTED each sees what committed
		// before it began, so the count, made once the lock is held, sees
		// every Add that held it before.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", catalogAddLockKey); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM nnserver_networks").Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return service.ErrCatalogFull
		}
		var owner *string
		if rec.OwnerHash != "" {
			owner = &rec.OwnerHash
		}
		var lays []byte // NULL for a layer_sizes network
		if rec.Layers != nil {
			var err error
			if lays, err = json.Marshal(model.ToJSON(rec.Layers, nil)); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO nnserver_networks (id, sizes, init, seed, trained, accuracy, epochs_trained,
	created_at, updated_at, version, owner_hash, name, notes, layers)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			append(append([]any{rec.ID}, networkArgs(rec)...), owner, rec.Name, rec.Notes, lays)...)
		return err
	})
	if err != nil && !errors.Is(err, service.ErrCatalogFull) {
		return fmt.Errorf("postgres: adding network %s: %w", rec.ID, err)
	}
	return err
}

// Get returns a network's record.
func (c *Catalog) Get(ctx context.Context, id string) (service.NetworkRecord, error) {
	if !canonicalUUID(id) {
		return service.NetworkRecord{}, service.ErrUnknownNetwork
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	r, err := scanNetwork(c.pool.QueryRow(ctx, "SELECT "+networkColumns+" FROM nnserver_networks WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return service.NetworkRecord{}, service.ErrUnknownNetwork
	}
	if err != nil {
		return service.NetworkRecord{}, fmt.Errorf("postgres: reading network %s: %w", id, err)
	}
	return r, nil
}

// List returns every record.
func (c *Catalog) List(ctx context.Context) ([]service.NetworkRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	rows, err := c.pool.Query(ctx, "SELECT "+networkColumns+" FROM nnserver_networks")
	if err != nil {
		return nil, fmt.Errorf("postgres: listing networks: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (service.NetworkRecord, error) { return scanNetwork(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: listing networks: %w", err)
	}
	return recs, nil
}

// Update replaces a record if it is at rec.Version-1, in one statement
// that also tells a moved version from a removed network.
func (c *Catalog) Update(ctx context.Context, rec service.NetworkRecord) error {
	if !canonicalUUID(rec.ID) {
		return service.ErrUnknownNetwork
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var updated, exists bool
	err := c.pool.QueryRow(ctx, `WITH u AS (
	UPDATE nnserver_networks SET sizes = $2, init = $3, seed = $4, trained = $5, accuracy = $6,
		epochs_trained = $7, created_at = $8, updated_at = $9, version = $10
	WHERE id = $1 AND version = $10 - 1
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM u), EXISTS (SELECT 1 FROM nnserver_networks WHERE id = $1)`,
		append([]any{rec.ID}, networkArgs(rec)...)...).Scan(&updated, &exists)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: updating network %s: %w", rec.ID, err)
	case updated:
		return nil
	case exists:
		return service.ErrVersionMoved
	}
	return service.ErrUnknownNetwork
}

// Label sets a network's name and notes, and nothing else.
func (c *Catalog) Label(ctx context.Context, id, name, notes string) error {
	if !canonicalUUID(id) {
		return service.ErrUnknownNetwork
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tag, err := c.pool.Exec(ctx, "UPDATE nnserver_networks SET name = $2, notes = $3 WHERE id = $1", id, name, notes)
	if err != nil {
		return fmt.Errorf("postgres: labelling network %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return service.ErrUnknownNetwork
	}
	return nil
}

// Remove deletes a record.
func (c *Catalog) Remove(ctx context.Context, id string) error {
	if !canonicalUUID(id) {
		return service.ErrUnknownNetwork
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tag, err := c.pool.Exec(ctx, "DELETE FROM nnserver_networks WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("postgres: removing network %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return service.ErrUnknownNetwork
	}
	return nil
}

// LockSaves takes the network's save lock: a session advisory lock
// (saveLockClass, lockObjID(id)) held by a connection taken out of the
// pool for as long as the lock is held, so that held locks never starve
// the pool (a save holding its lock needs the pool for the catalog). It
// waits until the lock is free or ctx ends, in attempts bounded by the
// timeout (waitLock): a server that stops answering fails it within the
// timeout, whatever ctx allows. Unlocking releases the lock and closes the
// connection (the pool opens a new one when it needs it); a replica that
// dies releases its locks with its connections.
func (c *Catalog) LockSaves(ctx context.Context, id string) (func(), error) {
	conn, err := lockConn(ctx, c.pool, c.timeout)
	if err != nil {
		return nil, fmt.Errorf("postgres: locking saves of network %s: %w", id, err)
	}
	key := lockObjID(id)
	// When ctx ends, pgx abandons the statement and closes the connection,
	// sending Postgres a cancel request first: the server stops waiting
	// too (TestCatalogTwoReplicas checks that no wait is left behind).
	if err := waitLock(ctx, conn, c.timeout, "SELECT pg_advisory_lock($1, $2)", saveLockClass, key); err != nil {
		closeConn(conn, c.timeout)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("postgres: locking saves of network %s: %w", id, err)
	}
	var once sync.Once
	return func() { once.Do(func() { unlockAndClose(conn, saveLockClass, key, c.timeout) }) }, nil
}

// lockConn takes a connection out of pool for a session lock, within
// timeout, tells Postgres to notice soon if this client vanishes
// (keepaliveSQL), and sets its lock_timeout for waitLock. The caller
// closes it.
func lockConn(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	conn := pc.Hijack()
	if _, err := conn.Exec(ctx, keepaliveSQL+"; SET lock_timeout = '"+ms(lockWait(timeout))+"'"); err != nil {
		closeConn(conn, timeout)
		return nil, err
	}
	return conn, nil
}

// unlockAndClose releases a session advisory lock and closes its
// connection, within timeout; should the unlock fail, closing releases it.
func unlockAndClose(conn *pgx.Conn, class, key int32, timeout time.Duration) {
	// Not the caller's context: the lock must go whatever became of it,
	// and unlock functions take none.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn.Exec(ctx, "SELECT pg_advisory_unlock($1, $2)", class, key)
	conn.Close(ctx) // at once if ctx has ended
}

// closeConn closes a connection taken out of the pool, within timeout.
func closeConn(conn *pgx.Conn, timeout time.Duration) {
	// Not the caller's context: a connection that may hold a lock must be
	// closed whatever became of it.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn.Close(ctx)
}
