package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/pkg/service"
	"github.com/mnist-go/nnserver/pkg/service/statetest"
)

// The contract of every Queue, each case on a file of its own. Stop hands
// running jobs over, as scaled mode's does: the next process resumes them.
func TestQueueContract(t *testing.T) {
	statetest.RunQueue(t, statetest.QueueOptions{HandsOver: true},
		func(t *testing.T, workers int, lim service.Limits, now func() time.Time) service.Queue {
			return openDB(t, filepath.Join(t.TempDir(), "jobs.db")).Queue(workers, lim, now)
		})
}

// openDB opens the database at path, closed when the test ends.
func openDB(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var _ = context.Background
