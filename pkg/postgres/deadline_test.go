package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/internal/pgtest"
	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/pkg/service"
)

// hangGuard bounds the wait for a call against a frozen server: a call
// still running then hangs (its timeout is a fraction of a second).
const hangGuard = 30 * time.Second

// failsInTime runs f, which must fail within hangGuard: it fails t if f
// succeeds, and stops the test if f hangs. The error must come from the
// deadline (context.DeadlineExceeded), not from anything else. It returns
// how long f took, which it logs.
func failsInTime(t *testing.T, name string, f func() error) time.Duration {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f() }()
	select {
	case err := <-done:
		took := time.Since(start)
		switch {
		case err == nil:
			t.Errorf("%s succeeded against a frozen server", name)
		case !errors.Is(err, context.DeadlineExceeded):
			t.Errorf("%s: %v; want an error from the deadline", name, err)
		}
		t.Logf("%-22s failed after %6v: %v", name, took.Round(time.Millisecond), err)
		return took
	case <-time.After(hangGuard):
		t.Fatalf("%s hangs: no answer within %v of a frozen server", name, hangGuard)
		return 0
	}
}

// runRelay runs r until the test ends, and waits until it is ready.
func runRelay(t *testing.T, r *Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-r.Ready():
	case <-time.After(testWait):
		t.Fatal("relay not ready")
	}
}

// removals records the ids a relay's OnRemoved is given.
func removals(r *Relay) <-chan string {
	ch := make(chan string, 1000)
	r.OnRemoved(func(id string) {
		select {
		case ch <- id:
		default: // the test is not reading: drop
		}
	})
	return ch
}

// waitRemoval waits until id comes out of ch, skipping others.
func waitRemoval(t *testing.T, ch <-chan string, id string) {
	t.Helper()
	deadline := time.After(testWait)
	for {
		select {
		case got := <-ch:
			if got == id {
				return
			}
		case <-deadline:
			t.Fatalf("removal of %s not delivered within %v", id, testWait)
		}
	}
}

func newRecord() service.NetworkRecord {
	now := time.Now().UTC()
	return service.NetworkRecord{ID: uuid.NewString(), Sizes: []int{784, 10}, Init: service.InitNormal, Version: 1,
		CreatedAt: now, UpdatedAt: now}
}

