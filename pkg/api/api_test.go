package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/api"
	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/dirstore"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

var loadMNIST = testutil.MNIST // loaded once for every test of the package

type server struct {
	h     http.Handler
	svc   *service.Service
	store *dirstore.Store
}

func newServer(t *testing.T) *server { return newServerWith(t, service.DefaultLimits()) }

func newServerWith(t *testing.T, lim service.Limits) *server { return newServerBudget(t, lim, nil) }

// newServerBudget is a server whose requests reserve from b (nil: no bound).
func newServerBudget(t *testing.T, lim service.Limits, b *budget.Budget) *server {
	t.Helper()
	st, err := dirstore.Open(t.TempDir(), modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := service.New(context.Background(), service.Config{Data: loadMNIST, Store: st, Workers: 1, Logger: log, Limits: lim, Budget: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Close(ctx)
	})
	static := fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>MNIST</title>")}}
	h, err := api.New(api.Options{Service: svc, Static: static, Logger: log, Budget: b})
	if err != nil {
		t.Fatal(err)
	}
	return &server{h: h, svc: svc, store: st}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (s *server) do(t *testing.T, method, path, contentType, body string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, req)
	return response{w.Code, w.Header(), w.Body.String()}
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func (s *server) createNetwork(t *testing.T) string {
	t.Helper()
	r := s.do(t, "POST", "/api/networks", "application/json", `{"layer_sizes":[784,30,10],"seed":1}`) // seeded: tests that train it get the same network every run
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	return r.json(t)["network_id"].(string)
}

const jsonCT = "application/json"

func TestCreateNetwork(t *testing.T) {
	s := newServer(t)
	tests := []struct {
		name, ct, body string
		status         int
		want           string // in the body
	}{
		{"no body means defaults", "", "", 200, `"architecture":[784,30,10]`},
		{"empty object means defaults", jsonCT, `{}`, 200, `"architecture":[784,30,10]`},
		{"given layers", jsonCT, `{"layer_sizes":[784,100,10]}`, 200, `"architecture":[784,100,10]`},
		{"whole floats accepted", jsonCT, `{"layer_sizes":[784,30.0,10]}`, 200, `"architecture":[784,30,10]`},
		{"charset allowed", "application/json; charset=utf-8", `{"layer_sizes":[784,10]}`, 200, `"status":"created"`},
		{"unknown fields ignored", jsonCT, `{"layer_sizes":[784,10],"colour":"x"}`, 200, `"status":"created"`},
		{"not JSON", jsonCT, `not json`, 400, "not valid JSON"},
		{"truncated JSON", jsonCT, `{"layer_sizes":[784,`, 400, "not valid JSON"},
		{"trailing garbage", jsonCT, `{"layer_sizes":[784,30,10]} x`, 400, "data after the JSON value"},
		{"two objects", jsonCT, `{} {}`, 400, "data after the JSON value"},
		{"array body", jsonCT, `[784,30,10]`, 400, "must be a JSON object"},
		{"string body", jsonCT, `"hello"`, 400, "must be a JSON object"},
		{"null body", jsonCT, `null`, 400, "must be a JSON object"},
		{"layers not a list", jsonCT, `{"layer_sizes":"784,30,10"}`, 400, "layer_sizes must be a list of integers"},
		{"layers null", jsonCT, `{"layer_sizes":null}`, 400, "layer_sizes must be a list of integers"},
		{"layers empty", jsonCT, `{"layer_sizes":[]}`, 400, "at least 2 layers"},
		{"one layer", jsonCT, `{"layer_sizes":[784]}`, 400, "at least 2 layers"},
		{"fraction", jsonCT, `{"layer_sizes":[784,30.5,10]}`, 400, "layer_sizes must be a list of integers"},
		{"string element", jsonCT, `{"layer_sizes":[784,"30",10]}`, 400, "layer_sizes must be a list of integers"},
		{"null element", jsonCT, `{"layer_sizes":[784,null,10]}`, 400, "layer_sizes must be a list of integers"},
		{"nested list", jsonCT, `{"layer_sizes":[784,[30],10]}`, 400, "layer_sizes must be a list of integers"},
		{"zero", jsonCT, `{"layer_sizes":[784,0,10]}`, 400, "layer_sizes[1] must be an integer between 1 and"},
		{"negative", jsonCT, `{"layer_sizes":[784,-30,10]}`, 400, "layer_sizes[1] must be an integer between 1 and"},
		{"huge", jsonCT, `{"layer_sizes":[784,1e300,10]}`, 400, "layer_sizes[1] must be an integer between 1 and"},
		{"beyond float64", jsonCT, `{"layer_sizes":[784,1e400,10]}`, 400, "layer_sizes must be a list of integers"},
		{"first not 784", jsonCT, `{"layer_sizes":[100,30,10]}`, 400, "must start with 784"},
		{"last not 10", jsonCT, `{"layer_sizes":[784,30,9]}`, 400, "must end with 10"},
		{"too many weights", jsonCT, `{"layer_sizes":[784,7000,10]}`, 400, "more than 5000000 weights and biases"},
		{"too many layers", jsonCT, `{"layer_sizes":[784,5,5,5,5,5,5,5,5,5,5,10]}`, 400, "at most 10 layers"},
		{"wrong content type", "text/plain", `{"layer_sizes":[784,30,10]}`, 415, "Content-Type must be application/json"},
		{"form content type", "application/x-www-form-urlencoded", `layer_sizes=784`, 415, "Content-Type must be application/json"},
		{"too large", jsonCT, `{"layer_sizes":[784,30,10],"pad":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := s.count(t)
			r := s.do(t, "POST", "/api/networks", tc.ct, tc.body)
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Fatalf("got %d %s, want %d with %q", r.status, r.body, tc.status, tc.want)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			m := r.json(t)
			after := s.count(t)
			if tc.status != 200 {
				if len(m) != 1 || m["error"] == "" || after != before {
					t.Errorf("error body %v; networks %d → %d", m, before, after)
				}
				return
			}
			id, _ := m["network_id"].(string)
			if u, err := uuid.Parse(id); err != nil || u.String() != id || u.Version() != 4 || m["status"] != "created" || after != before+1 {
				t.Errorf("body %v; networks %d → %d", m, before, after)
			}
		})
	}
}

func TestTrainValidation(t *testing.T) {
	s := newServer(t)
	id := s.createNetwork(t)
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"epochs zero", `{"epochs":0}`, 400, "epochs must be an integer between 1 and 1000"},
		{"epochs negative", `{"epochs":-3}`, 400, "epochs must be an integer between 1 and 1000"},
		{"epochs too many", `{"epochs":1001}`, 400, "epochs must be an integer between 1 and 1000"},
		{"epochs fraction", `{"epochs":2.5}`, 400, "epochs must be an integer between 1 and 1000"},
		{"epochs string", `{"epochs":"5"}`, 400, "epochs must be an integer between 1 and 1000"},
		{"epochs null", `{"epochs":null}`, 400, "epochs must be an integer between 1 and 1000"},
		{"epochs huge", `{"epochs":1e300}`, 400, "epochs must be an integer between 1 and 1000"},
		{"epochs bool", `{"epochs":true}`, 400, "epochs must be an integer between 1 and 1000"},
		{"batch zero", `{"mini_batch_size":0}`, 400, "mini_batch_size must be an integer between 1 and 50000"},
		{"batch too big", `{"mini_batch_size":50001}`, 400, "mini_batch_size must be an integer between 1 and 50000"},
		{"batch list", `{"mini_batch_size":[10]}`, 400, "mini_batch_size must be an integer"},
		{"eta zero", `{"learning_rate":0}`, 400, "learning_rate must be a number greater than 0 and at most 1000"},
		{"eta negative", `{"learning_rate":-1}`, 400, "learning_rate must be a number greater than 0"},
		{"eta NaN string", `{"learning_rate":"NaN"}`, 400, "learning_rate must be a number"},
		{"eta Infinity", `{"learning_rate":Infinity}`, 400, "not valid JSON"},
		{"eta 1e300", `{"learning_rate":1e300}`, 400, "learning_rate must be a number greater than 0 and at most 1000"},
		{"eta 1e400", `{"learning_rate":1e400}`, 400, "learning_rate must be a number greater than 0 and at most 1000"},
		{"eta -1e400", `{"learning_rate":-1e400}`, 400, "learning_rate must be a number greater than 0"},
		{"not an object", `[1]`, 400, "must be a JSON object"},
		{"whole float epochs accepted", `{"epochs":1.0,"mini_batch_size":10.0,"learning_rate":3}`, 200, `"status":"training_started"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "POST", "/api/networks/"+id+"/train", jsonCT, tc.body)
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Fatalf("got %d %s, want %d with %q", r.status, r.body, tc.status, tc.want)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	s := newServer(t)
	unknown := uuid.NewString()
	tests := []struct {
		method, path string
		status       int
		want         string
	}{
		{"POST", "/api/networks/" + unknown + "/train", 404, `{"error":"Network not found"}`},
		{"POST", "/api/networks/not-a-uuid/train", 404, `{"error":"Network not found"}`},
		{"GET", "/api/networks/" + unknown + "/successful_example", 404, `{"error":"Network not found"}`},
		{"GET", "/api/networks/" + unknown + "/unsuccessful_example", 404, `{"error":"Network not found"}`},
		{"GET", "/api/networks/..%2F..%2Fetc%2Fpasswd/successful_example", 404, `{"error":"`},
		{"DELETE", "/api/networks/" + unknown, 404, `{"error":"Network not found"}`},
		{"DELETE", "/api/networks/" + strings.ToUpper(unknown), 404, `{"error":"Network not found"}`},
		{"DELETE", "/api/networks/..%2F..%2Fgo.mod", 404, `{"error":"`},
		{"DELETE", "/api/networks/..", 404, `{"error":"Network not found"}`},
		{"GET", "/api/training/" + unknown, 404, `{"error":"Training job not found"}`},
		{"GET", "/api/training/x", 404, `{"error":"Training job not found"}`},
		{"GET", "/api/nope", 404, `"error":"Not found: GET /api/nope"`},
		{"GET", "/api/" + strings.Repeat("a", 5000), 404, `"error":"Not found: GET /api/aaaa`},
		{"POST", "/nope", 404, `"error"`},
		{"PUT", "/api/status", 405, `"error":"Method PUT not allowed on /api/status"`},
		{"GET", "/does-not-exist.js", 404, `{"error":"Not found: GET /does-not-exist.js"}`},
		{"GET", "/vendor/", 404, `{"error":"Not found: GET /vendor/"}`},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path[:min(len(tc.path), 60)], func(t *testing.T) {
			r := s.do(t, tc.method, tc.path, "", "")
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Fatalf("got %d %s, want %d with %s", r.status, r.body, tc.status, tc.want)
			}
			if len(r.body) > 400 {
				t.Errorf("error body is %d bytes long", len(r.body))
			}
		})
	}
}

// TestLifecycle walks one network through every endpoint.
func TestLifecycle(t *testing.T) {
	s := newServer(t)
	r := s.do(t, "GET", "/api/status", "", "")
	if r.status != 200 || r.body != `{"status":"online","active_networks":0,"training_jobs":0}` {
		t.Fatalf("status: %d %s", r.status, r.body)
	}
	id := s.createNetwork(t)

	r = s.do(t, "POST", "/api/networks/"+id+"/train", jsonCT, `{"epochs":1,"seed":2}`)
	if r.status != 200 {
		t.Fatalf("train: %d %s", r.status, r.body)
	}
	m := r.json(t)
	job := m["job_id"].(string)
	if m["network_id"] != id || m["status"] != "training_started" || uuid.Validate(job) != nil {
		t.Fatalf("train: %v", m)
	}
	info := s.waitJob(t, job)
	if info["status"] != "completed" || info["progress"] != 100.0 || info["epochs"] != 1.0 || info["network_id"] != id {
		t.Fatalf("job: %v", info)
	}
	if acc, ok := info["accuracy"].(float64); !ok || acc < 0.5 || acc > 1 {
		t.Errorf("job accuracy %v", info["accuracy"])
	}
	if _, has := info["error"]; has {
		t.Errorf("completed job has an error: %v", info)
	}

	var list struct {
		Networks []map[string]any `json:"networks"`
	}
	r = s.do(t, "GET", "/api/networks", "", "")
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list.Networks) != 1 {
		t.Fatalf("list: %s", r.body)
	}
	n := list.Networks[0]
	if n["network_id"] != id || n["trained"] != true || n["status"] != "in_memory" || n["accuracy"] != info["accuracy"] {
		t.Errorf("listed: %v", n)
	}

	for _, kind := range []string{"successful", "unsuccessful"} {
		r = s.do(t, "GET", "/api/networks/"+id+"/"+kind+"_example", "", "")
		if r.status != 200 {
			t.Fatalf("%s example: %d %s", kind, r.status, r.body)
		}
		ex := r.json(t)
		pred, actual := ex["predicted_digit"].(float64), ex["actual_digit"].(float64)
		if (pred == actual) != (kind == "successful") {
			t.Errorf("%s example predicted %v, actual %v", kind, pred, actual)
		}
		if out, _ := ex["network_output"].([]any); len(out) != 10 {
			t.Errorf("network_output %v", ex["network_output"])
		}
		if w, _ := ex["output_weights"].([]any); len(w) != 10 || len(w[0].([]any)) != 30 {
			t.Errorf("output_weights has %d rows", len(w))
		}
		img, _ := ex["image_data"].(string)
		if !strings.HasPrefix(img, "iVBORw0KGgo") { // base64 of the PNG signature
			t.Errorf("image_data starts %q", img[:min(20, len(img))])
		}
	}

	r = s.do(t, "DELETE", "/api/networks/"+id, "", "")
	if r.status != 200 || r.body != `{"network_id":"`+id+`","deleted_from_memory":true,"deleted_from_disk":true}` {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	s.createNetwork(t)
	s.createNetwork(t)
	r = s.do(t, "DELETE", "/api/networks", "", "")
	if r.status != 200 || r.body != `{"deleted_count":2,"deleted_from_memory":2,"deleted_from_disk":2,"message":"Successfully deleted 2 network(s)"}` {
		t.Errorf("delete all: %d %s", r.status, r.body)
	}
}

func TestCORSAndStatic(t *testing.T) {
	s := newServer(t)
	req := httptest.NewRequest("OPTIONS", "/api/networks", nil)
	req.Header.Set("Origin", "http://app.example.org")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, req)
	if w.Code/100 != 2 || w.Header().Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(strings.ToLower(w.Header().Get("Access-Control-Allow-Headers")), "content-type") {
		t.Errorf("preflight: %d %v", w.Code, w.Header())
	}
	req = httptest.NewRequest("GET", "/api/status", nil)
	req.Header.Set("Origin", "http://app.example.org")
	w = httptest.NewRecorder()
	s.h.ServeHTTP(w, req)
	if w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("GET with Origin: %v", w.Header())
	}
	r := s.do(t, "GET", "/", "", "")
	if r.status != 200 || !strings.Contains(r.body, "<title>MNIST</title>") {
		t.Errorf("GET /: %d %s", r.status, r.body)
	}
	// HEAD answers like GET, without a body (net/http drops it on a real
	// connection; the recorder keeps it, so only the status is checked).
	if r := s.do(t, "HEAD", "/api/status", "", ""); r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("HEAD /api/status: %d %v", r.status, r.header)
	}
}

