package modelfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// TestRecordJSONBound checks that the largest record Encode accepts fits
// maxRecordJSON, on which the bound of history.json's size rests.
func TestRecordJSONBound(t *testing.T) {
	worst := EpochRecord{
		Epoch: math.MaxInt64, JobID: strings.Repeat("J", maxIDLen),
		Accuracy: 0.12345678901234568, Correct: math.MaxInt64, Total: math.MaxInt64,
		ElapsedTime: 1.2345678901234567e+300, LearningRate: 1.2345678901234567e-300,
		MiniBatchSize: math.MaxInt64, Cost: strings.Repeat("c", maxCostLen), Lambda: 1.2345678901234567e+300,
		Seed:               math.MaxUint64,
		FinishedAt:         time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		ValidationAccuracy: new(0.12345678901234568), TrainingCost: new(1.2345678901234567e+300),
		RestoredFrom: math.MaxInt64 - 1,
	}
	if err := worst.validate(); err != nil {
		t.Fatal(err)
	}
	b, err := encodeHistory([]EpochRecord{worst})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(strings.Trim(string(b), "[]\n"))
	t.Logf("%d bytes: %s", len(line), line)
	if len(line) > maxRecordJSON {
		t.Errorf("the largest record takes %d bytes, more than maxRecordJSON (%d)", len(line), maxRecordJSON)
	}
}

// TestHistoryLimit checks that MaxHistory records are accepted and one more
// refused, and round-trips a long history. (A full MaxHistory round trip
// takes 0.3 s to save and 0.6 s to load, 10 s under the race detector: a
// tenth of it exercises the same code.)
func TestHistoryLimit(t *testing.T) {
	m, n := fixture(t)
	long := history(MaxHistory+1, m.CreatedAt)
	if err := validateHistory(long[1:], MaxHistory+1); err != nil {
		t.Errorf("a history of MaxHistory records: %v", err)
	}
	m.History, m.EpochsTrained = long, MaxHistory+1
	var b bytes.Buffer
	if err := EncodeWithin(&b, m, n, Limits{}); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "a history of 100001 epochs, more than the limit of 100000 (MaxHistory)") {
		t.Errorf("EncodeWithin of MaxHistory+1 records: %v, want ErrTooLarge naming MaxHistory", err)
	}
	if err := Encode(&b, m, n); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Encode of MaxHistory+1 records: %v, want ErrTooLarge", err)
	}
	if b.Len() != 0 {
		t.Errorf("the refused encodings wrote %d bytes", b.Len())
	}
	m.History, m.EpochsTrained = long[:MaxHistory/10], MaxHistory
	file := saved(t, m, n)
	got, _, err := decodeAs(file, Limits{}, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, got, m)
	if e, err := decodeEntryAs(file, Limits{}, m.ID); err != nil || e.History != nil {
		t.Errorf("DecodeEntryAs: history of %d records, %v; want none, nil", len(e.History), err)
	}
}

func TestEntryOfDropsHistory(t *testing.T) {
	m, _ := fixture(t)
	e := EntryOf(m)
	if e.History != nil || len(m.History) != 3 {
		t.Errorf("EntryOf: history %v; the Meta given: %v", e.History, m.History)
	}
}

// TestHistoryJSON pins history.json's layout: an array with one record a
// line, times in UTC.
func TestHistoryJSON(t *testing.T) {
	m, _ := fixture(t)
	b, err := encodeHistory(m.History[:2])
	if err != nil {
		t.Fatal(err)
	}
	want := `[
{"epoch":1,"job_id":"9b2f64e1-0c1d-4e5f-8a7b-000000000000","accuracy":0.9,"correct":9000,"total":10000,"elapsed_time":1.25,"learning_rate":3,"mini_batch_size":10,"cost":"quadratic","lambda":0,"seed":7,"finished_at":"2024-05-01T12:01:00.123456789Z"},
{"epoch":2,"job_id":"9b2f64e1-0c1d-4e5f-8a7b-000000000000","accuracy":0.9001,"correct":9001,"total":10000,"elapsed_time":1.375,"learning_rate":3,"mini_batch_size":10,"cost":"quadratic","lambda":0,"seed":7,"finished_at":"2024-05-01T12:02:00.123456789Z"}
]
`
	if string(b) != want {
		t.Errorf("history.json:\n%s\nwant:\n%s", b, want)
	}
	var keys []map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys[0]) != len(recordKeys) {
		t.Errorf("a record has %d keys, recordKeys lists %d", len(keys[0]), len(recordKeys))
	}
	if b, _ := encodeHistory(nil); string(b) != "[]\n" {
		t.Errorf("empty history.json: %q", b)
	}
}
