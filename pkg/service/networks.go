package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/network"
	"github.com/mnist-go/nnserver/pkg/store"
)

// entry is a network held in memory.
type entry struct {
	id      string
	sizes   []int
	created time.Time
	init    Init    // "" when unknown (imported)
	seed    *uint64 // nil when unknown (saved by an older version, or imported)
	params  int     // weights and biases

	state atomic.Pointer[state] // replaced whole after every epoch

	// ctx is cancelled, with the reason as its cause, when the network is
	// deleted or unloaded: a running job stops within one chunk.
	ctx    context.Context
	cancel context.CancelCauseFunc

	saveMu  sync.Mutex // serialises saves and the removal of its file
	deleted bool       // guarded by saveMu: the file is gone, no more saves

	lastUsed atomic.Int64 // unix nanoseconds of the last lookup, for unloading
	unsaved  atomic.Bool  // the last save failed: the disk lags memory, keep it loaded

	analysis analysisCache
}

// state is an immutable snapshot of a network and what is known of it.
type state struct {
	net      *network.Network
	version  uint64 // unique to this snapshot within the process
	trained  bool
	accuracy *float64
	epochs   int // epochs trained in all
	updated  time.Time
	// history is every epoch the network trained. Snapshots share its
	// backing array: the one job training the network appends, and each
	// snapshot sees only its own length.
	history []store.EpochRecord
}

// versionCounter hands out snapshot versions.
type versionCounter struct{ n atomic.Uint64 }

func (v *versionCounter) next() uint64 { return v.n.Add(1) }

// NetworkInfo describes one network.
type NetworkInfo struct {
	ID            string
	Sizes         []int
	Init          Init    // "" when unknown
	Seed          *uint64 // the seed it was created with; nil when unknown
	Trained       bool
	Accuracy      *float64 // test-set accuracy after the last epoch; nil before any
	EpochsTrained int
	Loaded        bool // held in memory (otherwise only saved)
	CreatedAt     time.Time
	// CurrentJob is the job training the network, or else the first one
	// waiting for it; "" when there is none.
	CurrentJob string
}

// Create makes a network and saves it.
func (s *Service) Create(p CreateParams) (NetworkInfo, error) {
	if err := s.limits.ValidateCreate(p); err != nil {
		return NetworkInfo{}, err
	}
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return NetworkInfo{}, errShuttingDown
	}
	if n := len(s.nets) + len(s.saved) + s.creating; n >= s.limits.MaxNetworks {
		s.mu.Unlock()
		return NetworkInfo{}, Errorf(Conflict, "there are already %d networks, the most this server keeps; delete some first", n)
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
	seed := drawSeed(p.Seed)
	net, err := network.New(p.Arch, p.Init.network(), newRand(seed))
	if err != nil {
		return NetworkInfo{}, &Error{Code: Internal, Message: "could not create the network", Err: err}
	}
	now := s.now().UTC()
	e := s.newEntry(uuid.NewString(), now, p.Init, &seed, &state{net: net, version: s.versions.next(), updated: now})
	if err := s.save(e, e.state.Load()); err != nil {
		e.cancel(errNetworkDeleted)
		return NetworkInfo{}, err
	}
	s.mu.Lock()
	s.admitLocked(e)
	s.mu.Unlock()
	s.log.Info("network created", "network_id", e.id, "architecture", e.sizes, "init", p.Init, "seed", seed)
	return e.info(), nil
}

// drawSeed returns the seed given, or a new one within MaxSeed.
func drawSeed(given *uint64) uint64 {
	if given != nil {
		return *given
	}
	return rand.Uint64() & MaxSeed
}

// newRand returns the generator a seed stands for: the same seed gives the
// same weights and the same shuffles.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func (s *Service) newEntry(id string, created time.Time, init Init, seed *uint64, st *state) *entry {
	sizes := st.net.Sizes()
	e := &entry{id: id, sizes: sizes, created: created, init: init, seed: seed, params: network.ParamCount(sizes)}
	e.ctx, e.cancel = context.WithCancelCause(s.ctx)
	e.state.Store(st)
	e.lastUsed.Store(time.Now().UnixNano())
	return e
}

