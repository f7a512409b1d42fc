package service

import (
	"context"
	"errors"
	"slices"
)

// Pages of the job list (GET /api/training): JobFilter.Limit's bounds.
const (
	DefaultJobsPage = 20
	MaxJobsPage     = 100
)

// JobStatuses are the statuses a job can have, in the order of its life.
var JobStatuses = []JobStatus{StatusPending, StatusTraining, StatusCompleted, StatusFailed, StatusCancelled}

// JobFilter selects the jobs of Queue.List.
type JobFilter struct {
	NetworkID string      // "": every network's
	Statuses  []JobStatus // empty: every status
	// Before is a cursor: a JobPage's Next, to list the jobs after that
	// page's, i.e. older. 0: from the newest.
	Before int64
	Limit  int // jobs at most, 1 to MaxJobsPage
}

// Selects reports whether the filter selects j, but for Before.
func (f JobFilter) Selects(j JobInfo) bool {
	return (f.NetworkID == "" || j.NetworkID == f.NetworkID) && (len(f.Statuses) == 0 || slices.Contains(f.Statuses, j.Status))
}

// JobPage is one page of Queue.List.
type JobPage struct {
	Jobs []JobInfo // newest first, History nil
	// Next is the Before of the next page, a position in the queue's order
	// that only this queue understands (opaque to everyone else, always
	// > 0); 0 when this page is the last.
	Next int64
}

// Jobs lists the jobs f selects, newest first, a page at a time: finished
// jobs within the retention limits, pending and running ones always. It is
// a read, open to anyone like Job: job ids and their events are public
// (Socket.IO broadcasts them), and a job says nothing of who asked for it.
// A listed job's History holds only its best epoch by validation accuracy
// (so that BestEpoch answers as for the whole job), read with one Get per
// job that has trained an epoch.
func (s *Service) Jobs(ctx context.Context, f JobFilter) (JobPage, error) {
	if f.Limit < 1 || f.Limit > MaxJobsPage {
		return JobPage{}, Errorf(Invalid, "limit must be an integer between 1 and %d", MaxJobsPage)
	}
	if f.Before < 0 {
		return JobPage{}, Errorf(Invalid, "the cursor is not one this server gave")
	}
	for _, st := range f.Statuses {
		if !slices.Contains(JobStatuses, st) {
			return JobPage{}, Errorf(Invalid, "status %q is not a job status", st)
		}
	}
	p, err := s.queue.List(ctx, f)
	if err != nil {
		return JobPage{}, stateError(err)
	}
	for i := range p.Jobs {
		j := &p.Jobs[i]
		j.History = nil
		if j.Epoch == 0 {
			continue
		}
		full, err := s.queue.Get(ctx, j.ID)
		if errors.Is(err, ErrUnknownJob) {
			continue // forgotten since the list was read
		}
		if err != nil {
			return JobPage{}, stateError(err)
		}
		if best := full.BestEpoch(); best > 0 {
			j.History = []EpochResult{full.History[slices.IndexFunc(full.History, func(r EpochResult) bool { return r.Epoch == best })]}
		}
	}
	return p, nil
}