func TestLimitsAnswers(t *testing.T) {
	lim := service.DefaultLimits()
	lim.MaxNetworks, lim.MaxQueuedJobs = 2, 1
	s := newServerWith(t, lim)
	a := s.createNetwork(t)
	b := s.createNetwork(t)
	r := s.do(t, "POST", "/api/networks", "", "")
	if r.status != 409 || !strings.Contains(r.body, "there are already 2 networks") {
		t.Errorf("third network: %d %s", r.status, r.body)
	}
	// One job runs, one waits; the next finds the queue full.
	r = s.do(t, "POST", "/api/networks/"+a+"/train", jsonCT, `{"epochs":100}`)
	if r.status != 200 {
		t.Fatalf("train: %d %s", r.status, r.body)
	}
	job := r.json(t)["job_id"].(string)
	testutil.Eventually(t, 30*time.Second, "the first job to start", func() bool {
		info, _ := s.svc.Job(context.Background(), job)
		return info.Status == service.StatusTraining
	})
	if r := s.do(t, "POST", "/api/networks/"+b+"/train", jsonCT, `{"epochs":1}`); r.status != 200 {
		t.Fatalf("train: %d %s", r.status, r.body)
	}
	r2 := s.do(t, "POST", "/api/networks/"+a+"/train", jsonCT, `{"epochs":1}`)
	if r2.status != 503 || r2.header.Get("Retry-After") == "" || !strings.Contains(r2.body, "too many training jobs") {
		t.Errorf("queue full: %d %v %s", r2.status, r2.header, r2.body)
	}
	if r := s.do(t, "DELETE", "/api/networks", "", ""); r.status != 200 {
		t.Errorf("delete all: %d %s", r.status, r.body)
	}
}

