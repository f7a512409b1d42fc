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
	"github.com/mnist-go/nnserver/pkg/model"
	"io"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/modelfile"
)

// Store persists networks: the service's port to its model store. Its
// adapters are pkg/dirstore (a directory, single mode) and pkg/s3store (an
// S3-compatible bucket, scaled mode); every one passes the contract in
// pkg/service/storetest. The values it keeps are the model file format's
// (pkg/modelfile), and so are the errors for an invalid id
// (modelfile.ErrInvalidID) and a network beyond the limits
// (modelfile.ErrTooLarge); a network that is not there is ErrModelNotFound.
type Store interface {
	// Save stores n under m.ID, replacing what was stored there, atomically.
	Save(ctx context.Context, m modelfile.Meta, n model.Model) error
	// Load returns what Save stored; errors wrap ErrModelNotFound,
	// modelfile.ErrInvalidID or modelfile.ErrTooLarge where those apply.
	Load(ctx context.Context, id string) (modelfile.Meta, model.Model, error)
	// List describes every stored network, ordered by CreatedAt then ID;
	// each unreadable one is reported by an error instead.
	List(ctx context.Context) ([]modelfile.Entry, []error)
	// Delete removes a network's model, and its snapshots first, and says
	// what it did. DeleteFailed (with an error) means the model is still
	// there (some of its snapshots may be gone).
	Delete(ctx context.Context, id string) (DeleteResult, error)
	// Open returns the stored bytes of a network's model, exactly those
	// modelfile.Encode writes, and their length. Errors are as Load's.
	Open(ctx context.Context, id string) (io.ReadCloser, int64, error)

	// A network's snapshots are copies of its model as stored after some
	// of its epochs, kept where the model is, until DeleteSnapshot or
	// Delete. Epochs are 1 to modelfile.MaxHistory.

	// Snapshot keeps the model stored now under id (what the last Save
	// stored, whose epochs_trained must be epoch) as the network's
	// snapshot after epoch, replacing any snapshot of that epoch. It
	// stores no new bytes where the store can share the model's (a hard
	// link, a copy inside the bucket). ErrModelNotFound if there is no
	// model.
	Snapshot(ctx context.Context, id string, epoch int) error
	// Snapshots returns the epochs of the network's snapshots, ascending;
	// none for a network without any (or unknown).
	Snapshots(ctx context.Context, id string) ([]int, error)
	// LoadSnapshot returns what a snapshot holds, as Load does; errors
	// wrap ErrSnapshotNotFound when there is no such snapshot, and the
	// snapshot's epochs_trained must be epoch.
	LoadSnapshot(ctx context.Context, id string, epoch int) (modelfile.Meta, model.Model, error)
	// OpenSnapshot returns a snapshot's stored bytes and their length, as
	// Open does; errors are as LoadSnapshot's.
	OpenSnapshot(ctx context.Context, id string, epoch int) (io.ReadCloser, int64, error)
	// DeleteSnapshot removes a snapshot; nil if there was none.
	DeleteSnapshot(ctx context.Context, id string, epoch int) error
}

// ErrSnapshotNotFound reports that a Store keeps no snapshot of a network
// after the epoch asked for.
var ErrSnapshotNotFound = errors.New("no snapshot of that epoch")

// CheckSnapshotEpoch reports whether epoch may name a snapshot: 1 to
// modelfile.MaxHistory. A Store checks it before using it in a name.
func CheckSnapshotEpoch(epoch int) error {
	if epoch < 1 || epoch > modelfile.MaxHistory {
		return fmt.Errorf("snapshot epoch %d, want 1 to %d", epoch, modelfile.MaxHistory)
	}
	return nil
}

// DeleteResult says what a Store's Delete did to the model of a network.
type DeleteResult int

