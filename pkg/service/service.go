// Package service is the training service behind the API: it holds the
// networks (in memory and on disk), runs training jobs on a bounded pool of
// workers, and finds examples a network gets right or wrong. It knows
// nothing of HTTP or Socket.IO: progress leaves through the Events
// interface, networks persist through the Store interface.
package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/network"
	"github.com/mnist-go/nnserver/pkg/store"
)

// Store persists networks. *store.Store implements it.
type Store interface {
	Save(m store.Meta, n *network.Network) error
	Load(id string) (store.Meta, *network.Network, error)
	List() ([]store.Entry, []error)
	Delete(id string) (bool, error)
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
}

// Service holds networks and training jobs. It is safe for concurrent use.
type Service struct {
	data   func() (*mnist.Dataset, error)
	store  Store
	events Events
	limits Limits
	log    *slog.Logger

	// makers bounds the networks being made and saved at once: each may be
	// MaxParams large, and they count against the memory limit only once
	// made.
	makers chan struct{}

	ctx    context.Context // cancelled by Close: stops every job
	cancel context.CancelFunc
	wg     sync.WaitGroup // workers

	mu       sync.Mutex // guards everything below, and Job's mutable fields
	cond     *sync.Cond // signalled when the queue or busy changes, or on Close
	nets     map[string]*entry
	saved    map[string]store.Entry // on disk, not loaded yet
	jobs     map[string]*Job
	loading  map[string]*loadCall // networks being read from disk
	queue    []*Job               // pending jobs, oldest first
	busy     map[string]bool      // networks with a running job
	creating int                  // networks being created, counted against MaxNetworks
	done     bool                 // Close was called
}

// entry is a network held in memory.
type entry struct {
	id      string
	sizes   []int
	created time.Time
	state   atomic.Pointer[state] // replaced whole after every epoch
	preds   atomic.Pointer[predictions]
	predMu  sync.Mutex      // one computation of preds at a time
	ctx     context.Context // cancelled when the network is deleted
	cancel  context.CancelFunc

	saveMu  sync.Mutex // serialises writes and the deletion of its file
	deleted bool       // guarded by saveMu: no more saves

	params   int          // weights and biases
	lastUsed atomic.Int64 // unix nanoseconds of the last lookup, for unloading
	unsaved  atomic.Bool  // the last save failed: the disk lags memory, keep it loaded
}

// state is an immutable snapshot of a network and what is known of it.
type state struct {
	net      *network.Network
	trained  bool
	accuracy *float64
	epochs   int // epochs trained in all
	updated  time.Time
}

// New starts a service: it lists the networks saved in the store (a corrupt
// file is logged and skipped) and starts the workers.
func New(cfg Config) (*Service, error) {
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
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		data: cfg.Data, store: cfg.Store, events: cfg.Events, limits: cfg.Limits, log: cfg.Logger,
		ctx: ctx, cancel: cancel, makers: make(chan struct{}, 2),
		nets: map[string]*entry{}, saved: map[string]store.Entry{}, loading: map[string]*loadCall{},
		jobs: map[string]*Job{}, busy: map[string]bool{},
	}
	s.cond = sync.NewCond(&s.mu)
	entries, errs := cfg.Store.List()
	for _, err := range errs {
		s.log.Warn("skipping unreadable saved network", "err", err)
	}
	skipped := len(errs)
	for _, e := range entries {
		if err := fitsMNIST(e.Sizes); err != nil {
			s.log.Warn("skipping saved network", "network_id", e.ID, "err", err)
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

// Close stops the service: pending jobs fail, running jobs are cancelled
// (their last finished epoch is already saved), and Close waits for the
// workers until ctx is done.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	s.done = true
	pending := s.queue
	s.queue = nil
	for _, j := range pending {
		s.finishLocked(j, errShuttingDown)
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	for _, j := range pending {
		s.emitFailure(j, errShuttingDown)
	}
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("service: workers still running: %w", ctx.Err())
	}
}

var errShuttingDown = Errorf(Unavailable, "the server is shutting down")

// Status is the answer to GET /api/status.
type Status struct {
	Status         string `json:"status"`
	ActiveNetworks int    `json:"active_networks"`
	TrainingJobs   int    `json:"training_jobs"`
}

// Status reports networks in memory and jobs pending or training.
func (s *Service) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{Status: "online", ActiveNetworks: len(s.nets), TrainingJobs: len(s.queue) + len(s.busy)}
}

