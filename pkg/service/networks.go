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

	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/model"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
)

// entry is a network loaded on this replica.
type entry struct {
	id      string
	sizes   []int
	layers  []deep.Layer // nil for a layer_sizes network
	created time.Time
	init    Init    // "" when unknown (imported)
	seed    *uint64 // nil when unknown (saved by an older version, or imported)
	params  int     // weights and biases
	// ownerHash is the SHA-256 of the owner token, "" when it has none
	// (saved before owner tokens existed): saved with the model.
	ownerHash string

	state atomic.Pointer[state] // replaced whole after every epoch
	// version is the catalog version of state: the copy is current while
	// the catalog says no more.
	version atomic.Int64

	// ctx is cancelled, with the reason as its cause, when the network is
	// deleted or unloaded: a running job stops within one chunk.
	ctx    context.Context
	cancel context.CancelCauseFunc

	// release gives back the memory budget the entry holds (its weights
	// and history); it is called when the entry leaves memory, at once by
	// whoever removes it, and by its context's end otherwise.
	release func()

	lastUsed atomic.Int64 // unix nanoseconds of the last lookup, for unloading
	unsaved  atomic.Bool  // the last save failed: the disk lags memory, keep it loaded

	analysis analysisCache
}

// state is an immutable snapshot of a network and what is known of it.
type state struct {
	net      model.Model
	version  uint64 // unique to this snapshot within the process
	trained  bool
	accuracy *float64
	epochs   int // epochs trained in all
	updated  time.Time
	// history is every epoch the network trained. Snapshots share its
	// backing array: the one job training the network appends, and each
	// snapshot sees only its own length.
	history []modelfile.EpochRecord
}

// versionCounter hands out snapshot versions.
type versionCounter struct{ n atomic.Uint64 }

func (v *versionCounter) next() uint64 { return v.n.Add(1) }

// NetworkInfo describes one network.
type NetworkInfo struct {
	ID    string
	Sizes []int
	// Layers is a layers network's list; nil for a layer_sizes network.
	Layers        []deep.Layer
	Init          Init    // "" when unknown
	Seed          *uint64 // the seed it was created with; nil when unknown
	Trained       bool
	Accuracy      *float64 // test-set accuracy after the last epoch; nil before any
	EpochsTrained int
	Loaded        bool // held in memory on the replica answering
	CreatedAt     time.Time
	// CurrentJob is the job training the network, or else the first one
	// waiting for it; "" when there is none.
	CurrentJob string
	// OwnerToken is the secret that allows changing the network when
	// ownership is on. Only Create's and Import's answers carry it, once:
	// only its hash is kept.
	OwnerToken string
	// Name and Notes, "" when none.
	Name, Notes string
}

func infoOf(r NetworkRecord) NetworkInfo {
	return NetworkInfo{
		ID: r.ID, Sizes: r.Sizes, Layers: r.Layers, Init: r.Init, Seed: r.Seed, Trained: r.Trained, Accuracy: r.Accuracy,
		EpochsTrained: r.EpochsTrained, CreatedAt: r.CreatedAt, Name: r.Name, Notes: r.Notes,
	}
}

// Create makes a network and saves it.
func (s *Service) Create(ctx context.Context, p CreateParams) (NetworkInfo, error) {
	if err := s.limits.ValidateCreate(p); err != nil {
		return NetworkInfo{}, err
	}
	if err := s.roomForOne(ctx); err != nil {
		return NetworkInfo{}, err
	}
	release, err := s.makerSlot(ctx)
	if err != nil {
		return NetworkInfo{}, err
	}
	defer release()
	seed := drawSeed(p.Seed)
	var net model.Model
	if p.Layers != nil {
		net, err = deep.New(p.Layers, p.Init.network(), newRand(seed))
	} else {
		net, err = network.New(p.Arch, p.Init.network(), newRand(seed))
	}
	if err != nil {
		return NetworkInfo{}, &Error{Code: Internal, Message: "could not create the network", Err: err}
	}
	token, hash, err := newOwnerToken()
	if err != nil {
		return NetworkInfo{}, &Error{Code: Internal, Message: "could not create the network", Err: err}
	}
	now := s.now().UTC()
	e, err := s.add(ctx, uuid.NewString(), now, p.Init, &seed, hash, label{p.Name, p.Notes},
		&state{net: net, version: s.versions.next(), updated: now})
	if err != nil {
		return NetworkInfo{}, err
	}
	s.log.Info("network created", "network_id", e.id, "architecture", e.sizes, "layers", model.String(e.layers), "init", p.Init, "seed", seed)
	info := e.info()
	info.OwnerToken, info.Name, info.Notes = token, p.Name, p.Notes
	return info, nil
}

