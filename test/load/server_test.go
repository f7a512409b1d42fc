package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/test/internal/testenv"
)

// server is the real server binary, running on loopback.
type server struct {
	URL      string
	DebugURL string
	cmd      *exec.Cmd
	mu       sync.Mutex
	logs     []map[string]any
	// mnist is closed when the server logs that MNIST is loaded: it loads
	// in the background after the server starts listening.
	mnist     chan struct{}
	mnistOnce sync.Once
}

func startServer(t *testing.T, env ...string) *server {
	t.Helper()
	bin := testenv.ServerBinary(t)
	port, debugPort := testenv.FreePort(t), testenv.FreePort(t)
	s := &server{
		URL:      fmt.Sprintf("http://127.0.0.1:%d", port),
		DebugURL: fmt.Sprintf("http://127.0.0.1:%d", debugPort),
		mnist:    make(chan struct{}),
	}
	s.cmd = exec.Command(bin)
	s.cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "MODELS_DIR="+t.TempDir(),
		fmt.Sprintf("DEBUG_ADDR=127.0.0.1:%d", debugPort), "LOG_LEVEL=debug")
	s.cmd.Env = append(s.cmd.Env, env...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go s.collect(stderr)
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			t.Error("server did not stop within 10 s of SIGTERM")
		}
	})
	for _, u := range []string{s.URL + "/api/status", s.DebugURL + "/debug/pprof/"} {
		var err error
		if !testutil.Poll(15*time.Second, 20*time.Millisecond, func() bool {
			var resp *http.Response
			if resp, err = http.Get(u); err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		}) {
			t.Fatalf("server not ready: %v", err)
		}
	}
	return s
}

// collect keeps the server's JSON log lines that matter to the tests.
func (s *server) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if m["msg"] == "MNIST loaded" {
			s.mnistOnce.Do(func() { close(s.mnist) })
		}
		if m["level"] == "ERROR" || m["level"] == "WARN" || m["msg"] == "event sent" {
			s.mu.Lock()
			s.logs = append(s.logs, m)
			s.mu.Unlock()
		}
	}
}

// waitMNIST waits until the server has loaded MNIST.
func (s *server) waitMNIST(t *testing.T) {
	t.Helper()
	select {
	case <-s.mnist:
	case <-time.After(60 * time.Second): // a guard against a hang, not a wait
		t.Fatal("the server did not log \"MNIST loaded\" within 60 s")
	}
}

// errorLogs returns the server's ERROR log lines so far.
func (s *server) errorLogs() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, m := range s.logs {
		if m["level"] == "ERROR" {
			out = append(out, m)
		}
	}
	return out
}

// emitTimes returns when the server emitted each event of a job, keyed
// "training_update/1", "training_complete".
func (s *server) emitTimes(job string) map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]time.Time{}
	for _, m := range s.logs {
		p, _ := m["payload"].(map[string]any)
		if m["msg"] != "event sent" || p["job_id"] != job {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m["emitted_at"].(string))
		if err != nil {
			continue
		}
		key := m["event"].(string)
		if e, ok := p["epoch"].(float64); ok {
			key += "/" + strconv.Itoa(int(e))
		}
		out[key] = at
	}
	return out
}

// rssMB reads the server's resident set size.
func (s *server) rssMB(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// heapMB reads the server's live heap after a garbage collection.
func (s *server) heapMB(t *testing.T) float64 {
	t.Helper()
	resp, err := http.Get(s.DebugURL + "/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			n, _ := strconv.Atoi(v)
			return float64(n) / (1 << 20)
		}
	}
	t.Fatal("no HeapAlloc in the heap profile")
	return 0
}

// goroutines reads the server's goroutine count from pprof.
func (s *server) goroutines(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(s.DebugURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total ")))
	if err != nil {
		t.Fatalf("pprof said %q", line)
	}
	return n
}

func (s *server) postJSON(t *testing.T, path, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(s.URL+path, "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %v %v", path, resp.StatusCode, m, err)
	}
	return m
}

func (s *server) createAndTrain(t *testing.T, epochs int) (network, job string) {
	t.Helper()
	network = s.postJSON(t, "/api/networks", `{"layer_sizes":[784,30,10]}`)["network_id"].(string)
	job = s.postJSON(t, "/api/networks/"+network+"/train", fmt.Sprintf(`{"epochs":%d}`, epochs))["job_id"].(string)
	return network, job
}

func (s *server) waitJob(t *testing.T, ctx context.Context, job string) map[string]any {
	t.Helper()
	for {
		resp, err := http.Get(s.URL + "/api/training/" + job)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if m["status"] == "completed" || m["status"] == "failed" {
			return m
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s still %v", job, m["status"])
		case <-time.After(50 * time.Millisecond):
		}
	}
}