func (e *entry) info() NetworkInfo {
	st := e.state.Load()
	return NetworkInfo{
		ID: e.id, Sizes: e.sizes, Init: e.init, Seed: e.seed, Trained: st.trained, Accuracy: st.accuracy,
		EpochsTrained: st.epochs, Loaded: true, CreatedAt: e.created,
	}
}

func infoOfSaved(m store.Entry) NetworkInfo {
	return NetworkInfo{
		ID: m.ID, Sizes: m.Sizes, Init: Init(m.Init), Seed: m.Seed, Trained: m.Trained, Accuracy: m.Accuracy,
		EpochsTrained: m.EpochsTrained, CreatedAt: m.CreatedAt,
	}
}

// save writes st as e's file, unless e has been deleted. A failure marks e
// unsaved, so that it is not unloaded while the disk lags.
func (s *Service) save(e *entry, st *state) error {
	e.saveMu.Lock()
	defer e.saveMu.Unlock()
	if e.deleted {
		return errNetworkDeleted
	}
	// Not cancellable: a finished epoch is saved even while the server
	// shuts down.
	if err := s.store.Save(context.Background(), e.meta(st), st.net); err != nil {
		e.unsaved.Store(true)
		s.obs.ModelSaveFailed()
		return &Error{Code: Storage, Message: "could not save the network to the models directory",
			Err: fmt.Errorf("save network %s: %w", e.id, err)}
	}
	e.unsaved.Store(false)
	return nil
}

// meta describes e in state st, as it is saved.
func (e *entry) meta(st *state) store.Meta {
	return store.Meta{
		ID: e.id, Sizes: e.sizes, Init: string(e.init), Seed: e.seed, Trained: st.trained, Accuracy: st.accuracy,
		EpochsTrained: st.epochs, History: st.history, CreatedAt: e.created, UpdatedAt: st.updated,
	}
}

