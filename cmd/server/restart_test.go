package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"
)

// startSingle runs the server in single mode on models until the function
// it returns is called (the signal), which waits for run to return.
func startSingle(t *testing.T, models string) (*replica, func() error) {
	t.Helper()
	port := testutil.FreePort(t)
	r := &replica{url: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &lockedBuffer{}}
	env := map[string]string{"PORT": fmt.Sprint(port), "MODELS_DIR": models, "METRICS": "off", "MAX_CONCURRENT_JOBS": "1"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envOf(env), r.logs) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second): // a guard against a hang
			return fmt.Errorf("the server did not stop within 30 s of the signal\n%s", r.logs)
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	r.waitUp(t, done, "the server")
	return r, stop
}

type jobBody struct {
	Status  string `json:"status"`
	Epoch   int    `json:"epoch"`
	Error   string `json:"error"`
	History []struct {
		Epoch int `json:"epoch"`
	} `json:"history"`
}

// TestSingleModeJobsSurviveARestart: a job running at the signal resumes
// when the server starts again on the same models directory (its jobs.db),
// and completes with every epoch once; a finished job is still answered.
func TestSingleModeJobsSurviveARestart(t *testing.T) {
	models := t.TempDir()
	r, stop := startSingle(t, models)
	var net struct {
		ID string `json:"network_id"`
	}
	r.call(t, "POST", "/api/networks", `{"layer_sizes": [784, 10, 10], "seed": 1}`, 200, &net)
	var short, long struct {
		ID string `json:"job_id"`
	}
	r.call(t, "POST", "/api/networks/"+net.ID+"/train", `{"epochs": 1, "mini_batch_size": 50, "seed": 2}`, 200, &short)
	const epochs = 30
	r.call(t, "POST", "/api/networks/"+net.ID+"/train", fmt.Sprintf(`{"epochs": %d, "mini_batch_size": 50, "seed": 3}`, epochs), 200, &long)
	var j jobBody
	if !testutil.Poll(time.Minute, testutil.Every, func() bool {
		r.call(t, "GET", "/api/training/"+long.ID, "", 200, &j)
		return j.Epoch >= 1
	}) {
		t.Fatalf("the job did not train an epoch within a minute: %+v", j)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	r, _ = startSingle(t, models)
	r.call(t, "GET", "/api/training/"+short.ID, "", 200, &j)
	if j.Status != "completed" || len(j.History) != 1 {
		t.Errorf("the job finished before the restart, after it: %+v", j)
	}
	if !testutil.Poll(2*time.Minute, testutil.Every, func() bool {
		r.call(t, "GET", "/api/training/"+long.ID, "", 200, &j)
		return j.Status != "pending" && j.Status != "training"
	}) {
		t.Fatalf("the resumed job did not end within 2 minutes: %+v\n%s", j, r.logs)
	}
	if j.Status != "completed" || j.Epoch != epochs || len(j.History) != epochs {
		t.Fatalf("the resumed job: %+v", j)
	}
	for i, e := range j.History {
		if e.Epoch != i+1 {
			t.Fatalf("the resumed job's history: epoch %d at %d: %+v", e.Epoch, i+1, j.History)
		}
	}
	// It resumed: the second server started it from an epoch the first
	// had finished.
	resumed := false
	for line := range strings.SplitSeq(r.logs.String(), "\n") {
		var l struct {
			Msg        string `json:"msg"`
			JobID      string `json:"job_id"`
			EpochsDone int    `json:"epochs_done"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "training started" && l.JobID == long.ID && l.EpochsDone >= 1 {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("the second server did not resume the job after a finished epoch:\n%s", r.logs)
	}
	var hist struct {
		Epochs []struct {
			Epoch int    `json:"epoch"`
			JobID string `json:"job_id"`
		} `json:"epochs"`
	}
	r.call(t, "GET", "/api/networks/"+net.ID+"/history", "", 200, &hist)
	if len(hist.Epochs) != 1+epochs {
		t.Fatalf("the network's history has %d epochs, want %d", len(hist.Epochs), 1+epochs)
	}
	for i, e := range hist.Epochs[1:] {
		if e.Epoch != i+2 || e.JobID != long.ID {
			t.Errorf("the network's epoch %d: %+v", i+2, e)
		}
	}
}