// TestFrozenPostgres freezes Postgres (SIGSTOP: connections stay open, and
// nothing answers) under a catalog, queues and two relays with a timeout
// of 300 ms: every call fails within its timeout, however the caller's
// context is set, instead of waiting for the server; the relays notice and
// reconnect; and once the server is thawed everything works again.
func TestFrozenPostgres(t *testing.T) {
	const timeout = 300 * time.Millisecond
	p := pgtest.Start(t)
	// The pool and the schema with the default timeout: a busy machine may
	// take longer than 300 ms to connect.
	pool := connect(t, p.URL())
	if err := Migrate(t.Context(), pool, 0); err != nil {
		t.Fatal(err)
	}
	log, logs := newLogger(t)
	cat := NewCatalog(pool, timeout)
	q := newTestQueue(t, pool, QueueConfig{Timeout: timeout, Logger: log})
	worker := newTestQueue(t, pool, QueueConfig{Workers: 1, Timeout: timeout, Logger: log})
	rec := newRecorder()
	events := NewRelay(pool, RelayConfig{Local: rec, Logger: log, Timeout: timeout})
	removalsOnly := NewRelay(pool, RelayConfig{Logger: log, Timeout: timeout}) // a worker's
	for _, r := range []*Relay{events, removalsOnly} {
		r.poll, r.maxBackoff = 200*time.Millisecond, 200*time.Millisecond
	}
	removedE, removedW := removals(events), removals(removalsOnly)
	runRelay(t, events)
	runRelay(t, removalsOnly)

	ctx := t.Context()
	net := newRecord()
	if err := cat.Add(ctx, net, 100); err != nil {
		t.Fatal(err)
	}
	job := addJob(t, q, newJob(net.ID, 3))
	adm := service.Admission{MaxQueued: 100, MaxQueuedPerClient: 10, MaxNetworkEpochs: 1000}

	p.Freeze(t)
	frozen := time.Now()
	// Both relays notice that the server stopped answering.
	testutil.Eventually(t, testWait, "both relays to notice the frozen server", func() bool {
		return logs.count("lost the connection to Postgres") >= 2
	})
	t.Logf("the relays noticed %v after the freeze (within a wait of %v and a call of %v)",
		time.Since(frozen).Round(time.Millisecond), events.poll, timeout)
	var longest time.Duration
	check := func(name string, f func() error) { longest = max(longest, failsInTime(t, name, f)) }
	// The service calls some of these with context.Background() (a save,
	// which must not be cancelled): that must not hang either.
	bg := context.Background()
	check("Catalog.Get", func() error { _, err := cat.Get(bg, net.ID); return err })
	check("Catalog.List", func() error { _, err := cat.List(ctx); return err })
	check("Catalog.Add", func() error { return cat.Add(ctx, newRecord(), 100) })
	check("Catalog.Update", func() error {
		up := net
		up.Version, up.Trained = 2, true
		return cat.Update(ctx, up)
	})
	check("Catalog.Remove", func() error { return cat.Remove(ctx, uuid.NewString()) })
	check("Catalog.LockSaves", func() error {
		unlock, err := cat.LockSaves(bg, net.ID)
		if err == nil {
			unlock()
		}
		return err
	})
	check("Catalog.Ping", func() error { return cat.Ping(ctx) })
	check("Queue.Get", func() error { _, err := q.Get(ctx, job.ID); return err })
	check("Queue.Active", func() error { _, err := q.Active(ctx); return err })
	check("Queue.Add", func() error { return q.Add(ctx, newJob(net.ID, 1), adm) })
	check("Queue.End", func() error {
		_, _, err := q.End(ctx, job.ID, service.StatusCancelled, errors.New("cancelled"))
		return err
	})
	check("Queue.EndNetwork", func() error {
		_, err := q.EndNetwork(ctx, net.ID, service.StatusFailed, errors.New("deleted"))
		return err
	})
	check("Queue.Epoch", func() error { return q.Epoch(ctx, job.ID, service.EpochResult{Epoch: 1}) })
	check("Queue.Start", func() error { return worker.Start(func(context.Context, service.JobInfo) error { return nil }) })
	check("Relay.NetworkRemoved", func() error { return events.NetworkRemoved(ctx, net.ID) })
	check("Relay.TrainingProgress", func() error {
		before := events.Dropped()
		events.TrainingProgress(progress("frozen", 1))
		if events.Dropped() == before {
			return errors.New("the event was not dropped")
		}
		return context.DeadlineExceeded // it has no error of its own to return
	})
	t.Logf("longest call: %v, with a timeout of %v", longest.Round(time.Millisecond), timeout)

	p.Thaw()
	thawed := time.Now()
	// Everything works again. Each check is retried until it passes, for
	// a busy machine may take longer than the timeout to open the
	// connections the freeze closed; each makes new rows, because a
	// statement that timed out may still have run (as with any timeout, a
	// statement sent reaches the server once it reads it).
	works := func(name string, f func() error) {
		t.Helper()
		attempts := 0
		var err error
		if !testutil.Poll(testWait, 0, func() bool { attempts++; err = f(); return err == nil }) {
			t.Fatalf("%s after the thaw: %v", name, err)
		}
		if attempts > 1 {
			t.Logf("%s worked after the thaw at attempt %d", name, attempts)
		}
	}
	works("Catalog.Get", func() error { _, err := cat.Get(ctx, net.ID); return err })
	works("Catalog.List", func() error { _, err := cat.List(ctx); return err })
	works("Catalog.Add, Update", func() error {
		later := newRecord()
		if err := cat.Add(ctx, later, 100); err != nil {
			return err
		}
		later.Version = 2
		return cat.Update(ctx, later)
	})
	works("Catalog.LockSaves", func() error {
		unlock, err := cat.LockSaves(bg, net.ID)
		if err == nil {
			unlock()
		}
		return err
	})
	works("Catalog.Ping", func() error { return cat.Ping(ctx) })
	works("Queue.Get", func() error { _, err := q.Get(ctx, job.ID); return err })
	works("Queue.Active", func() error { _, err := q.Active(ctx); return err })
	works("Queue.Add, End", func() error {
		next := newJob(uuid.NewString(), 1)
		if err := q.Add(ctx, next, adm); err != nil {
			return err
		}
		_, e, err := q.End(ctx, next.ID, service.StatusCancelled, errors.New("cancelled"))
		if err == nil && !e.Now {
			err = fmt.Errorf("End: %+v", e)
		}
		return err
	})
	works("Queue.Start", func() error {
		return worker.Start(func(ctx context.Context, j service.JobInfo) error {
			_, _, err := worker.End(ctx, j.ID, service.StatusCompleted, nil)
			return err
		})
	})
	// The relays are back: an event published now reaches the events
	// relay's clients, and removals reach both. A removal is not stored,
	// so it is sent again until it comes: the relays may still be
	// reconnecting.
	events.TrainingProgress(progress("thawed", 1))
	for rec.next(t).event != progress("thawed", 1) { // the frozen one may come first
	}
	gone := uuid.NewString()
	for delivered := false; !delivered; {
		works("Relay.NetworkRemoved", func() error { return events.NetworkRemoved(ctx, gone) })
		select {
		case id := <-removedW:
			delivered = id == gone
		case <-time.After(100 * time.Millisecond): // then send it again
		}
	}
	waitRemoval(t, removedE, gone)
	t.Logf("the relays delivered again %v after the thaw", time.Since(thawed).Round(time.Millisecond))
}

