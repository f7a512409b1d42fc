// Package service is the training service behind the API: it holds the
// networks (in memory and on disk), runs training jobs on a bounded pool of
// workers, and analyses what a network gets right or wrong.
//
// It knows nothing of HTTP or Socket.IO: it takes validated values
// (Architecture, TrainParams) and returns domain values and *Error; the API
// layer owns JSON shapes, statuses and encodings. Progress leaves through
// the Events interface, networks persist through the Store interface.
//
// The code is split along its seams: networks.go (create, list, delete,
// load), memory.go (what stays loaded), jobs.go (the queue and the job
// table), train.go (running a job), analysis.go (examples and evaluation).
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/network"
	"github.com/mnist-go/nnserver/pkg/store"
)

// Store persists networks. *store.Store implements it (a directory); in
// scaled mode an object store does too. Every implementation passes
// pkg/store/storetest.
type Store interface {
	Save(ctx context.Context, m store.Meta, n *network.Network) error
	Load(ctx context.Context, id string) (store.Meta, *network.Network, error)
	List(ctx context.Context) ([]store.Entry, []error)
	// Delete removes a network's model. DeleteFailed (with an error) means
	// it is still there.
	Delete(ctx context.Context, id string) (store.DeleteResult, error)
	// Open returns the stored bytes of a network's model and their size.
	Open(ctx context.Context, id string) (io.ReadCloser, int64, error)
}

// Config wires a Service.
type Config struct {
	// Data returns the MNIST data set, blocking until it is loaded.
	Data    func() (*mnist.Dataset, error)
	Store   Store
	Events  Events       // nil: events are dropped
	Workers int          // training jobs run at once; 0: runtime.GOMAXPROCS(0)
	Limits  Limits       // zero value: DefaultLimits()
	Logger  *slog.Logger // nil: slog.Default()
	// Now returns the current time; nil: time.Now. Tests move it to check
	// the retention of finished jobs.
	Now func() time.Time
	// Observer is told about jobs, epochs and failed saves; nil: nobody.
	Observer Observer
}

// Service holds networks and training jobs. It is safe for concurrent use.
type Service struct {
	data   func() (*mnist.Dataset, error)
	store  Store
	events Events
	limits Limits
	log    *slog.Logger
	now    func() time.Time
	obs    Observer

	// makers bounds the networks being made and saved at once: each may be
	// MaxParams large, and they count against the memory limit only once
	// made. analyses bounds the cold analyses of network versions.
	makers   chan struct{}
	analyses chan struct{}
	versions versionCounter

	ctx    context.Context // cancelled by Close, with errShuttingDown as its cause
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup // workers

	mu       sync.Mutex // guards everything below, and Job's mutable fields
	cond     *sync.Cond // signalled when the queue or running jobs change, or on Close
	nets     map[string]*entry
	saved    map[string]store.Entry   // on disk, not loaded yet
	loading  map[string]*loadCall     // networks being read from disk
	deleting map[string]chan struct{} // saved networks whose file is being removed
	creating int                      // networks being created, counted against MaxNetworks
	jobs     jobTable
	done     bool // Close was called
}

// New starts a service: it lists the networks saved in the store (a file
// that cannot be read, or holds a network this server would not accept, is
// logged and skipped) and starts the workers. If ctx ends while the store is
// being listed, New returns ctx's error at once.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Data == nil || cfg.Store == nil {
		return nil, errors.New("service: Config needs Data and Store")
	}
	if cfg.Events == nil {
		cfg.Events = NopEvents{}
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	sctx, cancel := context.WithCancelCause(context.Background())
	s := &Service{
		data: cfg.Data, store: cfg.Store, events: cfg.Events, limits: cfg.Limits, log: cfg.Logger, now: cfg.Now, obs: cfg.Observer,
		ctx: sctx, cancel: cancel,
		makers: make(chan struct{}, 2), analyses: make(chan struct{}, max(1, cfg.Limits.MaxAnalyses)),
		nets: map[string]*entry{}, saved: map[string]store.Entry{}, loading: map[string]*loadCall{},
		deleting: map[string]chan struct{}{}, jobs: newJobTable(),
	}
	s.cond = sync.NewCond(&s.mu)

	type listing struct {
		entries []store.Entry
		errs    []error
	}
	listed := make(chan listing, 1)
	go func() {
		entries, errs := cfg.Store.List(ctx)
		listed <- listing{entries, errs}
	}()
	var l listing
	select {
	case l = <-listed:
	case <-ctx.Done():
		cancel(ctx.Err())
		return nil, fmt.Errorf("service: listing saved networks: %w", ctx.Err())
	}
	for _, err := range l.errs {
		s.log.Warn("skipping unreadable saved network", "err", err)
	}
	skipped := len(l.errs)
	for _, e := range l.entries {
		if _, err := s.limits.NewArchitecture(e.Sizes); err != nil {
			s.log.Warn("skipping saved network", "network_id", e.ID, "err", ErrorMessage(err))
			skipped++
			continue
		}
		s.saved[e.ID] = e
	}
	s.log.Info("saved networks found", "count", len(s.saved), "skipped", skipped)
	for range cfg.Workers {
		s.wg.Go(s.worker)
	}
	return s, nil
}

// Limits returns the limits requests are held to.
func (s *Service) Limits() Limits { return s.limits }

// Close stops the service: pending jobs fail, running jobs stop within one
// chunk of a mini-batch (their finished epochs are saved) and send their
// training_error, and Close waits for the workers until ctx is done.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	s.done = true
	pending := s.jobs.takeQueue()
	for _, j := range pending {
		s.finishLocked(j, StatusFailed, errShuttingDown)
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	for _, j := range pending {
		s.emitFailure(j, errShuttingDown)
	}
	s.cancel(errShuttingDown)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("service: workers still running: %w", ctx.Err())
	}
}

// Status is what GET /api/status reports.
type Status struct {
	ActiveNetworks int // networks held in memory
	TrainingJobs   int // jobs pending or training
}

// Status reports networks in memory and jobs pending or training.
func (s *Service) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{ActiveNetworks: len(s.nets), TrainingJobs: s.jobs.active()}
}

// data returns the data set or an Internal error.
func (s *Service) dataset() (*mnist.Dataset, error) {
	ds, err := s.data()
	if err != nil {
		return nil, &Error{Code: Internal, Message: errNoData.Message, Err: err}
	}
	return ds, nil
}
