package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func query(t *testing.T, url, sql string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRestart checks that a server keeps its data and port across a stop
// and a kill.
func TestRestart(t *testing.T) {
	start := time.Now()
	p := Start(t)
	t.Logf("Start took %v", time.Since(start))
	query(t, p.URL(), "SELECT count(*) FROM (SELECT 1) x")
	c, err := pgx.Connect(t.Context(), p.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(t.Context(), "CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	c.Close(t.Context())

	p.Stop()
	if p.Running() {
		t.Fatal("running after Stop")
	}
	if _, err := pgx.Connect(t.Context(), p.URL()); err == nil {
		t.Fatal("connected to a stopped server")
	}
	start = time.Now()
	p.Restart(t)
	t.Logf("Restart after Stop took %v", time.Since(start))
	if n := query(t, p.URL(), "SELECT n FROM kept"); n != 1 {
		t.Fatalf("after restart: %d", n)
	}

	// A connection open across a kill: its backend dies too.
	c, err = pgx.Connect(t.Context(), p.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(t.Context(), "INSERT INTO kept VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	p.Kill()
	if err := c.Ping(t.Context()); err == nil {
		t.Fatal("a connection survived Kill")
	}
	start = time.Now()
	p.Restart(t)
	t.Logf("Restart after Kill took %v", time.Since(start))
	if n := query(t, p.URL(), "SELECT count(*) FROM kept"); n != 2 {
		t.Fatalf("after a kill: %d rows, want the 2 committed", n)
	}
}

// TestNewDatabase checks that shared databases are distinct and empty.
func TestNewDatabase(t *testing.T) {
	a, b := NewDatabase(t), NewDatabase(t)
	if a == b {
		t.Fatal("same URL twice")
	}
	c, err := pgx.Connect(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(t.Context(), "CREATE TABLE only_in_a (n int)"); err != nil {
		t.Fatal(err)
	}
	if n := query(t, b, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"); n != 0 {
		t.Fatal("a table of one database is seen in another")
	}
}

// TestFreeze checks that a frozen server answers nothing, on connections
// open before or made during the freeze, and answers again once thawed.
func TestFreeze(t *testing.T) {
	p := Start(t)
	c, err := pgx.Connect(t.Context(), p.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	p.Freeze(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	err = c.Ping(ctx)
	cancel()
	if err == nil {
		t.Fatal("a frozen server answered a ping")
	}
	ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
	c2, err := pgx.Connect(ctx, p.URL())
	cancel()
	if err == nil {
		c2.Close(context.Background())
		t.Fatal("a frozen server accepted a connection")
	}
	p.Thaw()
	if n := query(t, p.URL(), "SELECT 1"); n != 1 {
		t.Fatalf("after the thaw: %d", n)
	}
	// Frozen again, and left frozen: the test's end thaws and stops it.
	p.Freeze(t)
}
