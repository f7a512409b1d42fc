package modelfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// MaxHistory is the most epoch records a network's history may hold. Encode
// refuses a longer history (the caller must drop the oldest records) and
// no file declaring more is read. At 1000 epochs a job, it is 100 jobs of
// the longest kind; history.json then takes about 27 MB.
const MaxHistory = 100_000

const (
	historyEntry = "history.json"
	// maxIDLen bounds EpochRecord.JobID and maxCostLen EpochRecord.Cost;
	// with their characters limited to idChars, they bound a record's JSON.
	maxIDLen   = 64
	maxCostLen = 32
	idChars    = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"
	// maxRecordJSON bounds the average record in history.json: ours take
	// about 270 bytes, at most 470 (TestRecordJSONBound), and a typical one
	// pretty-printed by another tool about 340.
	maxRecordJSON = 640
)

// maxHistoryJSON bounds the size of a history.json of n records.
func maxHistoryJSON(n int) uint64 { return 16 + uint64(n)*(maxRecordJSON+2) }

// EpochRecord describes one epoch of training, as the history keeps it.
type EpochRecord struct {
	// Epoch counts the network's epochs from its creation, 1 for its first,
	// across all jobs.
	Epoch int `json:"epoch"`
	// JobID is the training job the epoch belonged to: 1 to 64 letters,
	// digits, '.', '_', ':' or '-'.
	JobID string `json:"job_id"`
	// Accuracy is Correct/Total on the test set after the epoch, 0 to 1.
	Accuracy float64 `json:"accuracy"`
	Correct  int     `json:"correct"`
	Total    int     `json:"total"`
	// ElapsedTime is how long the epoch's training took, in seconds.
	ElapsedTime float64 `json:"elapsed_time"`
	// The job's hyper-parameters: LearningRate (> 0), MiniBatchSize (>= 1),
	// Cost (the cost function's name, 1 to 32 characters as for JobID) and
	// Lambda (the L2 regularisation, >= 0).
	LearningRate  float64 `json:"learning_rate"`
	MiniBatchSize int     `json:"mini_batch_size"`
	Cost          string  `json:"cost"`
	Lambda        float64 `json:"lambda"`
	// Seed is the job's shuffle seed.
	Seed uint64 `json:"seed"`
	// FinishedAt is when the epoch ended; stored in UTC to the nanosecond.
	FinishedAt time.Time `json:"finished_at"`
	// ValidationAccuracy is the accuracy on the 10,000 validation images
	// (never trained on), 0 to 1; TrainingCost the mean cost of the epoch's
	// training examples (plus the L2 term), >= 0. Both nil in records of
	// epochs trained before they were kept.
	ValidationAccuracy *float64 `json:"validation_accuracy,omitempty"`
	TrainingCost       *float64 `json:"training_cost,omitempty"`
	// RestoredFrom, when not 0, marks a record that is no epoch of
	// training but a restore: the network's weights became those of the
	// snapshot after epoch RestoredFrom (an earlier record), whose figures
	// and parameters the record repeats, with ElapsedTime 0 and FinishedAt
	// the time of the restore. The restore is a version of its own: it
	// takes the next epoch number. Absent from older files.
	RestoredFrom int `json:"restored_from,omitempty"`
}

// Restore reports whether r records a restore rather than an epoch of
// training.
func (r EpochRecord) Restore() bool { return r.RestoredFrom != 0 }

// recordKeys are the keys every record must have: a missing one would
// silently decode as a zero value.
var recordKeys = []string{"epoch", "job_id", "accuracy", "correct", "total", "elapsed_time",
	"learning_rate", "mini_batch_size", "cost", "lambda", "seed", "finished_at"}

// validateHistory checks h as both encoding and decoding require: at most
// MaxHistory records, epochs increasing from 1 to at most epochsTrained,
// and every field within its range.
func validateHistory(h []EpochRecord, epochsTrained int) error {
	if len(h) > MaxHistory {
		return fmt.Errorf("%w: a history of %d epochs, more than the limit of %d (MaxHistory)", ErrTooLarge, len(h), MaxHistory)
	}
	prev := 0
	for i, r := range h {
		if err := r.validate(); err != nil {
			return fmt.Errorf("history record %d: %w", i, err)
		}
		if r.Epoch <= prev {
			return fmt.Errorf("history record %d: epoch %d does not follow epoch %d", i, r.Epoch, prev)
		}
		if r.Epoch > epochsTrained {
			return fmt.Errorf("history record %d: epoch %d, but the network has trained %d", i, r.Epoch, epochsTrained)
		}
		prev = r.Epoch
	}
	return nil
}