const (
	// DeleteFailed: the model, if there is one, is still there; Delete's
	// error says why. It is the zero value, so a caller that ignores the
	// result errs on the side of the network still existing.
	DeleteFailed DeleteResult = iota
	// DeleteNotFound: no network was saved under the id; nothing was done.
	// The error is nil.
	DeleteNotFound
	// DeleteRemoved: the model was removed, durably. The error is nil.
	DeleteRemoved
	// DeleteRemovedNotFlushed: the model was removed, so Load and List no
	// longer find it, but not durably (the directory store could not flush
	// the removal to disk, so a power failure may bring it back). The error
	// says why.
	DeleteRemovedNotFlushed
)

// Gone reports whether no model is left under the id: the network is
// deleted, although after DeleteRemovedNotFlushed not durably.
func (r DeleteResult) Gone() bool { return r != DeleteFailed }

func (r DeleteResult) String() string {
	switch r {
	case DeleteFailed:
		return "failed"
	case DeleteNotFound:
		return "not found"
	case DeleteRemoved:
		return "removed"
	case DeleteRemovedNotFlushed:
		return "removed, not flushed"
	}
	return fmt.Sprintf("DeleteResult(%d)", int(r))
}

// Config wires a Service.
type Config struct {
	// Data returns the MNIST data set, blocking until it is loaded.
	Data    func() (*mnist.Dataset, error)
	Store   Store
	Events  Events       // nil: events are dropped
	Workers int          // training jobs run at once here; 0: runtime.GOMAXPROCS(0)
	Limits  Limits       // zero value: DefaultLimits()
	Logger  *slog.Logger // nil: slog.Default()
	// Now returns the current time; nil: time.Now. Tests move it to check
	// the retention of finished jobs.
	Now func() time.Time
	// Observer is told about jobs, epochs and failed saves; nil: nobody.
	Observer Observer
	// Catalog and Queue hold what replicas share. Catalog nil: single
	// mode, an in-memory catalog filled from the networks saved in Store,
	// with Queue (pkg/sqlite's, which keeps the jobs across restarts) or,
	// Queue nil too, an in-memory queue. Both set: scaled mode
	// (pkg/postgres).
	Catalog Catalog
	Queue   Queue
	// Budget is the process's memory budget, from which jobs, analyses,
	// loads, imports and predictions reserve what they allocate; nil:
	// unbounded.
	Budget *budget.Budget
	// CPU is the process's budget of CPU for heavy request work, shared
	// with the API: analyses, measuring imports and running wide networks
	// take a slot; nil: unbounded.
	CPU *budget.CPU
	// Replicas, in scaled mode, carries to the other replicas what they must
	// act on at once (a network deleted here); nil: there are none.
	Replicas Replicas
	// Policy decides who may change what (NewPolicy); nil: the zero
	// Policy, everything open.
	Policy *Policy
}

// Replicas tells the other replicas of a deployment what they must act on
// at once. pkg/postgres's relay implements it; what it delivers on another
// replica is for that replica to pass to its Service (Forget).
type Replicas interface {
	// NetworkRemoved tells every other replica that a network was deleted,
	// so that each drops its copy (memory, gauges) within a second.
	NetworkRemoved(ctx context.Context, id string) error
}

// Pinger is implemented by the backends that can tell whether they are
// reachable (a database, an object store): Ready asks them.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Service holds networks and training jobs. It is safe for concurrent use.
type Service struct {
	data     func() (*mnist.Dataset, error)
	store    Store
	events   Events
	limits   Limits
	log      *slog.Logger
	now      func() time.Time
	obs      Observer
	catalog  Catalog
	queue    Queue
	replicas Replicas // nil: none
	policy   *Policy
	budget   *budget.Budget
	cpu      *budget.CPU

	// makers bounds the networks being made and saved at once: each may be
	// MaxParams large, and they count against the memory limit only once
	// made. analyses bounds the cold analyses of network versions.
	makers   chan struct{}
	analyses chan struct{}
	versions versionCounter

	// progressEvery and progressAfter shape training_progress (tests make
	// them small).
	progressEvery, progressAfter time.Duration

	ctx    context.Context // cancelled by Close, with ErrShuttingDown as its cause
	cancel context.CancelCauseFunc

	unready sync.Map // backend name → true while Ready finds it unreachable

	mu      sync.Mutex           // guards everything below
	nets    map[string]*entry    // networks loaded on this replica
	loading map[string]*loadCall // networks being read from the store
	busy    map[string]int       // networks with a job running on this replica
	done    bool                 // Close was called
}