// Created is the answer to creating a network.
type Created struct {
	NetworkID    string `json:"network_id"`
	Architecture []int  `json:"architecture"`
	Status       string `json:"status"` // "created"
}

// Create makes a network with N(0, 1) weights and saves it.
func (s *Service) Create(arch Architecture) (Created, error) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return Created{}, errShuttingDown
	}
	if n := len(s.nets) + len(s.saved) + s.creating; n >= s.limits.MaxNetworks {
		s.mu.Unlock()
		return Created{}, Errorf(Conflict, "there are already %d networks, the most this server keeps; delete some first", n)
	}
	s.creating++ // holds a place under the limit while the network is made and saved
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.creating--
		s.mu.Unlock()
	}()

	s.makers <- struct{}{}
	defer func() { <-s.makers }()
	net, err := network.New(arch, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	if err != nil {
		return Created{}, &Error{Code: Internal, Message: "could not create the network", Err: err}
	}
	now := time.Now().UTC()
	ctx, cancel := context.WithCancel(s.ctx)
	e := newEntry(uuid.NewString(), now, &state{net: net, updated: now}, ctx, cancel)
	if err := s.save(e, e.state.Load()); err != nil {
		cancel()
		return Created{}, err
	}
	s.mu.Lock()
	s.admitLocked(e)
	s.mu.Unlock()
	s.log.Info("network created", "network_id", e.id, "architecture", e.sizes)
	return Created{NetworkID: e.id, Architecture: e.sizes, Status: "created"}, nil
}

// save writes st as e's file, unless e has been deleted.
func (s *Service) save(e *entry, st *state) error {
	e.saveMu.Lock()
	defer e.saveMu.Unlock()
	if e.deleted {
		return nil
	}
	if err := s.store.Save(e.meta(st), st.net); err != nil {
		e.unsaved.Store(true)
		return &Error{Code: Storage, Message: "could not save the network to the models directory", Err: err}
	}
	e.unsaved.Store(false)
	return nil
}

// meta describes e in state st, as it is saved.
func (e *entry) meta(st *state) store.Meta {
	return store.Meta{
		ID: e.id, Sizes: e.sizes, Trained: st.trained, Accuracy: st.accuracy,
		EpochsTrained: st.epochs, CreatedAt: e.created, UpdatedAt: st.updated,
	}
}

func newEntry(id string, created time.Time, st *state, ctx context.Context, cancel context.CancelFunc) *entry {
	sizes := st.net.Sizes()
	e := &entry{id: id, sizes: sizes, created: created, ctx: ctx, cancel: cancel, params: paramCount(sizes)}
	e.state.Store(st)
	e.lastUsed.Store(time.Now().UnixNano())
	return e
}

// admitLocked puts e in memory, first unloading the least recently used
// idle networks while the networks in memory would hold more than
// MaxParamsInMemory parameters. An idle network has no job pending or
// running and is saved as it stands, so unloading loses nothing: it is
// listed as "saved" and loads again on its next use. If every network is
// busy the limit is exceeded rather than a request refused.
func (s *Service) admitLocked(e *entry) {
	total := e.params
	for _, o := range s.nets {
		total += o.params
	}
	for total > s.limits.MaxParamsInMemory {
		victim := s.idlestLocked()
		if victim == nil {
			break
		}
		st := victim.state.Load()
		delete(s.nets, victim.id)
		s.saved[victim.id] = store.EntryOf(victim.meta(st))
		victim.cancel()
		total -= victim.params
		s.log.Info("network unloaded from memory", "network_id", victim.id, "params", victim.params)
	}
	s.nets[e.id] = e
}