// count returns how many networks the service lists.
func (s *server) count(t *testing.T) int {
	t.Helper()
	l, err := s.svc.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

// TestWorker: a worker replica answers its status (saying it is a worker),
// its readiness, and a JSON 404 naming where everything else goes.
func TestWorker(t *testing.T) {
	s := newServer(t)
	h, err := api.NewWorker(api.Options{Service: s.svc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	w := &server{h: h, svc: s.svc}
	if r := w.do(t, "GET", "/api/status", "", ""); r.status != 200 || r.json(t)["role"] != "worker" || r.json(t)["status"] != "online" {
		t.Errorf("status: %d %s", r.status, r.body)
	}
	if r := w.do(t, "HEAD", "/api/status", "", ""); r.status != 200 { // net/http drops the body
		t.Errorf("HEAD status: %d %q", r.status, r.body)
	}
	if r := w.do(t, "GET", "/api/ready", "", ""); r.status != 200 || r.json(t)["ready"] != true {
		t.Errorf("ready: %d %s", r.status, r.body)
	}
	if r := w.do(t, "POST", "/api/networks", jsonCT, "{}"); r.status != 404 || !strings.Contains(r.json(t)["error"].(string), "ROLE=worker") {
		t.Errorf("create on a worker: %d %s", r.status, r.body)
	}
}
