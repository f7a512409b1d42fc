package service

import (
	"context"
	"github.com/mnist-go/nnserver/pkg/model"
	"time"

	"github.com/mnist-go/nnserver/pkg/deep"
)

// The service keeps what must be shared by every replica of a deployment
// in two stores it consumes through interfaces: the Catalog (which networks
// exist, and what is known of them) and the Queue (training jobs: kept,
// handed to workers one network at a time, and what became of them). The
// in-memory ones (NewMemoryCatalog, NewMemoryQueue) serve a single process;
// pkg/postgres's serve many replicas. Both pass the same contract suite,
// pkg/service/statetest.

// arch is r's architecture.
func (r NetworkRecord) arch() model.Arch { return model.Arch{Sizes: r.Sizes, Layers: r.Layers} }

// NetworkRecord is what the catalog knows of a network.
type NetworkRecord struct {
	ID    string
	Sizes []int
	// Layers is a layers network's list; nil for a layer_sizes network.
	Layers        []deep.Layer
	Init          Init    // "" when unknown (imported)
	Seed          *uint64 // nil when unknown
	Trained       bool
	Accuracy      *float64
	EpochsTrained int
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Version is 1 when the network is added and grows by one with every
	// save: a replica's copy in memory is current while its version is.
	Version int64
	// OwnerHash is the SHA-256 (lowercase hex) of the network's owner
	// token, "" for a network made before owner tokens (the admin's). It
	// is set by Add and never changes: Update keeps the one recorded.
	OwnerHash string
	// Name and Notes are what people call the network and note of it
	// ("" when none). Add records them, Label replaces them; Update keeps
	// the recorded ones, so that a save (of a job's epoch, on any replica)
	// never undoes a rename.
	Name, Notes string
}

// Catalog records the networks. Implementations are safe for concurrent
// use.
type Catalog interface {
	// Add records a new network, unless max networks are recorded already
	// (ErrCatalogFull). rec.Version must be 1.
	Add(ctx context.Context, rec NetworkRecord, max int) error
	// Get returns a network's record, or ErrUnknownNetwork.
	Get(ctx context.Context, id string) (NetworkRecord, error)
	// List returns every record, in no particular order.
	List(ctx context.Context) ([]NetworkRecord, error)
	// Update replaces a record after a save: rec.Version must be the
	// recorded version plus one (ErrVersionMoved otherwise); a removed
	// network gives ErrUnknownNetwork. The recorded OwnerHash, Name and
	// Notes are kept, whatever rec says.
	Update(ctx context.Context, rec NetworkRecord) error
	// Label replaces a network's Name and Notes, leaving its Version
	// alone (no model changes: copies in memory stay current);
	// ErrUnknownNetwork if it is not recorded.
	Label(ctx context.Context, id, name, notes string) error
	// Remove forgets a network; ErrUnknownNetwork if it is not recorded.
	Remove(ctx context.Context, id string) error
	// LockSaves holds the network's save lock until unlock is called: saves
	// of its model and the removal of its model take it, so that a model is
	// never written back after its network was deleted. It waits until the
	// lock is free or ctx ends.
	LockSaves(ctx context.Context, id string) (unlock func(), err error)
}

// Admission bounds what Queue.Add accepts.
type Admission struct {
	MaxQueued int // jobs pending in all
	// MaxQueuedPerClient bounds the pending jobs of one client (JobInfo.Client);
	// 0: no bound. Jobs of client "" are not counted.
	MaxQueuedPerClient int
	// MaxNetworkEpochs bounds a network's epochs in its life: EpochsTrained
	// (what the catalog records) plus the epochs not yet done of the
	// network's unfinished jobs plus the new job's must stay within it. A
	// job whose epoch is saved but not yet recorded by Epoch is counted
	// twice for a moment: the check errs on the side of refusing. 0: no
	// bound.
	MaxNetworkEpochs int
	EpochsTrained    int
}