// idlestLocked returns the least recently used network that may be
// unloaded, or nil.
func (s *Service) idlestLocked() *entry {
	queued := map[string]bool{}
	for _, j := range s.queue {
		queued[j.NetworkID] = true
	}
	var victim *entry
	for id, e := range s.nets {
		if s.busy[id] || queued[id] || e.unsaved.Load() {
			continue
		}
		if victim == nil || e.lastUsed.Load() < victim.lastUsed.Load() {
			victim = e
		}
	}
	return victim
}

// NetworkInfo describes one network in the list.
type NetworkInfo struct {
	NetworkID     string   `json:"network_id"`
	Architecture  []int    `json:"architecture"`
	Trained       bool     `json:"trained"`
	Accuracy      *float64 `json:"accuracy"`
	Status        string   `json:"status"` // "in_memory" or "saved"
	EpochsTrained int      `json:"epochs_trained"`
	WeightsShape  [][2]int `json:"weights_shape,omitempty"`
	BiasesShape   [][2]int `json:"biases_shape,omitempty"`
}

// List returns every network once: those in memory first, then those only
// on disk, each group oldest first.
func (s *Service) List() []NetworkInfo {
	s.mu.Lock()
	mem := make([]*entry, 0, len(s.nets))
	for _, e := range s.nets {
		mem = append(mem, e)
	}
	disk := make([]store.Entry, 0, len(s.saved))
	for _, e := range s.saved {
		disk = append(disk, e)
	}
	s.mu.Unlock()
	slices.SortFunc(mem, func(a, b *entry) int {
		return cmpTimeID(a.created, b.created, a.id, b.id)
	})
	slices.SortFunc(disk, func(a, b store.Entry) int {
		return cmpTimeID(a.CreatedAt, b.CreatedAt, a.ID, b.ID)
	})
	out := make([]NetworkInfo, 0, len(mem)+len(disk))
	for _, e := range mem {
		st := e.state.Load()
		out = append(out, NetworkInfo{
			NetworkID: e.id, Architecture: e.sizes, Trained: st.trained, Accuracy: st.accuracy,
			Status: "in_memory", EpochsTrained: st.epochs,
		})
	}
	for _, e := range disk {
		out = append(out, NetworkInfo{
			NetworkID: e.ID, Architecture: e.Sizes, Trained: e.Trained, Accuracy: e.Accuracy,
			Status: "saved", EpochsTrained: e.EpochsTrained,
			WeightsShape: e.WeightShapes, BiasesShape: e.BiasShapes,
		})
	}
	return out
}

func cmpTimeID(ta, tb time.Time, a, b string) int {
	return cmp.Or(ta.Compare(tb), strings.Compare(a, b))
}

// fitsMNIST checks that a saved network takes MNIST's 784 pixels and
// answers its 10 digits: nothing else can be trained or asked here.
func fitsMNIST(sizes []int) error {
	if len(sizes) < 2 || sizes[0] != mnist.Pixels || sizes[len(sizes)-1] != mnist.Classes {
		return fmt.Errorf("layer sizes %v do not take %d inputs and give %d outputs", sizes, mnist.Pixels, mnist.Classes)
	}
	return nil
}

// loadCall is one read of a saved network from disk, shared by every
// request that needs the network meanwhile.
type loadCall struct {
	done chan struct{}
	e    *entry
	err  error
}

// lookup returns the in-memory entry of id, loading it from disk on first
// use. One load per network runs at a time, so concurrent requests neither
// repeat the work nor admit an older copy over a newer one.
func (s *Service) lookup(id string) (*entry, error) {
	s.mu.Lock()
	if e, ok := s.nets[id]; ok {
		s.mu.Unlock()
		e.lastUsed.Store(time.Now().UnixNano())
		return e, nil
	}
	if c, ok := s.loading[id]; ok {
		s.mu.Unlock()
		<-c.done
		return c.e, c.err
	}
	if _, ok := s.saved[id]; !ok {
		s.mu.Unlock()
		return nil, errNetworkNotFound
	}
	c := &loadCall{done: make(chan struct{})}
	s.loading[id] = c
	s.mu.Unlock()
	defer close(c.done)

	meta, net, err := s.store.Load(id)
	if err == nil {
		err = fitsMNIST(net.Sizes())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.loading, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.err = errNetworkNotFound
	case err != nil:
		c.err = &Error{Code: Internal, Message: "the saved network could not be loaded", Err: fmt.Errorf("load network %s: %w", id, err)}
	default:
		if _, ok := s.saved[id]; !ok { // deleted meanwhile
			c.err = errNetworkNotFound
			break
		}
		ctx, cancel := context.WithCancel(s.ctx)
		c.e = newEntry(id, meta.CreatedAt,
			&state{net: net, trained: meta.Trained, accuracy: meta.Accuracy, epochs: meta.EpochsTrained, updated: meta.UpdatedAt},
			ctx, cancel)
		delete(s.saved, id)
		s.admitLocked(c.e)
		s.log.Info("network loaded from disk", "network_id", id)
	}
	return c.e, c.err
}

