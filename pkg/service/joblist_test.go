package service

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
)

// TestMemoryQueueListForgets: the in-memory queue's list order drops the
// jobs it forgets, so that it stays within MaxFinishedJobs and the pending
// jobs (amortised: at most twice as long).
func TestMemoryQueueListForgets(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxFinishedJobs = 3
	q := NewMemoryQueue(1, lim, nil).(*memQueue)
	ctx := context.Background()
	seed := uint64(1)
	var last string
	for range 1000 {
		j := JobInfo{ID: uuid.NewString(), NetworkID: uuid.NewString(), Params: TrainParams{Epochs: 1, Seed: &seed}}
		if err := q.Add(ctx, j, Admission{MaxQueued: 10}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.End(ctx, j.ID, StatusCancelled, errors.New("x")); err != nil {
			t.Fatal(err)
		}
		last = j.ID
	}
	p, err := q.List(ctx, JobFilter{Limit: 100})
	if err != nil || len(p.Jobs) != 3 || p.Jobs[0].ID != last || p.Next != 0 {
		t.Fatalf("List: %d jobs, first %s, next %d, %v; want the 3 kept, newest first", len(p.Jobs), p.Jobs[0].ID, p.Next, err)
	}
	if n := len(q.order); n > 2*lim.MaxFinishedJobs+1 {
		t.Errorf("the list order holds %d jobs for 3 remembered", n)
	}
}
