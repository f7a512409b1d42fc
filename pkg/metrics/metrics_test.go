package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mnist-go/nnserver/pkg/api"
	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/dirstore"
	"github.com/mnist-go/nnserver/pkg/metrics"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

var loadMNIST = testutil.MNIST // loaded once for every test of the package

// events records the end of jobs, so the test waits for them.
type events struct {
	service.NopEvents
	ended chan string
}

func (e events) TrainingComplete(c service.Complete) { e.ended <- c.JobID }
func (e events) TrainingError(f service.Failure)     { e.ended <- f.JobID }

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", w.Code, w.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(w.Body)
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels
// include want, or -1.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func TestCountersMoveAfterAJob(t *testing.T) {
	st, err := dirstore.Open(t.TempDir(), modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var svc *service.Service
	mem := budget.New(64<<20, 0)
	m := metrics.New(metrics.Sources{
		Service:       func() service.Gauges { return svc.Gauges(context.Background()) },
		SocketClients: func() int { return 3 },
		EventsEmitted: func() uint64 { return 42 },
		Budget:        mem.Stats,
	})
	ev := events{ended: make(chan string, 10)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err = service.New(context.Background(), service.Config{Data: loadMNIST, Store: st, Events: ev, Workers: 1, Logger: log, Observer: m,
		Budget: mem})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	h, err := api.New(api.Options{Service: svc, Logger: log, Metrics: m.Handler(), Requests: m, Budget: mem})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(w, r)
		return w
	}

	before := scrape(t, h)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "nnserver_networks_loaded",
		"nnserver_jobs_queued", "nnserver_jobs_running", "nnserver_socketio_clients", "nnserver_socketio_events_emitted_total"} {
		if value(before, name, nil) < 0 {
			t.Errorf("%s is missing", name)
		}
	}
	if value(before, "nnserver_socketio_clients", nil) != 3 || value(before, "nnserver_socketio_events_emitted_total", nil) != 42 {
		t.Error("the Socket.IO metrics do not read their sources")
	}
	if value(before, "nnserver_memory_budget_bytes", nil) != 64<<20 || value(before, "nnserver_memory_budget_used_bytes", nil) != 0 {
		t.Error("the memory budget's metrics do not read it")
	}

	w := do("POST", "/api/networks", `{"seed":1}`)
	id := strings.Split(strings.Split(w.Body.String(), `"network_id":"`)[1], `"`)[0]
	do("POST", "/api/networks/"+id+"/train", `{"epochs":2,"seed":1}`)
	select {
	case <-ev.ended:
	case <-time.After(60 * time.Second): // a guard against a hang
		t.Fatal("the job did not end")
	}
	do("PUT", "/api/networks/"+id+"/train", "")   // 405
	do("BREW", "/api/whatever/"+id, "")           // unmatched, odd method
	do("GET", "/api/networks/"+id+"/nope"+id, "") // 404

	after := scrape(t, h)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"nnserver_jobs_finished_total", map[string]string{"status": "completed"}, 1},
		{"nnserver_epochs_trained_total", nil, 2},
		{"nnserver_epoch_duration_seconds", nil, 2},
		{"nnserver_job_duration_seconds", nil, 1},
		{"nnserver_networks_loaded", nil, 1},
		{"nnserver_jobs_running", nil, 0},
		{"nnserver_model_save_failures_total", nil, 0},
		{"nnserver_http_requests_total", map[string]string{"method": "POST", "route": "/api/networks/:id/train", "code": "2xx"}, 1},
		{"nnserver_http_requests_total", map[string]string{"method": "POST", "route": "/api/networks", "code": "2xx"}, 1},
		{"nnserver_http_requests_total", map[string]string{"method": "other", "route": "unmatched", "code": "4xx"}, 1},
		{"nnserver_http_requests_total", map[string]string{"method": "PUT", "route": "unmatched", "code": "4xx"}, 1},
		{"nnserver_http_requests_total", map[string]string{"method": "GET", "route": "unmatched", "code": "4xx"}, 1},
		{"nnserver_http_requests_total", map[string]string{"method": "GET", "route": "/metrics", "code": "2xx"}, 1},
		{"nnserver_http_request_duration_seconds", map[string]string{"method": "POST", "route": "/api/networks"}, 1},
		// The job gave its reservation back; the network in memory holds its
		// share (the epochs it trained since it was loaded are not counted).
		{"nnserver_memory_budget_used_bytes", nil, 8 * (784*30 + 30 + 30*10 + 10)},
	} {
		if got := value(after, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if v := value(after, "nnserver_memory_budget_peak_bytes", nil); v < 233_000 {
		t.Errorf("the budget's peak is %v bytes after a job of [784, 30, 10], which reserves more", v)
	}
	// Raw paths never become labels.
	for _, m := range after["nnserver_http_requests_total"].Metric {
		for _, l := range m.Label {
			if strings.Contains(l.GetValue(), id) {
				t.Errorf("a label holds a raw path: %s", l.GetValue())
			}
		}
	}
}
