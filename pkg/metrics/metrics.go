// Package metrics exposes the server's metrics in the Prometheus text
// format: training jobs and epochs (it implements service.Observer), HTTP
// requests by route pattern (it implements api.RequestObserver), Socket.IO
// clients and events, the service's gauges, and the Go runtime and process
// collectors. docs/METRICS.md lists every metric with example queries.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/service"
)

const namespace = "nnserver"

// Metrics holds the server's collectors in a registry of its own.
type Metrics struct {
	reg *prometheus.Registry

	jobs         *prometheus.CounterVec
	jobSeconds   prometheus.Histogram
	epochs       prometheus.Counter
	epochSeconds prometheus.Histogram
	saveFailures prometheus.Counter
	requests     *prometheus.CounterVec
	reqSeconds   *prometheus.HistogramVec
}

// Sources are the live counts the gauges read when scraped; any may be nil.
type Sources struct {
	Service       func() service.Gauges
	SocketClients func() int
	EventsEmitted func() uint64
	Budget        func() budget.Stats // the memory budget (pkg/budget)
}

// New returns the collectors, registered with the Go and process
// collectors and gauges reading src.
func New(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "jobs_finished_total",
			Help: "Training jobs that ended, by final status (completed, failed, cancelled).",
		}, []string{"status"}),
		jobSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "job_duration_seconds",
			Help:    "Seconds from a job's start to its end, for jobs that started.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 14), // 0.5 s to 4096 s (about 1.1 h)
		}),
		epochs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "epochs_trained_total",
			Help: "Epochs of training finished (and saved), over all jobs.",
		}),
		epochSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "epoch_duration_seconds",
			Help:    "Seconds one epoch's training took, test-set evaluation excluded.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14), // 10 ms to about 82 s
		}),
		saveFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "model_save_failures_total",
			Help: "Times a network could not be saved to the models directory.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status class (2xx, 4xx, ...).",
		}, []string{"method", "route", "code"}),
		reqSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Seconds to answer an HTTP request, by method and route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	m.reg.MustRegister(m.jobs, m.jobSeconds, m.epochs, m.epochSeconds, m.saveFailures, m.requests, m.reqSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if f := src.Service; f != nil {
		for _, g := range []struct {
			name, help string
			get        func(service.Gauges) int
		}{
			{"networks_loaded", "Networks held in memory.", func(g service.Gauges) int { return g.NetworksLoaded }},
			{"networks_saved", "Networks saved on disk and not loaded.", func(g service.Gauges) int { return g.NetworksSaved }},
			{"jobs_queued", "Training jobs waiting for a worker.", func(g service.Gauges) int { return g.JobsQueued }},
			{"jobs_running", "Training jobs running.", func(g service.Gauges) int { return g.JobsRunning }},
		} {
			m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: g.name, Help: g.help},
				func() float64 { return float64(g.get(f())) }))
		}
	}
	if f := src.SocketClients; f != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "socketio_clients", Help: "Socket.IO clients connected.",
		}, func() float64 { return float64(f()) }))
	}
	if f := src.EventsEmitted; f != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "socketio_events_emitted_total",
			Help: "Socket.IO events broadcast (each counted once, whatever the number of clients).",
		}, func() float64 { return float64(f()) }))
	}
	if f := src.Budget; f != nil {
		for _, g := range []struct {
			name, help string
			get        func(budget.Stats) int64
		}{
			{"memory_budget_bytes", "The memory budget: what requests and jobs may hold together (MEMORY_BUDGET_MB).", func(s budget.Stats) int64 { return s.Capacity }},
			{"memory_budget_used_bytes", "Bytes of the memory budget reserved now.", func(s budget.Stats) int64 { return s.Used }},
			{"memory_budget_peak_bytes", "The most bytes of the memory budget ever reserved at once.", func(s budget.Stats) int64 { return s.Peak }},
		} {
			m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: g.name, Help: g.help},
				func() float64 { return float64(g.get(f())) }))
		}
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "memory_budget_refused_total",
			Help: "Reservations the memory budget refused (answered 503 or 413).",
		}, func() float64 { return float64(f().Refused) }))
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// JobFinished implements service.Observer.
func (m *Metrics) JobFinished(status service.JobStatus, seconds float64) {
	m.jobs.WithLabelValues(string(status)).Inc()
	if seconds > 0 {
		m.jobSeconds.Observe(seconds)
	}
}

// EpochTrained implements service.Observer.
func (m *Metrics) EpochTrained(seconds float64) {
	m.epochs.Inc()
	m.epochSeconds.Observe(seconds)
}

// ModelSaveFailed implements service.Observer.
func (m *Metrics) ModelSaveFailed() { m.saveFailures.Inc() }

// ObserveRequest implements api.RequestObserver. route is the pattern
// ("/api/networks/:id/train"), never the raw path, so the label set stays
// small whatever clients ask for.
func (m *Metrics) ObserveRequest(method, route string, status int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other" // clients choose methods: keep the label set small
	}
	if route == "" {
		route = "unmatched"
	}
	code := strconv.Itoa(status/100) + "xx"
	m.requests.WithLabelValues(method, route, code).Inc()
	m.reqSeconds.WithLabelValues(method, route).Observe(d.Seconds())
}
