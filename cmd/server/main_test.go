package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/dirstore"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
)

// lockedBuffer collects the server's log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStartsPastAFIFOAndStops: a FIFO named like a saved network in the
// models directory (which once hung start-up forever) is skipped with a
// warning; the real network beside it is listed; cancelling the context,
// as SIGTERM does, stops the server cleanly.
func TestStartsPastAFIFOAndStops(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, uuid.NewString()+".npz"), 0o644); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	st, err := dirstore.Open(dir, modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	good := uuid.NewString()
	net, err := network.New([]int{784, 5, 10}, network.InitNormal, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.Save(context.Background(), modelfile.Meta{ID: good, Sizes: []int{784, 5, 10}, Init: "normal", CreatedAt: now, UpdatedAt: now}, net); err != nil {
		t.Fatal(err)
	}

	port := testutil.FreePort(t)
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--port", fmt.Sprint(port), "--models-dir", dir, "--metrics", "off"}, func(string) string { return "" }, logs)
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/api/networks", port)
	var body string
	if !testutil.Poll(30*time.Second, 10*time.Millisecond, func() bool {
		if resp, err := http.Get(url); err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			body = b.String()
			return true
		}
		select {
		case err := <-done:
			t.Fatalf("the server stopped: %v\n%s", err, logs)
		default:
		}
		return false
	}) {
		t.Fatalf("the server did not answer within 30 s\n%s", logs)
	}
	if strings.Count(body, `"network_id"`) != 1 || !strings.Contains(body, good) {
		t.Errorf("listed %s, want only %s", body, good)
	}
	if !strings.Contains(logs.String(), "not a regular file") && !strings.Contains(logs.String(), "skipping") {
		t.Errorf("the FIFO was not reported:\n%s", logs)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after the signal: %v", err)
		}
	case <-time.After(20 * time.Second): // a guard against a hang
		t.Fatal("the server did not stop within 20 s of the signal")
	}
}

// TestSignalDuringStartUp: a signal that comes before the server is up
// stops it at once, as a clean stop.
func TestSignalDuringStartUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := run(ctx, []string{"--port", fmt.Sprint(testutil.FreePort(t)), "--models-dir", t.TempDir()}, func(string) string { return "" }, &lockedBuffer{})
	if err != nil {
		t.Errorf("run with the signal already given: %v", err)
	}
}