// List returns every network once: those in memory first, then those only
// on disk, each group oldest first.
func (s *Service) List() []NetworkInfo {
	s.mu.Lock()
	out := make([]NetworkInfo, 0, len(s.nets)+len(s.saved))
	for _, e := range s.nets {
		out = append(out, e.info())
	}
	for _, m := range s.saved {
		out = append(out, infoOfSaved(m))
	}
	for i := range out {
		out[i].CurrentJob = s.jobs.current(out[i].ID)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b NetworkInfo) int {
		if a.Loaded != b.Loaded {
			if a.Loaded {
				return -1
			}
			return 1
		}
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out
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
// repeat the work nor admit an older copy over a newer one. A load waits
// for a deletion of the same network in progress.
func (s *Service) lookup(id string) (*entry, error) {
	s.mu.Lock()
	for {
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
		d, ok := s.deleting[id]
		if !ok {
			break
		}
		s.mu.Unlock()
		<-d
		s.mu.Lock()
	}
	if _, ok := s.saved[id]; !ok {
		s.mu.Unlock()
		return nil, errNetworkNotFound
	}
	c := &loadCall{done: make(chan struct{})}
	s.loading[id] = c
	s.mu.Unlock()
	defer close(c.done)

	meta, net, err := s.store.Load(context.Background(), id)
	if err == nil {
		_, err = s.limits.NewArchitecture(net.Sizes())
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
		c.e = s.newEntry(id, meta.CreatedAt, Init(meta.Init), meta.Seed,
			&state{net: net, version: s.versions.next(), trained: meta.Trained, accuracy: meta.Accuracy,
				epochs: meta.EpochsTrained, updated: meta.UpdatedAt, history: meta.History})
		delete(s.saved, id)
		s.admitLocked(c.e)
		s.log.Info("network loaded from disk", "network_id", id)
	}
	return c.e, c.err
}

// Deleted reports what deleting one network removed.
type Deleted struct {
	NetworkID  string
	FromMemory bool
	FromDisk   bool
}

// Delete removes a network's file, then the network from memory; its
// pending and running jobs fail. If the file cannot be removed, nothing
// else changes: the network and its jobs go on, and the error says so.
func (s *Service) Delete(id string) (Deleted, error) {
	s.mu.Lock()
	for {
		// Wait for a load (then the network is in memory, or gone) or
		// another deletion (then it is gone, or kept) of the same network.
		var wait chan struct{}
		if c, ok := s.loading[id]; ok {
			wait = c.done
		} else if d, ok := s.deleting[id]; ok {
			wait = d
		} else {
			break
		}
		s.mu.Unlock()
		<-wait
		s.mu.Lock()
	}
	e, inMem := s.nets[id]
	if _, onDisk := s.saved[id]; !inMem && !onDisk {
		s.mu.Unlock()
		return Deleted{}, errNetworkNotFound
	}
	// While the file goes, loads wait (see lookup) and, holding saveMu, a
	// running job cannot write the file back: its next save waits, then
	// finds the network deleted.
	gone := make(chan struct{})
	s.deleting[id] = gone
	s.mu.Unlock()
	if inMem {
		e.saveMu.Lock()
	}
	res, err := s.store.Delete(context.Background(), id)
	if inMem {
		e.deleted = res.Gone()
		e.saveMu.Unlock()
	}

	s.mu.Lock()
	delete(s.deleting, id)
	close(gone)
	if !res.Gone() {
		s.mu.Unlock()
		return Deleted{}, &Error{Code: Storage, Message: "could not delete the network's file; the network is kept",
			Err: fmt.Errorf("delete network %s: %w", id, err)}
	}
	if err != nil { // removed, but the removal may not survive a power cut
		s.log.Warn("network file removed but not flushed", "network_id", id, "err", err)
	}
	delete(s.nets, id) // e, unless it was unloaded meanwhile
	delete(s.saved, id)
	dropped := s.dropQueuedLocked(id)
	s.mu.Unlock()
	for _, j := range dropped {
		s.emitFailure(j, errNetworkDeleted)
	}
	if inMem {
		e.cancel(errNetworkDeleted) // a running job stops within one chunk
	}
	fromDisk := res != store.DeleteNotFound
	s.log.Info("network deleted", "network_id", id, "from_memory", inMem, "from_disk", fromDisk)
	return Deleted{NetworkID: id, FromMemory: inMem, FromDisk: fromDisk}, nil
}

// dropQueuedLocked fails the pending jobs of a deleted network and returns
// them; the caller sends their training_error once it has let go of s.mu.
func (s *Service) dropQueuedLocked(id string) []*Job {
	dropped := s.jobs.dropQueued(id)
	for _, j := range dropped {
		s.finishLocked(j, StatusFailed, errNetworkDeleted)
	}
	return dropped
}

// DeletedAll reports what deleting every network did.
type DeletedAll struct {
	Deleted []Deleted
	Failed  []DeleteFailure // networks that are kept, and why
}

// DeleteFailure is a network DeleteAll could not delete.
type DeleteFailure struct {
	NetworkID string
	Err       error
}

// DeleteAll deletes every network it can. Networks whose file cannot be
// removed are kept and reported in Failed, each cause logged; the error is
// that of the first failure, nil when there was none.
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
	slices.Sort(ids)
	var out DeletedAll
	var first error
	for _, id := range ids {
		d, err := s.Delete(id)
		switch {
		case ErrorCode(err) == NotFound: // deleted meanwhile by someone else
		case err != nil:
			s.log.Error("delete all: network kept", "network_id", id, "err", err)
			out.Failed = append(out.Failed, DeleteFailure{NetworkID: id, Err: err})
			first = cmp.Or(first, err)
		default:
			out.Deleted = append(out.Deleted, d)
		}
	}
	return out, first
}
