package service

// Events receives the progress of training jobs. The Socket.IO side
// implements it by broadcasting each call as the event of the same name;
// tests plug in a recorder. Calls come from job goroutines, one job's calls
// in order; implementations must not block for long.
type Events interface {
	TrainingUpdate(Update)
	TrainingComplete(Complete)
	TrainingError(Failure)
}

// Update is the training_update event, sent after every epoch.
type Update struct {
	JobID       string  `json:"job_id"`
	NetworkID   string  `json:"network_id"`
	Epoch       int     `json:"epoch"`
	TotalEpochs int     `json:"total_epochs"`
	Accuracy    float64 `json:"accuracy"`
	ElapsedTime float64 `json:"elapsed_time"`
	Progress    float64 `json:"progress"`
	Correct     int     `json:"correct"`
	Total       int     `json:"total"`
}

// Complete is the training_complete event, sent once after the last epoch
// has been saved.
type Complete struct {
	JobID     string  `json:"job_id"`
	NetworkID string  `json:"network_id"`
	Status    string  `json:"status"` // "completed"
	Accuracy  float64 `json:"accuracy"`
	Progress  float64 `json:"progress"` // 100
}

// Failure is the training_error event, sent once when a job fails.
type Failure struct {
	JobID     string `json:"job_id"`
	NetworkID string `json:"network_id"`
	Status    string `json:"status"` // "failed"
	Error     string `json:"error"`
}

// NopEvents discards all events.
type NopEvents struct{}

func (NopEvents) TrainingUpdate(Update)     {}
func (NopEvents) TrainingComplete(Complete) {}
func (NopEvents) TrainingError(Failure)     {}