// New starts a service. In single mode it lists the networks saved in the
// store into its catalog (a file that cannot be read, or holds a network
// this server would not accept, is logged and skipped); if ctx ends
// meanwhile, New returns ctx's error at once. Then it starts the workers,
// which resume the jobs a persistent queue kept running.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Data == nil || cfg.Store == nil {
		return nil, errors.New("service: Config needs Data and Store")
	}
	if cfg.Catalog != nil && cfg.Queue == nil {
		return nil, errors.New("service: Config.Catalog needs a Queue: a shared catalog goes with a shared queue")
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
	cfg.Limits.SnapshotsKept = cfg.Limits.snapshotsKept()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Policy == nil {
		cfg.Policy = &Policy{}
	}
	if cfg.Catalog == nil {
		cat, err := catalogFromStore(ctx, cfg)
		if err != nil {
			return nil, err
		}
		cfg.Catalog = cat
		if cfg.Queue == nil {
			cfg.Queue = NewMemoryQueue(cfg.Workers, cfg.Limits, cfg.Now)
		}
	}
	sctx, cancel := context.WithCancelCause(context.Background())
	s := &Service{
		data: cfg.Data, store: cfg.Store, events: cfg.Events, limits: cfg.Limits, log: cfg.Logger, now: cfg.Now,
		obs: cfg.Observer, catalog: cfg.Catalog, queue: cfg.Queue, replicas: cfg.Replicas, policy: cfg.Policy, budget: cfg.Budget, cpu: cfg.CPU,
		ctx: sctx, cancel: cancel,
		makers: make(chan struct{}, 2), analyses: make(chan struct{}, max(1, cfg.Limits.MaxAnalyses)),
		nets: map[string]*entry{}, loading: map[string]*loadCall{}, busy: map[string]int{},
		progressEvery: progressEvery, progressAfter: progressAfter,
	}
	s.budget.AddReclaimer(s.reclaimNetworks)
	if err := s.queue.Start(s.runJob); err != nil {
		cancel(err)
		return nil, fmt.Errorf("service: starting the workers: %w", err)
	}
	return s, nil
}

// catalogFromStore returns an in-memory catalog of the networks saved in
// the store, listing it in the background so that a signal (ctx) stops a
// slow listing at once.
func catalogFromStore(ctx context.Context, cfg Config) (Catalog, error) {
	type listing struct {
		entries []modelfile.Entry
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
		return nil, fmt.Errorf("service: listing saved networks: %w", ctx.Err())
	}
	for _, err := range l.errs {
		cfg.Logger.Warn("skipping unreadable saved network", "err", err)
	}
	cat := NewMemoryCatalog()
	skipped, count := len(l.errs), 0
	for _, e := range l.entries {
		if err := cfg.Limits.CheckArch(model.Arch{Sizes: e.Sizes, Layers: e.Layers}); err != nil {
			cfg.Logger.Warn("skipping saved network", "network_id", e.ID, "err", ErrorMessage(err))
			skipped++
			continue
		}
		// No limit: networks already saved are all kept.
		if err := cat.Add(ctx, recordOf(e.Meta, 1), math.MaxInt); err != nil {
			return nil, err
		}
		count++
	}
	cfg.Logger.Info("saved networks found", "count", count, "skipped", skipped)
	return cat, nil
}

