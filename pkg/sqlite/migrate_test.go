package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/pkg/service"
)

func TestCheckMigrations(t *testing.T) {
	if err := checkMigrations(migrations); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]migration{
		{{2, "two", "SELECT 1"}},
		{{1, "one", "SELECT 1"}, {3, "three", "SELECT 1"}},
		{{1, "one", ""}},
	} {
		if err := checkMigrations(bad); err == nil {
			t.Errorf("checkMigrations(%+v) accepted them", bad)
		}
	}
}

// Each step runs once, however often the file is opened; steps recorded
// by a newer release are left alone; the settings hold on the file.
func TestMigrateOnceAndSettings(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	db := openDB(t, path)
	if _, err := db.sql.ExecContext(ctx, "INSERT INTO migrations (version, name, applied_at) VALUES (99, 'from a newer release', 0)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openDB(t, path)
	var n, max int
	if err := db.sql.QueryRowContext(ctx, "SELECT count(*), max(version) FROM migrations WHERE version <= ?", len(migrations)).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(migrations) || max != len(migrations) {
		t.Errorf("%d steps recorded, the last %d; want %d", n, max, len(migrations))
	}
	// Every connection has the settings, not only the first.
	conns := make([]interface{ Close() error }, 0, 4)
	for i := range 4 {
		c, err := db.sql.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var mode string
		var sync, fk, busy int
		for q, dest := range map[string]any{"journal_mode": &mode, "synchronous": &sync, "foreign_keys": &fk, "busy_timeout": &busy} {
			if err := c.QueryRowContext(ctx, "PRAGMA "+q).Scan(dest); err != nil {
				t.Fatal(err)
			}
		}
		if mode != "wal" || sync != 2 || fk != 1 || busy != int(DefaultBusyTimeout.Milliseconds()) {
			t.Errorf("connection %d: journal_mode %s, synchronous %d, foreign_keys %d, busy_timeout %d", i, mode, sync, fk, busy)
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

// A job's epochs go with it when it is forgotten (foreign keys cascade).
func TestPruneTakesTheEpochs(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, dbPath(t))
	lim := service.DefaultLimits()
	lim.MaxFinishedJobs = 0
	q := newQueue(t, db, 1, lim, nil)
	w := newWorker(q)
	j := job("net", 1)
	mustAdd(t, q, j)
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	w.nextIs(t, j)
	w.complete(j.ID)
	testutil.Eventually(t, waitLimit, "the finished job to be forgotten (MaxFinishedJobs 0)", func() bool {
		_, err := q.Get(ctx, j.ID)
		return errors.Is(err, service.ErrUnknownJob)
	})
	var n int
	if err := db.sql.QueryRowContext(ctx, "SELECT count(*) FROM job_epochs").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d epochs left of forgotten jobs (%v)", n, err)
	}
}

// A file that is not a database is refused, with its name, and left
// alone.
func TestOpenRefusesAFileThatIsNotADatabase(t *testing.T) {
	path := dbPath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	junk := []byte(strings.Repeat("not a database ", 500))
	if err := os.WriteFile(path, junk, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), path, Config{Logger: testLogger(t)})
	if err == nil {
		db.Close()
		t.Fatal("Open accepted a file that is not a database")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("the error does not name the file: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(junk) {
		t.Error("the file was changed")
	}
}

func TestQueueTwicePanics(t *testing.T) {
	db := openDB(t, dbPath(t))
	db.Queue(1, service.DefaultLimits(), nil)
	defer func() {
		if recover() == nil {
			t.Error("a second Queue on one DB")
		}
	}()
	db.Queue(1, service.DefaultLimits(), nil)
}
