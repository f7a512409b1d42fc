package postgres

import (
	"bytes"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mnist-go/nnserver/internal/pgtest"
)

// The tests share one Postgres server, each with databases of its own.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func itoa(n int) string { return strconv.Itoa(n) }

func hostPort(t *testing.T, s string) string {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// connect opens a pool on url, closed when the test ends.
func connect(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := Connect(t.Context(), url, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// migrated returns a pool on a new, migrated database.
func migrated(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := connect(t, pgtest.NewDatabase(t))
	if err := Migrate(t.Context(), pool, 0); err != nil {
		t.Fatal(err)
	}
	return pool
}

// logBuffer collects a logger's lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count returns the lines holding s.
func (b *logBuffer) count(s string) int {
	n := 0
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

func newLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", b)
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}