// Deleted reports what deleting one network removed.
type Deleted struct {
	NetworkID         string `json:"network_id"`
	DeletedFromMemory bool   `json:"deleted_from_memory"`
	DeletedFromDisk   bool   `json:"deleted_from_disk"`
}

// Delete removes a network from memory and disk. Its pending and running
// jobs fail.
func (s *Service) Delete(id string) (Deleted, error) {
	s.mu.Lock()
	e, inMem := s.nets[id]
	savedEntry, onDisk := s.saved[id]
	if !inMem && !onDisk {
		s.mu.Unlock()
		return Deleted{}, errNetworkNotFound
	}
	delete(s.nets, id)
	delete(s.saved, id)
	var dropped []*Job
	s.queue = slices.DeleteFunc(s.queue, func(j *Job) bool {
		if j.NetworkID == id {
			dropped = append(dropped, j)
			return true
		}
		return false
	})
	for _, j := range dropped {
		s.finishLocked(j, errNetworkDeleted)
	}
	s.mu.Unlock()
	for _, j := range dropped {
		s.emitFailure(j, errNetworkDeleted)
	}

	if inMem {
		e.cancel() // a running job stops within one mini-batch
		e.saveMu.Lock()
		e.deleted = true
		defer e.saveMu.Unlock()
	}
	fromDisk, err := s.store.Delete(id)
	if err != nil {
		// The file is still there, so the network is too (a restart would
		// bring it back): keep it, as it stands now.
		s.mu.Lock()
		if inMem {
			ctx, cancel := context.WithCancel(s.ctx)
			kept := newEntry(id, e.created, e.state.Load(), ctx, cancel)
			kept.unsaved.Store(e.unsaved.Load())
			s.admitLocked(kept)
		} else {
			s.saved[id] = savedEntry
		}
		s.mu.Unlock()
		return Deleted{}, &Error{Code: Storage, Message: "could not delete the network's file; the network is kept", Err: err}
	}
	s.log.Info("network deleted", "network_id", id, "from_memory", inMem, "from_disk", fromDisk)
	return Deleted{NetworkID: id, DeletedFromMemory: inMem, DeletedFromDisk: fromDisk}, nil
}

var errNetworkDeleted = Errorf(Conflict, "the network was deleted")

// DeletedAll reports what deleting every network removed.
type DeletedAll struct {
	DeletedCount      int    `json:"deleted_count"`
	DeletedFromMemory int    `json:"deleted_from_memory"`
	DeletedFromDisk   int    `json:"deleted_from_disk"`
	Message           string `json:"message"`
}

// DeleteAll deletes every network.
func (s *Service) DeleteAll() (DeletedAll, error) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.nets)+len(s.saved))
	for id := range s.nets {
		ids = append(ids, id)
	}
	for id := range s.saved {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	var out DeletedAll
	var errs []error
	for _, id := range ids {
		d, err := s.Delete(id)
		if ErrorCode(err) == NotFound { // deleted meanwhile by someone else
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.DeletedCount++
		if d.DeletedFromMemory {
			out.DeletedFromMemory++
		}
		if d.DeletedFromDisk {
			out.DeletedFromDisk++
		}
	}
	out.Message = fmt.Sprintf("Successfully deleted %d network(s)", out.DeletedCount)
	if len(errs) > 0 {
		return out, errs[0]
	}
	return out, nil
}