// roomForOne refuses early, before any work, when MaxNetworks networks
// exist; add checks again, atomically.
func (s *Service) roomForOne(ctx context.Context) error {
	if s.isDone() {
		return ErrShuttingDown
	}
	recs, err := s.catalog.List(ctx)
	if err != nil {
		return stateError(err)
	}
	if len(recs) >= s.limits.MaxNetworks {
		return errTooMany(len(recs))
	}
	return nil
}

// makerSlot waits for one of the slots of networks being made and saved
// (each may be MaxParams large before it counts against the memory limit),
// or until ctx ends.
func (s *Service) makerSlot(ctx context.Context) (release func(), err error) {
	select {
	case s.makers <- struct{}{}:
		return func() { <-s.makers }, nil
	case <-ctx.Done():
		return nil, ctxError(ctx)
	}
}

func errTooMany(n int) error {
	return Errorf(Conflict, "there are already %d networks, the most this server keeps; delete some first", n)
}

func (s *Service) isDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// add saves a new network, records it in the catalog and loads it here.
// If the catalog is full, the saved model is removed again. Once the save
// has begun, the steps run to the end whatever becomes of ctx (its values
// and deadline aside): a model is never left without its record.
func (s *Service) add(ctx context.Context, id string, created time.Time, init Init, seed *uint64, ownerHash string, l label, st *state) (*entry, error) {
	// The network stays in memory: it holds its share of the budget.
	hold, err := s.reserve(ctx, heldBytes(model.ArchOf(st.net), len(st.history)))
	if err != nil {
		return nil, err
	}
	e := s.newEntry(id, created, init, seed, st, hold)
	e.ownerHash = ownerHash
	ctx = context.WithoutCancel(ctx)
	if err := s.store.Save(ctx, e.meta(st, l), st.net); err != nil {
		e.cancel(errNetworkDeleted)
		s.obs.ModelSaveFailed()
		return nil, &Error{Code: Storage, Message: "could not save the network to the models directory",
			Err: fmt.Errorf("save network %s: %w", id, err)}
	}
	rec := e.record(st, 1)
	rec.Name, rec.Notes = l.name, l.notes
	if err := s.catalog.Add(ctx, rec, s.limits.MaxNetworks); err != nil {
		e.cancel(errNetworkDeleted)
		if _, derr := s.store.Delete(ctx, id); derr != nil {
			s.log.Warn("could not remove the model of a network refused by the catalog", "network_id", id, "err", derr)
		}
		if errors.Is(err, ErrCatalogFull) {
			return nil, errTooMany(s.limits.MaxNetworks)
		}
		return nil, stateError(err)
	}
	e.version.Store(1)
	s.mu.Lock()
	s.admitLocked(e)
	s.mu.Unlock()
	return e, nil
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

// newEntry makes the entry of a network in memory, which holds hold (its
// share of the budget) until it leaves memory.
func (s *Service) newEntry(id string, created time.Time, init Init, seed *uint64, st *state, hold *budget.Hold) *entry {
	e := &entry{id: id, sizes: st.net.Sizes(), layers: model.Layers(st.net), created: created, init: init, seed: seed, params: model.ParamCount(st.net)}
	e.ctx, e.cancel = context.WithCancelCause(s.ctx)
	e.release = sync.OnceFunc(hold.Release)
	context.AfterFunc(e.ctx, e.release)
	e.state.Store(st)
	e.lastUsed.Store(time.Now().UnixNano())
	return e
}

// arch is e's architecture.
func (e *entry) arch() model.Arch { return model.Arch{Sizes: e.sizes, Layers: e.layers} }

func (e *entry) info() NetworkInfo {
	i := infoOf(e.record(e.state.Load(), 0))
	i.Loaded = true
	return i
}

// record is the catalog record of e in state st.
func (e *entry) record(st *state, version int64) NetworkRecord {
	return NetworkRecord{
		ID: e.id, Sizes: e.sizes, Layers: e.layers, Init: e.init, Seed: e.seed, Trained: st.trained, Accuracy: st.accuracy,
		EpochsTrained: st.epochs, CreatedAt: e.created, UpdatedAt: st.updated, Version: version, OwnerHash: e.ownerHash,
	}
}

// label is a network's name and notes, which the catalog keeps (Label
// changes them) and every save writes into the model file.
type label struct{ name, notes string }

func labelOf(r NetworkRecord) label { return label{r.Name, r.Notes} }

// meta describes e in state st, as it is saved, under the name and notes
// of l.
func (e *entry) meta(st *state, l label) modelfile.Meta {
	return modelfile.Meta{
		ID: e.id, Sizes: e.sizes, Layers: e.layers, Init: string(e.init), Seed: e.seed, Trained: st.trained, Accuracy: st.accuracy,
		EpochsTrained: st.epochs, History: st.history, CreatedAt: e.created, UpdatedAt: st.updated,
		OwnerHash: e.ownerHash, Name: l.name, Notes: l.notes,
	}
}

// errNetworkChanged ends a job whose network was given other weights (a
// restore) while it trained: its epochs would build on weights the
// network no longer has.
var errNetworkChanged = Errorf(Conflict, "the network was restored from a snapshot while this job trained it; train it again")

// saveOpts say what a save does besides writing the model.
type saveOpts struct {
	// snapshot: the model saved is kept as the snapshot of its epoch, and
	// the snapshots the policy no longer keeps are removed.
	snapshot bool
	// jobID is the job training the network, whose best snapshot is kept
	// while it trains; "" for none.
	jobID string
}

// save writes st, which follows from (e's state when st was made), as e's
// model, records it in the catalog and publishes it as e's state, holding
// the network's save lock: a deleted network is never written back, and
// nothing publishes another state in between (if something did, the save
// is refused: errNetworkChanged). A failure marks e unsaved, so that it is
// not unloaded while the store lags.
func (s *Service) save(e *entry, from, st *state, o saveOpts) error {
	// Not cancellable: a finished epoch is saved even while the server
	// shuts down.
	ctx := context.Background()
	unlock, err := s.catalog.LockSaves(ctx, e.id)
	if err != nil {
		return stateError(err)
	}
	defer unlock()
	cur, err := s.catalog.Get(ctx, e.id)
	if errors.Is(err, ErrUnknownNetwork) {
		return errNetworkDeleted
	}
	if err != nil {
		return stateError(err)
	}
	// Our copy must be the one the catalog records: if another replica
	// saved meanwhile, this job was taken over there and this run is stale.
	// It must not write: that replica's model is newer.
	if v := e.version.Load(); cur.Version != v {
		return fmt.Errorf("save network %s from version %d, the catalog has %d: %w", e.id, v, cur.Version, ErrVersionMoved)
	}
	if e.state.Load() != from {
		return errNetworkChanged
	}
	if err := s.store.Save(ctx, e.meta(st, labelOf(cur)), st.net); err != nil {
		e.unsaved.Store(true)
		s.obs.ModelSaveFailed()
		return &Error{Code: Storage, Message: "could not save the network to the models directory",
			Err: fmt.Errorf("save network %s: %w", e.id, err)}
	}
	e.unsaved.Store(false)
	// Our copy is the newest before the catalog says so: a lookup between
	// the two must not reload it from under the job.
	e.version.Store(cur.Version + 1)
	if err := s.catalog.Update(ctx, e.record(st, cur.Version+1)); err != nil {
		return stateError(fmt.Errorf("record network %s: %w", e.id, err))
	}
	// Published before the lock goes: whoever takes it next (a rename,
	// a restore) sees this state.
	e.state.Store(st)
	if o.snapshot {
		s.snapshot(ctx, e, st, o.jobID)
	}
	return nil
}

// List returns every network once: those loaded here first, then the
// others, each group oldest first.
func (s *Service) List(ctx context.Context) ([]NetworkInfo, error) {
	recs, err := s.catalog.List(ctx)
	if err != nil {
		return nil, stateError(err)
	}
	active, err := s.queue.Active(ctx)
	if err != nil {
		return nil, stateError(err)
	}
	out := make([]NetworkInfo, len(recs))
	s.mu.Lock()
	for i, r := range recs {
		if e := s.nets[r.ID]; e != nil && e.version.Load() >= r.Version {
			out[i] = e.info()
		} else {
			out[i] = infoOf(r)
			out[i].Loaded = e != nil
		}
		out[i].CurrentJob = active.Current[r.ID]
		out[i].Name, out[i].Notes = r.Name, r.Notes
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
	return out, nil
}

// loadCall is one read of a saved network from the store, shared by every
// request that needs the network meanwhile.
type loadCall struct {
	done chan struct{}
	e    *entry
	err  error
}

// lookup returns the entry of network id loaded here, current with the
// catalog: it loads the network from the store on first use, and again if
// another replica has saved a newer version. One load per network runs at a
// time, so concurrent requests neither repeat the work nor keep an older
// copy over a newer one.
func (s *Service) lookup(ctx context.Context, id string) (*entry, error) {
	rec, err := s.catalog.Get(ctx, id)
	if err != nil {
		if errors.Is(err, ErrUnknownNetwork) {
			s.evict(id, errNetworkDeleted) // deleted through another replica
		}
		return nil, stateError(err)
	}
	s.mu.Lock()
	for {
		// A copy with a job running here is the newest: only that job saves.
		if e, ok := s.nets[id]; ok && (e.version.Load() >= rec.Version || s.busy[id] > 0) {
			s.mu.Unlock()
			e.lastUsed.Store(time.Now().UnixNano())
			return e, nil
		}
		c, ok := s.loading[id]
		if !ok {
			break
		}
		s.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctxError(ctx)
		}
		if c.err != nil {
			return nil, c.err
		}
		s.mu.Lock()
	}
	c := &loadCall{done: make(chan struct{})}
	s.loading[id] = c
	s.mu.Unlock()
	defer close(c.done)

	// The load is shared by every request waiting for it: it does not end
	// with the request that started it (whose deadline it keeps).
	lctx := context.WithoutCancel(ctx)
	var (
		meta modelfile.Meta
		net  model.Model
	)
	// The load's reservation covers reading the file; what the network
	// keeps of it, its share of the budget while it stays in memory.
	hold, busy := s.reserve(lctx, loadBytes(rec.arch(), rec.EpochsTrained))
	if busy == nil {
		meta, net, err = s.store.Load(lctx, id)
		if err == nil {
			err = s.limits.CheckArch(model.ArchOf(net))
		}
		if err != nil {
			hold.Release()
		} else {
			hold.Shrink(heldBytes(model.ArchOf(net), len(meta.History)))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.loading, id)
	switch {
	case busy != nil:
		c.err = busy
	case errors.Is(err, ErrModelNotFound):
		c.err = errNetworkNotFound // deleted meanwhile
	case err != nil:
		c.err = &Error{Code: Internal, Message: "the saved network could not be loaded", Err: fmt.Errorf("load network %s: %w", id, err)}
	default:
		c.e = s.newEntry(id, meta.CreatedAt, Init(meta.Init), meta.Seed,
			&state{net: net, version: s.versions.next(), trained: meta.Trained, accuracy: meta.Accuracy,
				epochs: meta.EpochsTrained, updated: meta.UpdatedAt, history: meta.History}, hold)
		// The catalog's owner is the one: a model saved by an older
		// release may have lost it.
		c.e.ownerHash = rec.OwnerHash
		c.e.version.Store(rec.Version)
		if old := s.nets[id]; old != nil {
			delete(s.nets, id)
			old.cancel(errUnloaded)
			old.release()
		}
		s.admitLocked(c.e)
		s.log.Info("network loaded", "network_id", id, "version", rec.Version)
	}
	return c.e, c.err
}

// evict drops this replica's copy of a network, if it has one.
func (s *Service) evict(id string, cause error) bool {
	s.mu.Lock()
	e := s.nets[id]
	delete(s.nets, id)
	s.mu.Unlock()
	if e != nil {
		e.cancel(cause)
		e.release()
	}
	return e != nil
}

// Deleted reports what deleting one network removed.
type Deleted struct {
	NetworkID  string
	FromMemory bool // it was loaded on this replica
	FromDisk   bool // its model was in the store
}

// Delete removes a network's model, then the network from the catalog and
// memory; its pending and running jobs fail. If the model cannot be
// removed, nothing else changes: the network and its jobs go on, and the
// error says so.
//
// With ownership on (Policy), it needs the network's owner token or the
// admin token in ctx (WithCredentials).
func (s *Service) Delete(ctx context.Context, id string) (Deleted, error) {
	rec, err := s.catalog.Get(ctx, id)
	if err != nil {
		return Deleted{}, stateError(err)
	}
	if err := s.authorize(ctx, rec); err != nil {
		return Deleted{}, err
	}
	return s.delete(ctx, id)
}

// delete is Delete once allowed.
func (s *Service) delete(ctx context.Context, id string) (Deleted, error) {
	// Holding the save lock while the model goes keeps a running job from
	// writing it back: its next save waits, then finds the network gone.
	unlock, err := s.catalog.LockSaves(ctx, id)
	if err != nil {
		return Deleted{}, stateError(err)
	}
	// From here the steps run to the end even if the client leaves: a
	// model removed is never left with its record.
	ctx = context.WithoutCancel(ctx)
	res, err := s.store.Delete(ctx, id)
	if !res.Gone() {
		unlock()
		return Deleted{}, &Error{Code: Storage, Message: "could not delete the network's file; the network is kept",
			Err: fmt.Errorf("delete network %s: %w", id, err)}
	}
	if err != nil { // removed, but the removal may not survive a power cut
		s.log.Warn("network file removed but not flushed", "network_id", id, "err", err)
	}
	rerr := s.catalog.Remove(ctx, id)
	unlock()
	if rerr != nil {
		return Deleted{}, stateError(rerr) // deleted meanwhile by someone else: not found
	}
	pending, err := s.queue.EndNetwork(ctx, id, StatusFailed, errNetworkDeleted)
	if err != nil {
		s.log.Error("network deleted, but its jobs could not be ended", "network_id", id, "err", err)
	}
	for _, j := range pending {
		s.jobEnded(j)
		s.emitFailure(j)
	}
	fromMemory := s.evict(id, errNetworkDeleted) // a job running here stops within one chunk
	if s.replicas != nil {
		// The others drop their copies now rather than at their next lookup.
		if err := s.replicas.NetworkRemoved(ctx, id); err != nil {
			s.log.Warn("network deleted, but the other replicas could not be told (they drop it at their next use)", "network_id", id, "err", err)
		}
	}
	fromDisk := res != DeleteNotFound
	s.log.Info("network deleted", "network_id", id, "from_memory", fromMemory, "from_disk", fromDisk)
	return Deleted{NetworkID: id, FromMemory: fromMemory, FromDisk: fromDisk}, nil
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
// that of the first failure, nil when there was none. It affects everyone:
// with an admin token or ownership on (Policy.Admin), it needs the admin
// token in ctx.
func (s *Service) DeleteAll(ctx context.Context) (DeletedAll, error) {
	if err := s.policy.Admin(CredentialsOf(ctx)); err != nil {
		return DeletedAll{}, err
	}
	recs, err := s.catalog.List(ctx)
	if err != nil {
		return DeletedAll{}, stateError(err)
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	slices.Sort(ids)
	var out DeletedAll
	var first error
	for _, id := range ids {
		if ctx.Err() != nil {
			return out, cmp.Or(first, ctxError(ctx))
		}
		d, err := s.delete(ctx, id)
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
