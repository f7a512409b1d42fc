package service

import "math"

// The names of the events, as the contract has them: each Events method
// is the event of the same name, on Socket.IO and in the scaled mode's
// relay.
const (
	EventUpdate   = "training_update"
	EventProgress = "training_progress"
	EventComplete = "training_complete"
	EventError    = "training_error"
)

// Microseconds rounds seconds (a duration, a confidence) to the
// microsecond: the precision every answer shows them at, so that JSON reads
// 0.406542 rather than 0.40654210700000004.
func Microseconds(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// Events receives the progress of training jobs. The Socket.IO side
// implements it by broadcasting each call as the event of the same name;
// tests plug in a recorder. Calls come from job goroutines, one job's calls
// in order; implementations must not block for long.
//
// The values are domain values: the wire shapes (JSON field names, the
// status strings, rounding) belong to the implementation.
type Events interface {
	TrainingUpdate(Update)
	TrainingProgress(Progress)
	TrainingComplete(Complete)
	TrainingError(Failure)
}

// Update reports a finished epoch (training_update).
type Update struct {
	JobID       string
	NetworkID   string
	Epoch       int // 1-based, within the job
	TotalEpochs int
	// NetworkEpoch counts the epoch from the network's creation, as its
	// history does.
	NetworkEpoch int
	Accuracy     float64 // Correct / Total
	ElapsedTime  float64 // seconds this epoch's training took, evaluation excluded
	Progress     float64 // 0–100 over the whole job
	Correct      int
	Total        int
	// ValidationAccuracy is the accuracy on the 10,000 validation images,
	// never trained on; TrainingCost the epoch's mean cost (with the L2
	// term).
	ValidationAccuracy float64
	TrainingCost       float64
}

// Progress reports progress inside an epoch (training_progress). It is sent
// at most a few times a second, and only for epochs that take long.
type Progress struct {
	JobID       string
	NetworkID   string
	Epoch       int // the epoch under way, 1-based
	TotalEpochs int
	Batch       int // mini-batches of this epoch done
	Batches     int // mini-batches in an epoch
	Progress    float64
}

// Complete reports a job whose every epoch ran and was saved
// (training_complete).
type Complete struct {
	JobID     string
	NetworkID string
	Accuracy  float64
}

// Failure reports a job that ended without completing (training_error):
// Status is StatusFailed or StatusCancelled. Or, with Status
// StatusInterrupted, a job that stopped here without ending: the server is
// shutting down, and the job resumes from its last saved epoch when it is
// back (or on another replica), with its training_updates and its final
// event as usual.
type Failure struct {
	JobID     string
	NetworkID string
	Status    JobStatus
	Error     string
}

// StatusInterrupted is the status of a training_error sent for a job that
// stops here without ending (Failure); no job ever has it.
const StatusInterrupted JobStatus = "interrupted"

// MsgInterrupted is the error of a training_error "interrupted".
const MsgInterrupted = "the server is shutting down; the job will resume from its last saved epoch when the server is back"

// NopEvents discards all events.
type NopEvents struct{}

func (NopEvents) TrainingUpdate(Update)     {}
func (NopEvents) TrainingProgress(Progress) {}
func (NopEvents) TrainingComplete(Complete) {}
func (NopEvents) TrainingError(Failure)     {}
