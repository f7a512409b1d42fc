package service

import "context"

// Observer is told what the service does, for metrics. Calls come from
// job goroutines and must be quick. Config.Observer nil: nobody is told.
type Observer interface {
	// JobFinished is called once per job as it ends, with its final status
	// and the seconds from its start (0 if it never started).
	JobFinished(status JobStatus, seconds float64)
	// EpochTrained is called after every epoch, with its training seconds.
	EpochTrained(seconds float64)
	// ModelSaveFailed is called when a network could not be saved.
	ModelSaveFailed()
}

type nopObserver struct{}

func (nopObserver) JobFinished(JobStatus, float64) {}
func (nopObserver) EpochTrained(float64)           {}
func (nopObserver) ModelSaveFailed()               {}

// Gauges are the service's current counts, for metrics.
type Gauges struct {
	NetworksLoaded int // held in memory
	NetworksSaved  int // on disk only
	JobsQueued     int
	JobsRunning    int
}

// Gauges returns the current counts (zero counts the shared state cannot
// give: metrics must not fail).
func (s *Service) Gauges(ctx context.Context) Gauges {
	var g Gauges
	if a, err := s.queue.Active(ctx); err == nil {
		g.JobsQueued, g.JobsRunning = a.Queued, a.Running
	}
	recs, _ := s.catalog.List(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	g.NetworksLoaded = len(s.nets)
	g.NetworksSaved = max(0, len(recs)-len(s.nets))
	return g
}
