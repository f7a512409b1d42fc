package api

import (
	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/model"
	"math"
	"time"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

// The JSON bodies of the contract. Field names, types and fixed strings
// here are load-bearing: docs/PROTOCOL.md lists them and existing clients
// read them.

type errorBody struct {
	Error string `json:"error"`
}

type statusBody struct {
	Status         string `json:"status"` // "online"
	ActiveNetworks int    `json:"active_networks"`
	TrainingJobs   int    `json:"training_jobs"`
	// Database, in scaled mode only: "ok" or "unavailable".
	Database string `json:"database,omitempty"`
	Role     string `json:"role,omitempty"` // "worker" on a worker replica
	// Ownership is true when changing a network needs its owner token
	// (OWNERSHIP=on); absent otherwise.
	Ownership bool `json:"ownership,omitempty"`
}

// accessBody is what GET /api/networks/{id}/access answers.
type accessBody struct {
	NetworkID string  `json:"network_id"`
	Ownership bool    `json:"ownership"`  // changing networks needs an owner token
	MayChange bool    `json:"may_change"` // the caller may delete, train it, cancel its jobs
	Role      *string `json:"role"`       // "owner", "admin", "anyone"; null when it may not
}

type readyBody struct {
	Ready    bool              `json:"ready"`
	Backends map[string]string `json:"backends"` // "database", "models": "ok" or "unavailable"; empty in single mode
	Error    string            `json:"error,omitempty"`
}

type createdBody struct {
	NetworkID    string  `json:"network_id"`
	Architecture []int   `json:"architecture"`
	Status       string  `json:"status"` // "created" (or "imported")
	Init         *string `json:"init"`   // null when unknown (imported)
	Seed         *uint64 `json:"seed"`   // null when unknown
	// OwnerToken is the network's owner token, given this once (only its
	// hash is kept): with OWNERSHIP=on, changing the network needs it.
	OwnerToken string `json:"owner_token"`
	Name       string `json:"name"`  // added; "" when none
	Notes      string `json:"notes"` // added; "" when none
	// Layers, for a layers network only: the list as created, each layer
	// with its output shape.
	Layers []model.LayerJSON `json:"layers,omitempty"`
}

type networkBody struct {
	NetworkID     string   `json:"network_id"`
	Architecture  []int    `json:"architecture"`
	Trained       bool     `json:"trained"`
	Accuracy      *float64 `json:"accuracy"`
	Status        string   `json:"status"` // "in_memory" or "saved"
	EpochsTrained int      `json:"epochs_trained"`
	Init          *string  `json:"init"`           // null when unknown
	Seed          *uint64  `json:"seed"`           // null when unknown
	CurrentJobID  *string  `json:"current_job_id"` // the job training it, or the first waiting; null when none
	WeightsShape  [][2]int `json:"weights_shape,omitempty"`
	BiasesShape   [][2]int `json:"biases_shape,omitempty"`
	Name          string   `json:"name"`  // added; "" when none
	Notes         string   `json:"notes"` // added; "" when none
	// Layers, for a layers network only (see createdBody).
	Layers []model.LayerJSON `json:"layers,omitempty"`
}

type listBody struct {
	Networks []networkBody `json:"networks"`
}

type deletedBody struct {
	NetworkID         string `json:"network_id"`
	DeletedFromMemory bool   `json:"deleted_from_memory"`
	DeletedFromDisk   bool   `json:"deleted_from_disk"`
}

type deletedAllBody struct {
	Error             string       `json:"error,omitempty"` // when some networks could not be deleted
	DeletedCount      int          `json:"deleted_count"`
	DeletedFromMemory int          `json:"deleted_from_memory"`
	DeletedFromDisk   int          `json:"deleted_from_disk"`
	Message           string       `json:"message"`
	NotDeleted        []notDeleted `json:"not_deleted,omitempty"`
}

type notDeleted struct {
	NetworkID string `json:"network_id"`
	Error     string `json:"error"`
}

type trainStartedBody struct {
	JobID     string `json:"job_id"`
	NetworkID string `json:"network_id"`
	Status    string `json:"status"` // "training_started"
}

type jobBody struct {
	JobID        string      `json:"job_id"`
	NetworkID    string      `json:"network_id"`
	Status       string      `json:"status"`
	Progress     float64     `json:"progress"`
	Epochs       int         `json:"epochs"`
	Epoch        int         `json:"epoch"`
	TotalEpochs  int         `json:"total_epochs"`
	MiniBatch    int         `json:"mini_batch_size"`
	LearningRate float64     `json:"learning_rate"`
	Cost         string      `json:"cost"`
	Lambda       float64     `json:"lambda"`
	Seed         uint64      `json:"seed"`
	ElapsedTime  float64     `json:"elapsed_time"`
	Accuracy     *float64    `json:"accuracy,omitempty"`
	Error        string      `json:"error,omitempty"`
	History      []epochBody `json:"history"`
	// Added: the early stopping options (0 and false when not asked for),
	// the job's epoch of the best validation accuracy (null before one),
	// and whether it stopped early.
	StopAfterNoImprovement int  `json:"stop_after_no_improvement"`
	RestoreBest            bool `json:"restore_best"`
	BestEpoch              *int `json:"best_epoch"`
	StoppedEarly           bool `json:"stopped_early"`
	// Added: whether the job trains on the shifted images too (layers
	// networks only).
	Expand bool `json:"expand"`
}

type epochBody struct {
	Epoch              int      `json:"epoch"`
	Accuracy           float64  `json:"accuracy"`
	Correct            int      `json:"correct"`
	ElapsedTime        float64  `json:"elapsed_time"`
	ValidationAccuracy *float64 `json:"validation_accuracy,omitempty"` // added; absent where unknown
	TrainingCost       *float64 `json:"training_cost,omitempty"`
}

type cancelledBody struct {
	JobID     string `json:"job_id"`
	NetworkID string `json:"network_id"`
	Status    string `json:"status"`
}

// exampleHead is an example without output_weights, which is encoded once
// per network version and appended (see examples.go).
type exampleHead struct {
	NetworkID      string    `json:"network_id"`
	ExampleIndex   int       `json:"example_index"`
	PredictedDigit int       `json:"predicted_digit"`
	ActualDigit    int       `json:"actual_digit"`
	ImageData      string    `json:"image_data"` // base64 PNG, no data: prefix
	NetworkOutput  []float64 `json:"network_output"`
}

func networkOf(n service.NetworkInfo) networkBody {
	b := networkBody{
		NetworkID: n.ID, Architecture: n.Sizes, Trained: n.Trained, Accuracy: n.Accuracy,
		Status: "in_memory", EpochsTrained: n.EpochsTrained, Init: initOf(n.Init), Seed: n.Seed,
		Name: n.Name, Notes: n.Notes, Layers: layersOf(n.Layers),
	}
	if n.CurrentJob != "" {
		b.CurrentJobID = &n.CurrentJob
	}
	if !n.Loaded {
		// As the Python service listed networks it had only on disk.
		b.Status = "saved"
		for l := 1; l < len(n.Sizes) && n.Layers == nil; l++ {
			b.WeightsShape = append(b.WeightsShape, [2]int{n.Sizes[l], n.Sizes[l-1]})
			b.BiasesShape = append(b.BiasesShape, [2]int{n.Sizes[l], 1})
		}
	}
	return b
}

func jobOf(j service.JobInfo) jobBody {
	b := jobBody{
		JobID: j.ID, NetworkID: j.NetworkID, Status: string(j.Status), Progress: j.Progress(),
		Epochs: j.Params.Epochs, Epoch: j.Epoch, TotalEpochs: j.Params.Epochs,
		MiniBatch: j.Params.MiniBatch, LearningRate: j.Params.LearningRate,
		Cost: string(j.Params.Cost), Lambda: j.Params.Lambda,
		ElapsedTime: service.Microseconds(j.ElapsedTime), Accuracy: j.Accuracy, Error: j.Error,
		History:                make([]epochBody, len(j.History)),
		StopAfterNoImprovement: j.Params.StopAfterNoImprovement, RestoreBest: j.Params.RestoreBest,
		StoppedEarly: j.StoppedEarly(), Expand: j.Params.Expand,
	}
	if j.Params.Seed != nil {
		b.Seed = *j.Params.Seed
	}
	if best := j.BestEpoch(); best > 0 {
		b.BestEpoch = &best
	}
	for i, e := range j.History {
		b.History[i] = epochBody{Epoch: e.Epoch, Accuracy: e.Accuracy, Correct: e.Correct, ElapsedTime: service.Microseconds(e.ElapsedTime),
			ValidationAccuracy: e.ValidationAccuracy, TrainingCost: e.TrainingCost}
	}
	return b
}

// retryAfterSeconds is the Retry-After header for a duration, at least 1.
func retryAfterSeconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }

