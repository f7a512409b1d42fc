package postgres

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mnist-go/nnserver/internal/pgtest"
)

func versions(t *testing.T, pool *pgxpool.Pool, table string) []int {
	t.Helper()
	rows, _ := pool.Query(t.Context(), "SELECT version FROM "+table+" ORDER BY version")
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func tableExists(t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(t.Context(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestMigrateConcurrently starts four "replicas" on a fresh database at
// once: each migrates, none fails, and every step is applied once.
func TestMigrateConcurrently(t *testing.T) {
	url := pgtest.NewDatabase(t)
	pools := make([]*pgxpool.Pool, 4)
	for i := range pools {
		pools[i] = connect(t, url)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(pools))
	for i, p := range pools {
		wg.Go(func() { errs[i] = Migrate(t.Context(), p, 0) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	pool := pools[0]
	var want []int
	for _, m := range migrations {
		want = append(want, m.Version)
	}
	if got := versions(t, pool, "nnserver_migrations"); !slices.Equal(got, want) {
		t.Errorf("nnserver_migrations: %v, want %v", got, want)
	}
	river := versions(t, pool, "river_migration")
	if len(river) == 0 {
		t.Error("river_migration is empty")
	}
	for _, table := range []string{"nnserver_events", "river_job", "river_leader", "river_queue"} {
		if !tableExists(t, pool, table) {
			t.Errorf("no table %s", table)
		}
	}
	// Again: nothing to do.
	if err := Migrate(t.Context(), pool, 0); err != nil {
		t.Fatal(err)
	}
	if got := versions(t, pool, "river_migration"); !slices.Equal(got, river) {
		t.Errorf("river_migration after a second run: %v, want %v", got, river)
	}
	t.Logf("River's migrations: %v", river)
}

// TestMigrateAppendedStep checks that a step appended to migrations is
// applied once on a database migrated before, and that a failing step
// leaves no trace.
func TestMigrateAppendedStep(t *testing.T) {
	pool := migrated(t)
	defer func(ms []migration) { migrations = ms }(migrations)
	n := len(migrations)

	migrations = append(slices.Clip(migrations), migration{n + 1, "a broken step",
		"CREATE TABLE half_done (n int); SELECT no_such_function()"})
	err := Migrate(t.Context(), pool, 0)
	if err == nil || !strings.Contains(err.Error(), "a broken step") {
		t.Fatalf("Migrate with a broken step: %v", err)
	}
	if tableExists(t, pool, "half_done") {
		t.Error("a failed step left a table behind")
	}
	if got := versions(t, pool, "nnserver_migrations"); len(got) != n {
		t.Errorf("a failed step was recorded: %v", got)
	}

	migrations[n] = migration{n + 1, "a new table", "CREATE TABLE added_later (n int)"}
	for range 2 {
		if err := Migrate(t.Context(), pool, 0); err != nil {
			t.Fatal(err)
		}
	}
	if !tableExists(t, pool, "added_later") {
		t.Error("the appended step did not run")
	}
	if got := versions(t, pool, "nnserver_migrations"); len(got) != n+1 || got[n] != n+1 {
		t.Errorf("nnserver_migrations: %v", got)
	}
}

func TestCheckMigrations(t *testing.T) {
	if err := checkMigrations(migrations); err != nil {
		t.Fatal(err)
	}
	if err := checkMigrations([]migration{{1, "a", "SELECT 1"}, {3, "c", "SELECT 1"}}); err == nil {
		t.Error("a gap in the versions was accepted")
	}
}