// TestCatalogPing: Ping answers while Postgres runs, fails within the
// timeout once it is stopped, and answers again once it is back.
func TestCatalogPing(t *testing.T) {
	const timeout = time.Second
	p := pgtest.Start(t)
	pool, err := Connect(t.Context(), p.URL(), timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	cat := NewCatalog(pool, timeout)
	var _ service.Pinger = cat
	if err := cat.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	p.Stop()
	done := make(chan error, 1)
	go func() { done <- cat.Ping(t.Context()) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Ping succeeded with Postgres stopped")
		}
		t.Logf("Ping with Postgres stopped: %v", err)
	case <-time.After(hangGuard):
		t.Fatal("Ping hangs with Postgres stopped")
	}
	p.Restart(t)
	// The pool's connections died with the server: a Ping may meet one.
	testutil.Eventually(t, testWait, "Ping to succeed after the restart", func() bool { return cat.Ping(t.Context()) == nil })
}

// TestLockSavesWaitsPastTimeout: the timeout bounds each attempt to take
// a save lock, not the wait: a lock held longer than the timeout is taken
// once free, and the wait ends only with the caller's context.
func TestLockSavesWaitsPastTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	url := pgtest.NewDatabase(t)
	a, b := NewCatalog(connect(t, url), timeout), NewCatalog(connect(t, url), timeout)
	id := uuid.NewString()
	// Connections made beforehand, so that no connection has to be made
	// within the timeout on a busy machine.
	for _, c := range []*Catalog{a, b} {
		if err := c.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	unlock, err := a.LockSaves(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	start := time.Now()
	go func() {
		u, err := b.LockSaves(context.Background(), id)
		if err == nil {
			u()
		}
		got <- err
	}()
	// The stimulus: hold the lock for several timeouts (a slower machine
	// only holds it longer).
	time.Sleep(4 * timeout)
	select {
	case err := <-got:
		t.Fatalf("LockSaves returned while the lock was held: %v", err)
	default:
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the lock was taken %v after the wait began (timeout %v)", time.Since(start).Round(time.Millisecond), timeout)
	case <-time.After(testWait):
		t.Fatal("the lock was not taken once free")
	}
	// A wait the caller gives up on ends with the caller's context.
	unlock, err = a.LockSaves(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 3*timeout)
	defer cancel()
	if _, err := b.LockSaves(ctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LockSaves past the caller's deadline: %v", err)
	}
}

// TestConnectSettings: Connect sets the connect timeout and the server's
// statement_timeout from the timeout, unless DATABASE_URL sets them.
func TestConnectSettings(t *testing.T) {
	url := pgtest.NewDatabase(t)
	show := func(t *testing.T, url string, timeout time.Duration) (connect time.Duration, stmt string) {
		t.Helper()
		pool, err := Connect(t.Context(), url, timeout)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		if err := pool.QueryRow(t.Context(), "SHOW statement_timeout").Scan(&stmt); err != nil {
			t.Fatal(err)
		}
		return pool.Config().ConnConfig.ConnectTimeout, stmt
	}
	for _, tc := range []struct {
		query       string
		timeout     time.Duration
		connect     time.Duration
		stmtTimeout string
	}{
		{"", 0, DefaultTimeout, "6s"},
		{"", 2500 * time.Millisecond, 2500 * time.Millisecond, "3500ms"},
		{"&connect_timeout=7&statement_timeout=42s", time.Second, 7 * time.Second, "42s"},
	} {
		t.Run(fmt.Sprint(tc.timeout), func(t *testing.T) {
			connect, stmt := show(t, url+tc.query, tc.timeout)
			if connect != tc.connect || stmt != tc.stmtTimeout {
				t.Errorf("connect timeout %v, statement_timeout %s; want %v, %s", connect, stmt, tc.connect, tc.stmtTimeout)
			}
		})
	}
	// Migrate's pool of its own, without the short statement_timeout,
	// leaves the pool it was given as it was.
	pool := connect(t, url)
	if err := Migrate(t.Context(), pool, 0); err != nil {
		t.Fatal(err)
	}
	c, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	c.Conn().Close(t.Context()) // the next acquire opens a new one
	var stmt string
	if err := pool.QueryRow(t.Context(), "SHOW statement_timeout").Scan(&stmt); err != nil || stmt != "6s" {
		t.Errorf("statement_timeout after Migrate: %q, %v; want 6s", stmt, err)
	}
}

// TestQueueDefaults: a Queue's zero settings are the package's defaults,
// which cmd/server's flags take as theirs.
func TestQueueDefaults(t *testing.T) {
	t.Parallel()
	q, err := NewQueue(t.Context(), migrated(t), QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if q.cfg.TakeoverAfter != DefaultTakeoverAfter || q.timeout != DefaultTimeout || q.pingTimeout != DefaultTimeout {
		t.Errorf("takeover after %v, timeout %v, ping timeout %v; want %v, %v, %v", q.cfg.TakeoverAfter, q.timeout, q.pingTimeout,
			DefaultTakeoverAfter, DefaultTimeout, DefaultTimeout)
	}
}
