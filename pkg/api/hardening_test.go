package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/mnist-go/nnserver/pkg/network"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"

	"github.com/mnist-go/nnserver/pkg/api"
	"github.com/mnist-go/nnserver/pkg/dirstore"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(substr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(s.b.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// newLoggedServer is newServerWith, logging JSON lines into the returned
// buffer.
func newLoggedServer(t *testing.T, lim service.Limits, proxies []string) (*server, *syncBuffer) {
	t.Helper()
	st, err := dirstore.Open(t.TempDir(), modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	svc, err := service.New(context.Background(), service.Config{Data: loadMNIST, Store: st, Workers: 1, Logger: log, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	h, err := api.New(api.Options{Service: svc, Logger: log, TrustedProxies: proxies})
	if err != nil {
		t.Fatal(err)
	}
	return &server{h: h, svc: svc, store: st}, logs
}

// TestForwardedForOnlyFromTrustedProxies: the client address in logs comes
// from X-Forwarded-For only when the peer is a configured proxy.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []string
		peer    string
		want    string
	}{
		{"no proxies configured", nil, "203.0.113.9:5555", `"remote":"203.0.113.9"`},
		{"peer is not a proxy", []string{"10.0.0.0/8"}, "203.0.113.9:5555", `"remote":"203.0.113.9"`},
		{"peer is a proxy", []string{"10.0.0.0/8"}, "10.1.2.3:5555", `"remote":"198.51.100.7"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, logs := newLoggedServer(t, service.DefaultLimits(), tc.proxies)
			req := httptest.NewRequest("GET", "/api/status", nil)
			req.RemoteAddr = tc.peer
			req.Header.Set("X-Forwarded-For", "198.51.100.7")
			s.h.ServeHTTP(httptest.NewRecorder(), req)
			if l := logs.lines(`"msg":"http request"`); len(l) != 1 || !strings.Contains(l[0], tc.want) {
				t.Errorf("logged %q, want %s", l, tc.want)
			}
		})
	}
	if _, err := api.New(api.Options{TrustedProxies: []string{"not an address"}}); err == nil {
		t.Error("a malformed proxy address was accepted")
	}
}

// TestLogFloodIsBounded: a flood of refused requests writes a bounded
// number of lines, none at ERROR, and says how many it held back.
func TestLogFloodIsBounded(t *testing.T) {
	lim := service.DefaultLimits()
	lim.MaxQueuedJobs = 1
	lim.MaxNetworks = 3
	s, logs := newLoggedServer(t, lim, nil)
	a, b := s.createNetwork(t), s.createNetwork(t)
	s.do(t, "POST", "/api/networks/"+a+"/train", jsonCT, `{"epochs":1000}`)
	// Wait until the first job runs and the second waits: then the queue
	// is full.
	testutil.Eventually(t, 30*time.Second, "the first job to start", func() bool {
		return s.svc.Gauges(context.Background()).JobsRunning == 1
	})
	if r := s.do(t, "POST", "/api/networks/"+b+"/train", jsonCT, `{"epochs":1}`); r.status != 200 {
		t.Fatalf("second job: %d %s", r.status, r.body)
	}
	start := time.Now()
	const flood = 300
	refused := 0
	for range flood {
		if r := s.do(t, "POST", "/api/networks/"+b+"/train", jsonCT, `{"epochs":1}`); r.status == 503 {
			refused++
		}
	}
	secs := time.Since(start).Seconds()
	if refused != flood {
		t.Fatalf("%d of %d refused", refused, flood)
	}
	lines := logs.lines(`"status":503`)
	if max := 20 * (int(secs) + 2); len(lines) > max || len(lines) == 0 {
		t.Errorf("%d log lines for %d refusals in %.1f s, want 1 to %d", len(lines), flood, secs, max)
	}
	if e := logs.lines(`"level":"ERROR"`); len(e) > 0 {
		t.Errorf("refusals logged at ERROR: %q", e[0])
	}
	// What a line says after a flood, in a new window: TestLogLimiter.
	s.do(t, "DELETE", "/api/networks", "", "")
}

// TestExampleResponse: examples are the contract's JSON, their
// output_weights the network's output layer exactly, shared between
// concurrent requests; a network whose output layer would make examples
// too large is refused when created.
func TestExampleResponse(t *testing.T) {
	s := newServer(t)
	id := s.createNetwork(t)
	var wg sync.WaitGroup
	bodies := make([]string, 20)
	for i := range bodies {
		wg.Go(func() {
			r := s.do(t, "GET", "/api/networks/"+id+"/unsuccessful_example", "", "")
			if r.status != 200 || r.header.Get("Content-Length") == "" {
				t.Errorf("example: %d %v %s", r.status, r.header, r.body[:min(200, len(r.body))])
			}
			bodies[i] = r.body
		})
	}
	wg.Wait()
	var ex struct {
		NetworkID      string      `json:"network_id"`
		ExampleIndex   int         `json:"example_index"`
		PredictedDigit int         `json:"predicted_digit"`
		ActualDigit    int         `json:"actual_digit"`
		ImageData      string      `json:"image_data"`
		OutputWeights  [][]float64 `json:"output_weights"`
		NetworkOutput  []float64   `json:"network_output"`
	}
	dec := json.NewDecoder(strings.NewReader(bodies[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ex); err != nil {
		t.Fatalf("example is not the contract's JSON: %v", err)
	}
	_, net, err := s.store.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	w := net.(*network.Network).Weights(1)
	if len(ex.OutputWeights) != 10 || len(ex.OutputWeights[0]) != 30 {
		t.Fatalf("output_weights %dx%d", len(ex.OutputWeights), len(ex.OutputWeights[0]))
	}
	for r := range 10 {
		for c := range 30 {
			if ex.OutputWeights[r][c] != w.At(r, c) {
				t.Fatalf("output_weights[%d][%d] = %v, the network has %v", r, c, ex.OutputWeights[r][c], w.At(r, c))
			}
		}
	}
	if ex.NetworkID != id || ex.PredictedDigit == ex.ActualDigit || len(ex.NetworkOutput) != 10 {
		t.Errorf("example: %+v", ex)
	}

	r := s.do(t, "POST", "/api/networks", jsonCT, `{"layer_sizes":[784,1,400000,10]}`)
	if r.status != 400 || !strings.Contains(r.body, "feeds the output layer and may have at most 20000 neurons") {
		t.Errorf("a 400,000-neuron layer before the output: %d %s", r.status, r.body)
	}
}

func TestCancelEndpoint(t *testing.T) {
	s := newServer(t)
	id := s.createNetwork(t)
	job := s.do(t, "POST", "/api/networks/"+id+"/train", jsonCT, `{"epochs":1000,"seed":7}`).json(t)["job_id"].(string)
	r := s.do(t, "POST", "/api/training/"+job+"/cancel", "", "")
	if r.status != 200 || r.body != `{"job_id":"`+job+`","network_id":"`+id+`","status":"cancelled"}` {
		t.Errorf("cancel: %d %s", r.status, r.body)
	}
	r = s.do(t, "POST", "/api/training/"+job+"/cancel", "", "")
	if m := r.json(t); r.status != 409 || m["status"] != "cancelled" || m["job_id"] != job || m["error"] == "" {
		t.Errorf("cancel twice: %d %s", r.status, r.body)
	}
	for _, path := range []string{"/api/training/not-a-uuid/cancel", "/api/training/9b2c6f1e-4a7d-4c3e-8f5a-1d2e3f4a5b6c/cancel"} {
		if r := s.do(t, "POST", path, "", ""); r.status != 404 || r.body != `{"error":"Training job not found"}` {
			t.Errorf("cancel %s: %d %s", path, r.status, r.body)
		}
	}
	info := s.do(t, "GET", "/api/training/"+job, "", "").json(t)
	if info["status"] != "cancelled" || info["seed"] != 7.0 || info["cost"] != "quadratic" {
		t.Errorf("job after cancel: %v", info)
	}
}

// TestNewTrainingFields: cost, lambda and seed are validated like every
// other field and nothing changes when they are refused.
func TestNewTrainingFields(t *testing.T) {
	s := newServer(t)
	id := s.createNetwork(t)
	for _, tc := range []struct {
		body, want string
	}{
		{`{"cost":"hinge"}`, `cost must be \"quadratic\", \"cross_entropy\" or (for a softmax output) \"log_likelihood\"`},
		{`{"cost":1}`, `cost must be`},
		{`{"lambda":-1}`, "lambda must be a number between 0 and 1000"},
		{`{"lambda":"5"}`, "lambda must be a number"},
		{`{"lambda":1e400}`, "lambda must be a number"},
		{`{"seed":-1}`, "seed must be an integer between 0 and 9007199254740991"},
		{`{"seed":1.5}`, "seed must be an integer"},
		{`{"seed":9007199254740992}`, "seed must be an integer"},
	} {
		if r := s.do(t, "POST", "/api/networks/"+id+"/train", jsonCT, tc.body); r.status != 400 || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: %d %s, want 400 with %s", tc.body, r.status, r.body, tc.want)
		}
	}
	for _, tc := range []struct {
		body, want string
	}{
		{`{"init":"xavier"}`, `init must be \"normal\" or \"scaled\"`},
		{`{"init":null}`, `init must be`},
		{`{"seed":"3"}`, "seed must be an integer"},
	} {
		if r := s.do(t, "POST", "/api/networks", jsonCT, tc.body); r.status != 400 || !strings.Contains(r.body, tc.want) {
			t.Errorf("create %s: %d %s, want 400 with %s", tc.body, r.status, r.body, tc.want)
		}
	}
	if st := s.svc.Status(context.Background()); st.TrainingJobs != 0 || s.count(t) != 1 {
		t.Errorf("refused requests changed something: %+v", st)
	}
}

func TestElapsedTimeIsRounded(t *testing.T) {
	s := newServer(t)
	id := s.createNetwork(t)
	job := s.do(t, "POST", "/api/networks/"+id+"/train", jsonCT, `{"epochs":1}`).json(t)["job_id"].(string)
	info := s.waitJob(t, job)
	e := info["elapsed_time"].(float64)
	// As JSON writes it: at most 6 digits after the point.
	if text := strconv.FormatFloat(e, 'f', -1, 64); e <= 0 || len(text)-strings.IndexByte(text+".", '.')-1 > 6 {
		t.Errorf("elapsed_time %s is not rounded to microseconds", text)
	}
	h := info["history"].([]any)
	if len(h) != 1 || h[0].(map[string]any)["elapsed_time"] != e {
		t.Errorf("history %v", h)
	}
}

// TestPlainJSON: answers are plain JSON, not HTML-escaped (& stays &).
func TestPlainJSON(t *testing.T) {
	s := newServer(t)
	r := s.do(t, "GET", "/api/a&b<c>", "", "")
	if r.status != 404 || !strings.Contains(r.body, `/api/a&b<c>`) || strings.Contains(r.body, `\u0026`) {
		t.Errorf("%d %s, want the path as it was sent", r.status, r.body)
	}
}
