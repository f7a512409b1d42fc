package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/service"
)

// childEnv carries the work of TestKill9Child, run by TestResumeAfterKill9
// in a process of its own.
const childEnv = "NNSERVER_SQLITE_KILL9_CHILD"

// childSpec is what the child process does.
type childSpec struct {
	Path  string
	Jobs  []service.JobInfo // added in order; the first runs, on one worker
	Epoch service.EpochResult
}

// The process is killed (SIGKILL) while a job trains, after one of its
// epochs was recorded: the file is left with its WAL not checkpointed, as
// kill -9 leaves it. The next process resumes the job with its epoch and
// history, and runs the pending jobs after it, in order.
func TestResumeAfterKill9(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in the child")
	}
	ctx := context.Background()
	netA, netB := uuid.NewString(), uuid.NewString()
	spec := childSpec{
		Path:  dbPath(t),
		Jobs:  []service.JobInfo{job(netA, 3), job(netB, 1), job(netA, 1)},
		Epoch: service.EpochResult{Epoch: 1, Correct: 9001, Total: 10000, Accuracy: 0.9001, ElapsedTime: 3.5},
	}
	a1, b1, a2 := spec.Jobs[0], spec.Jobs[1], spec.Jobs[2]
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe() // kept open: the child waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- nil
				io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- fmt.Errorf("the child's output ended without READY (%v)", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			cmd.Wait()
			t.Fatalf("%v; its stderr:\n%s", err, stderr.String())
		}
	case <-time.After(waitLimit):
		t.Fatalf("the child did not get ready; its stderr:\n%s", stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	// What kill -9 leaves: the transactions in the WAL, not yet in the
	// database file.
	if fi, err := os.Stat(spec.Path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the killed process left no WAL: %v, %v", fi, err)
	}

	db := openDB(t, spec.Path)
	q := newQueue(t, db, 1, service.Limits{}, nil)
	w := newWorker(q)
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	got := w.nextIs(t, a1)
	if got.Status != service.StatusTraining || got.Epoch != 1 || len(got.History) != 1 || got.History[0] != spec.Epoch ||
		got.ElapsedTime != spec.Epoch.ElapsedTime || got.StartedAt.IsZero() || *got.Params.Seed != *a1.Params.Seed {
		t.Errorf("the job resumed after kill -9: %+v", got)
	}
	w.complete(a1.ID)
	for _, j := range []service.JobInfo{b1, a2} {
		if got := w.nextIs(t, j); got.Status != service.StatusTraining || got.Epoch != 0 {
			t.Errorf("pending job after kill -9: %+v", got)
		}
		w.complete(j.ID)
	}
	waitStatus(t, q, a2.ID, service.StatusCompleted)
	if j := mustGet(t, q, a1.ID); j.Status != service.StatusCompleted || len(j.History) != 2 {
		t.Errorf("the resumed job: %+v", j)
	}
	if act, _ := q.Active(ctx); act.Running != 0 || act.Queued != 0 {
		t.Errorf("Active: %+v", act)
	}
}

// TestKill9Child is the process TestResumeAfterKill9 kills: it adds the
// jobs, starts the first, records its epoch, says READY, and waits to be
// killed.
func TestKill9Child(t *testing.T) {
	js := os.Getenv(childEnv)
	if js == "" {
		t.Skip("run by TestResumeAfterKill9")
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		t.Fatal(err)
	}
	db, err := Open(t.Context(), spec.Path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	q := db.Queue(1, service.DefaultLimits(), nil)
	mustAdd(t, q, spec.Jobs...)
	w := newWorker(q)
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	w.nextIs(t, spec.Jobs[0])
	if err := q.Epoch(context.Background(), spec.Jobs[0].ID, spec.Epoch); err != nil {
		t.Fatal(err)
	}
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin) // until killed
	t.Fatal("the child was not killed")
}