// recordOf is the catalog's record of a network saved with m.
func recordOf(m modelfile.Meta, version int64) NetworkRecord {
	return NetworkRecord{
		ID: m.ID, Sizes: m.Sizes, Layers: m.Layers, Init: Init(m.Init), Seed: m.Seed, Trained: m.Trained, Accuracy: m.Accuracy,
		EpochsTrained: m.EpochsTrained, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, Version: version,
		OwnerHash: m.OwnerHash, Name: m.Name, Notes: m.Notes,
	}
}

// Limits returns the limits requests are held to.
func (s *Service) Limits() Limits { return s.limits }

// Close stops the service: no new job starts here, running jobs stop within
// one chunk of a mini-batch (their finished epochs are saved), and Close
// waits for them until ctx is done. With a queue that hands jobs over
// (scaled mode's, and single mode's on SQLite) pending jobs stay pending and
// running ones are left to be resumed, by another replica or the next
// process, each with a training_error "interrupted"; with the in-memory
// queue pending and running jobs fail, each with its training_error.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	ended, err := s.queue.Stop(ctx)
	for _, j := range ended {
		s.jobEnded(j)
		s.emitFailure(j)
	}
	s.cancel(ErrShuttingDown)
	if err != nil {
		return fmt.Errorf("service: workers still running: %w", err)
	}
	return nil
}

// Status is what GET /api/status reports.
type Status struct {
	ActiveNetworks int // networks held in memory here
	TrainingJobs   int // jobs pending or training; 0 when the database cannot say
	// Database is "" in single mode, else "ok", or "unavailable" when the
	// shared state cannot be reached (the process is alive all the same).
	Database string
}

// Status reports networks in memory and jobs pending or training. It
// always answers: liveness must not depend on the database (Ready tells
// whether the backends are reachable).
func (s *Service) Status(ctx context.Context) Status {
	var st Status
	a, err := s.queue.Active(ctx)
	if _, shared := s.catalog.(Pinger); shared {
		st.Database = "ok"
		if err != nil {
			st.Database = "unavailable"
		}
	}
	st.TrainingJobs = a.Queued + a.Running
	s.mu.Lock()
	defer s.mu.Unlock()
	st.ActiveNetworks = len(s.nets)
	return st
}

// Forget drops this replica's copy of a network that another replica has
// deleted (told through Replicas): a job running it here stops within one
// chunk. It does nothing if the network is not loaded here.
func (s *Service) Forget(id string) {
	if s.evict(id, errNetworkDeleted) {
		s.log.Info("network dropped: deleted on another replica", "network_id", id)
	}
}

// Readiness is what Ready found of each backend: "ok", or why it is not.
type Readiness struct {
	Ready    bool
	Backends map[string]string // "database", "models": "ok" or the error
}

// Ready asks every backend that can tell (Pinger) whether it is reachable:
// the catalog and queue (scaled mode's database) and the model store.
// Single mode's memory state is always ready.
func (s *Service) Ready(ctx context.Context) Readiness {
	r := Readiness{Ready: true, Backends: map[string]string{}}
	check := func(name string, v any) {
		p, ok := v.(Pinger)
		if !ok {
			return
		}
		err := p.Ping(ctx)
		// Logged when a backend changes state, not at every probe: a
		// balancer probes every second or two.
		if was, _ := s.unready.Swap(name, err != nil); (was == true) != (err != nil) {
			if err != nil {
				s.log.Warn("backend not ready", "backend", name, "err", err)
			} else {
				s.log.Info("backend ready again", "backend", name)
			}
		}
		if err != nil {
			r.Ready = false
			r.Backends[name] = "unavailable"
			return
		}
		r.Backends[name] = "ok"
	}
	check("database", s.catalog)
	check("models", s.store)
	return r
}

// data returns the data set or an Internal error.
func (s *Service) dataset() (*mnist.Dataset, error) {
	ds, err := s.data()
	if err != nil {
		return nil, &Error{Code: Internal, Message: errNoData.Message, Err: err}
	}
	return ds, nil
}
