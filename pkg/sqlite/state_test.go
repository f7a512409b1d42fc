package sqlite

import (
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
			return openDB(t, dbPath(t)).Queue(workers, lim, now)
		})
}