func (r *EpochRecord) validate() error {
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case r.Epoch < 1:
		return fmt.Errorf("epoch %d, want at least 1", r.Epoch)
	case !validName(r.JobID, maxIDLen):
		return fmt.Errorf("job_id %.80q: want 1 to %d letters, digits or ._:-", r.JobID, maxIDLen)
	case !(r.Accuracy >= 0 && r.Accuracy <= 1):
		return fmt.Errorf("accuracy %v is not a number between 0 and 1", r.Accuracy)
	case r.Total < 0 || r.Correct < 0 || r.Correct > r.Total:
		return fmt.Errorf("%d correct of %d", r.Correct, r.Total)
	case !finite(r.ElapsedTime) || r.ElapsedTime < 0:
		return fmt.Errorf("elapsed_time %v, want a finite number of seconds >= 0", r.ElapsedTime)
	case !finite(r.LearningRate) || r.LearningRate <= 0:
		return fmt.Errorf("learning_rate %v, want a finite number > 0", r.LearningRate)
	case r.MiniBatchSize < 1:
		return fmt.Errorf("mini_batch_size %d, want at least 1", r.MiniBatchSize)
	case !validName(r.Cost, maxCostLen):
		return fmt.Errorf("cost %.80q: want 1 to %d letters, digits or ._:-", r.Cost, maxCostLen)
	case !finite(r.Lambda) || r.Lambda < 0:
		return fmt.Errorf("lambda %v, want a finite number >= 0", r.Lambda)
	case r.FinishedAt.Year() < 1 || r.FinishedAt.Year() > 9999:
		return fmt.Errorf("finished_at %v is not between the years 1 and 9999", r.FinishedAt)
	case r.ValidationAccuracy != nil && !(*r.ValidationAccuracy >= 0 && *r.ValidationAccuracy <= 1):
		return fmt.Errorf("validation_accuracy %v is not a number between 0 and 1", *r.ValidationAccuracy)
	case r.TrainingCost != nil && (!finite(*r.TrainingCost) || *r.TrainingCost < 0):
		return fmt.Errorf("training_cost %v, want a finite number >= 0", *r.TrainingCost)
	case r.RestoredFrom < 0 || r.RestoredFrom >= r.Epoch:
		return fmt.Errorf("restored_from %d, want an epoch before %d", r.RestoredFrom, r.Epoch)
	}
	return nil
}

// validName reports whether s is 1 to max characters of idChars: such
// names need no escaping in JSON, which keeps records within maxRecordJSON.
func validName(s string, max int) bool {
	return len(s) >= 1 && len(s) <= max && strings.Trim(s, idChars) == ""
}

// encodeHistory returns history.json for h, which validateHistory has
// accepted: a JSON array with one record a line, so that a diff of two
// files shows the epochs added.
func encodeHistory(h []EpochRecord) ([]byte, error) {
	if len(h) == 0 {
		return []byte("[]\n"), nil
	}
	var b bytes.Buffer
	b.WriteString("[\n")
	for i, r := range h {
		r.FinishedAt = r.FinishedAt.UTC()
		line, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("history record %d: %w", i, err)
		}
		b.Write(line)
		if i < len(h)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]\n")
	return b.Bytes(), nil
}

// recordFile is a record as read: pointers tell a missing key from a zero.
type recordFile struct {
	Epoch         *int       `json:"epoch"`
	JobID         *string    `json:"job_id"`
	Accuracy      *float64   `json:"accuracy"`
	Correct       *int       `json:"correct"`
	Total         *int       `json:"total"`
	ElapsedTime   *float64   `json:"elapsed_time"`
	LearningRate  *float64   `json:"learning_rate"`
	MiniBatchSize *int       `json:"mini_batch_size"`
	Cost          *string    `json:"cost"`
	Lambda        *float64   `json:"lambda"`
	Seed          *uint64    `json:"seed"`
	FinishedAt    *time.Time `json:"finished_at"`
	// Optional: absent in records written before they were kept.
	ValidationAccuracy *float64 `json:"validation_accuracy"`
	TrainingCost       *float64 `json:"training_cost"`
	RestoredFrom       int      `json:"restored_from"`
}

func (f *recordFile) record() (EpochRecord, error) {
	present := []bool{f.Epoch != nil, f.JobID != nil, f.Accuracy != nil, f.Correct != nil, f.Total != nil,
		f.ElapsedTime != nil, f.LearningRate != nil, f.MiniBatchSize != nil, f.Cost != nil, f.Lambda != nil,
		f.Seed != nil, f.FinishedAt != nil}
	for i, ok := range present {
		if !ok {
			return EpochRecord{}, fmt.Errorf("key %q is missing", recordKeys[i])
		}
	}
	return EpochRecord{
		Epoch: *f.Epoch, JobID: *f.JobID, Accuracy: *f.Accuracy, Correct: *f.Correct, Total: *f.Total,
		ElapsedTime: *f.ElapsedTime, LearningRate: *f.LearningRate, MiniBatchSize: *f.MiniBatchSize,
		Cost: *f.Cost, Lambda: *f.Lambda, Seed: *f.Seed, FinishedAt: *f.FinishedAt,
		ValidationAccuracy: f.ValidationAccuracy, TrainingCost: f.TrainingCost, RestoredFrom: f.RestoredFrom,
	}, nil
}

// decodeHistory reads history.json from r, which must hold a JSON array of
// exactly want records (meta.json's history_records, at most MaxHistory). It
// decodes one record at a time, so a file cannot make it hold more than
// want records, however many it lists.
func decodeHistory(r io.Reader, want int) ([]EpochRecord, error) {
	dec := json.NewDecoder(r)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, fmt.Errorf("not a JSON array (%v)", errOr(err, "starts with %v", tok))
	}
	var h []EpochRecord
	for dec.More() {
		if len(h) == want {
			return nil, fmt.Errorf("more than the %d records %s declares", want, metaEntry)
		}
		var rf recordFile
		if err := dec.Decode(&rf); err != nil {
			return nil, fmt.Errorf("record %d: %w", len(h), err)
		}
		rec, err := rf.record()
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", len(h), err)
		}
		h = append(h, rec)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		return nil, fmt.Errorf("the array does not end (%v)", errOr(err, "%v", tok))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the array")
	}
	if len(h) != want {
		return nil, fmt.Errorf("%d records, %s declares %d", len(h), metaEntry, want)
	}
	return h, nil
}

// errOr returns err if it is not nil, else an error of the given format.
func errOr(err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	return fmt.Errorf(format, args...)
}