// JobInfo is what is known of a training job.
type JobInfo struct {
	ID        string
	NetworkID string
	// Client is the address of the client that asked for the job, for the
	// per-client bound on pending jobs; "" when unknown (never bounded).
	Client   string
	Params   TrainParams // Seed is always set: the one given or the one drawn
	Status   JobStatus
	Epoch    int      // epochs finished
	Accuracy *float64 // after the last finished epoch
	// ElapsedTime is the training seconds so far, evaluation excluded.
	ElapsedTime float64
	Error       string // why it failed or was cancelled
	History     []EpochResult
	CreatedAt   time.Time
	StartedAt   time.Time // zero until it first starts
	FinishedAt  time.Time // zero until it ends
}

// Progress is 0–100 over the whole job.
func (j JobInfo) Progress() float64 { return progress(j.Epoch, j.Params.Epochs) }

func progress(epoch, total int) float64 { return float64(epoch) / float64(total) * 100 }

// EpochResult is one finished epoch of a job.
type EpochResult struct {
	Epoch       int // 1-based, within the job
	Correct     int
	Total       int
	Accuracy    float64
	ElapsedTime float64 // seconds of training, evaluation excluded
	// ValidationAccuracy (on the validation images) and TrainingCost (the
	// epoch's mean cost, with the L2 term); nil where a store kept none.
	ValidationAccuracy *float64
	TrainingCost       *float64
}

// Ended says what Queue.End did.
type Ended struct {
	Now        bool // this call ended the job (false: it had ended already)
	WasPending bool // it was waiting: no worker will report its end
}

// ActiveJobs counts the jobs not yet ended.
type ActiveJobs struct {
	Queued  int
	Running int
	// Current maps each network with a job to the job running on it, or
	// else the first one waiting for it.
	Current map[string]string
}

// Work runs one job. The Queue calls it with the job marked training, and
// cancels ctx (with a cause) when the job must stop early: it was ended
// (End), or the queue is stopping (ErrShuttingDown, or ErrHandOver when the
// job goes on elsewhere). Work ends the job itself (End), except when the
// cause is ErrHandOver.
type Work func(ctx context.Context, j JobInfo) error

// Queue keeps the training jobs and runs them: at most one job per network
// at a time, oldest first, on workers that call Work. Implementations are
// safe for concurrent use.
type Queue interface {
	// Add records a pending job and schedules it, unless a admits it not:
	// ErrQueueIsFull, ErrClientQueueIsFull or ErrLifetimeEpochs. The checks
	// and the insertion are atomic with respect to other Adds.
	Add(ctx context.Context, j JobInfo, a Admission) error
	// Get returns a job, or ErrUnknownJob (never added, or forgotten after
	// the retention limits).
	Get(ctx context.Context, id string) (JobInfo, error)
	// End ends a job with status and cause, unless it has ended already:
	// a pending one leaves the queue, a running one's Work has its context
	// cancelled with cause. It returns the job as it ends up.
	End(ctx context.Context, id string, status JobStatus, cause error) (JobInfo, Ended, error)
	// EndNetwork ends every job of a network that has not ended, and
	// returns those that were pending (their end is for the caller to tell).
	EndNetwork(ctx context.Context, networkID string, status JobStatus, cause error) ([]JobInfo, error)
	// Active counts the jobs pending and running.
	Active(ctx context.Context) (ActiveJobs, error)
	// List returns a page of the jobs not yet forgotten that f selects,
	// newest first (the order of Add), without their History.
	List(ctx context.Context, f JobFilter) (JobPage, error)
	// Epoch records a finished epoch of a running job.
	Epoch(ctx context.Context, id string, r EpochResult) error
	// Start starts the workers, which call work until Stop.
	Start(work Work) error
	// Stop stops the workers: running jobs have their Work's context
	// cancelled (ErrShuttingDown, or ErrHandOver), pending ones are ended or
	// left for other replicas. It returns the pending jobs it ended, whose
	// ends are for the caller to tell, and waits for the workers until ctx
	// ends.
	Stop(ctx context.Context) ([]JobInfo, error)
}
