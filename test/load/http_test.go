// Package load holds the load and fault tests: the real server binary on
// loopback, many HTTP and Socket.IO clients, bounded in count and time.
//
// The regular test run (go test ./...) runs a short version of each; the
// full runs whose figures are in docs/LOAD.md are
//
//	go test ./test/load -run TestHTTPLoad -v -args -full
//	go test ./test/load -run TestSocketLoad -v -args -full
//	go test ./test/load -run TestFaults -v
//	go test ./test/load -run TestSocketLoad -v -args -e2e30
//	go test ./test/load -run TestAllAttacksAtOnce -v   (60 s; LOAD_ATTACK_SECONDS, LOAD_ATTACKS)
//
// Figures are logged, not asserted: the machines are small and shared. What
// is asserted is that nothing fails.
package load

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/test/internal/testenv"
)

var (
	full = flag.Bool("full", false, "run the full-size load tests (200 HTTP clients, 1000 Socket.IO clients)")
	e2e  = flag.Bool("e2e30", false, "TestSocketLoad with one client and a 30-epoch job: the end-to-end time")
)

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// TestHTTPLoad runs concurrent clients on status, list and examples while
// two jobs train: every request must succeed.
func TestHTTPLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	testenv.Serial(t)
	clients, duration := 20, 3*time.Second
	if *full {
		clients, duration = 200, 20*time.Second
	}
	s := startServer(t)
	ex, _ := s.createAndTrain(t, 1) // a trained network to ask for examples
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, first := s.createAndTrain(t, 1)
	s.waitJob(t, ctx, first)
	// Two long jobs train throughout the load.
	training, jobA := s.createAndTrain(t, 200)
	_, jobB := s.createAndTrain(t, 200)

	// One client alone on /api/status: the latency a user sees while the
	// cores are busy training.
	probe := duration
	var alone []time.Duration
	for stop := time.Now().Add(probe); time.Now().Before(stop); {
		start := time.Now()
		resp, err := http.Get(s.URL + "/api/status")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("status while training: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		alone = append(alone, time.Since(start))
		time.Sleep(5 * time.Millisecond)
	}
	slices.Sort(alone)
	t.Logf("one client, /api/status while 2 jobs train: %d requests  p50 %.2f ms  p99 %.2f ms  max %.2f ms",
		len(alone), ms(percentile(alone, 0.5)), ms(percentile(alone, 0.99)), ms(alone[len(alone)-1]))

	// Examples of an idle network (predictions cached) and of a training
	// one (a new snapshot every epoch, so predictions are recomputed).
	paths := []string{
		"/api/status",
		"/api/networks",
		"/api/networks/" + ex + "/successful_example",
		"/api/networks/" + training + "/unsuccessful_example",
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var mu sync.Mutex
	lat := map[string][]time.Duration{}
	var failures []string
	stop := time.Now().Add(duration)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := c; time.Now().Before(stop); i++ {
				p := paths[i%len(paths)]
				start := time.Now()
				resp, err := hc.Get(s.URL + p)
				var status int
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				d := time.Since(start)
				mu.Lock()
				if err != nil || status != 200 {
					failures = append(failures, fmt.Sprintf("GET %s: %d %v", p, status, err))
				}
				key := p
				if i%len(paths) >= 2 {
					key = "examples"
				}
				lat[key] = append(lat[key], d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	if len(failures) > 0 {
		t.Errorf("%d failed requests, first: %s", len(failures), failures[0])
	}
	total := 0
	for _, key := range []string{"/api/status", "/api/networks", "examples"} {
		d := lat[key]
		slices.Sort(d)
		total += len(d)
		t.Logf("%-14s %6d requests  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms", key, len(d),
			ms(percentile(d, 0.5)), ms(percentile(d, 0.99)), ms(d[len(d)-1]))
	}
	t.Logf("%d clients for %v while 2 jobs trained: %d requests, %.0f/s, server RSS %.0f MB",
		clients, duration, total, float64(total)/duration.Seconds(), s.rssMB(t))
	// The load did not disturb the jobs.
	for _, job := range []string{jobA, jobB} {
		resp, err := hc.Get(s.URL + "/api/training/" + job)
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			Status string `json:"status"`
			Epoch  int    `json:"epoch"`
		}
		json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		if info.Status != "training" || info.Epoch < 1 {
			t.Errorf("job %s after the load: %+v, want still training with epochs done", job, info)
		}
	}
	if errs := s.errorLogs(); len(errs) > 0 {
		t.Errorf("server logged errors: %v", errs)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