func initOf(i service.Init) *string {
	if i == "" {
		return nil
	}
	s := string(i)
	return &s
}

func createdOf(n service.NetworkInfo, status string) createdBody {
	return createdBody{NetworkID: n.ID, Architecture: n.Sizes, Status: status, Init: initOf(n.Init), Seed: n.Seed,
		OwnerToken: n.OwnerToken, Name: n.Name, Notes: n.Notes, Layers: layersOf(n.Layers)}
}

// layersOf is a layers network's list as answers give it, each layer with
// its output shape; nil for a layer_sizes network.
func layersOf(layers []deep.Layer) []model.LayerJSON {
	if layers == nil {
		return nil
	}
	shapes, err := deep.Plan(layers, deep.Limits{})
	if err != nil {
		shapes = nil // never: a network's layers have been planned
	}
	return model.ToJSON(layers, shapes)
}

type historyBody struct {
	NetworkID string             `json:"network_id"`
	Epochs    []historyEpochBody `json:"epochs"` // one page: from_epoch on, at most limit
	// Total is the records in the whole history; NextFromEpoch the
	// from_epoch of the next page, null on the last.
	Total         int  `json:"total"`
	NextFromEpoch *int `json:"next_from_epoch"`
}

type historyEpochBody struct {
	Epoch         int     `json:"epoch"` // counted from the network's creation
	JobID         string  `json:"job_id"`
	Accuracy      float64 `json:"accuracy"`
	Correct       int     `json:"correct"`
	ElapsedTime   float64 `json:"elapsed_time"`
	LearningRate  float64 `json:"learning_rate"`
	MiniBatchSize int     `json:"mini_batch_size"`
	Cost          string  `json:"cost"`
	Lambda        float64 `json:"lambda"`
	Seed          uint64  `json:"seed"`
	FinishedAt    string  `json:"finished_at"` // RFC 3339
	// Added; absent in records of epochs trained before they were kept.
	ValidationAccuracy *float64 `json:"validation_accuracy,omitempty"`
	TrainingCost       *float64 `json:"training_cost,omitempty"`
	// Added; only in the record of a restore: the epoch whose snapshot
	// became the network's weights.
	RestoredFrom int `json:"restored_from,omitempty"`
}

func historyOf(id string, recs []modelfile.EpochRecord) historyBody {
	b := historyBody{NetworkID: id, Epochs: make([]historyEpochBody, len(recs))}
	for i, r := range recs {
		b.Epochs[i] = historyEpochBody{
			Epoch: r.Epoch, JobID: r.JobID, Accuracy: r.Accuracy, Correct: r.Correct, ElapsedTime: service.Microseconds(r.ElapsedTime),
			LearningRate: r.LearningRate, MiniBatchSize: r.MiniBatchSize, Cost: r.Cost, Lambda: r.Lambda, Seed: r.Seed,
			FinishedAt:         r.FinishedAt.UTC().Format(time.RFC3339Nano),
			ValidationAccuracy: r.ValidationAccuracy, TrainingCost: r.TrainingCost, RestoredFrom: r.RestoredFrom,
		}
	}
	return b
}
