// Package api is the REST API on Gin: it validates requests, calls the
// service and writes JSON. It owns the wire format: the JSON shapes
// (wire.go), statuses, headers and encodings. Every error a client can
// cause is answered as {"error": "..."} with a 4xx status (503 when the
// server is overloaded).
package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/live"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

// MaxBodyBytes caps JSON request bodies.
const MaxBodyBytes = 1 << 20

// Options configure the router.
type Options struct {
	Service  *service.Service
	SocketIO http.Handler // mounted at /socket.io/ for every method; nil: none
	Static   fs.FS        // the management page and its files, served at /
	Logger   *slog.Logger
	// TrustedProxies are the addresses or CIDRs of the reverse proxies
	// whose X-Forwarded-For names the client in logs. Empty: the header is
	// ignored and the peer address is logged.
	TrustedProxies []string
	// Metrics, if not nil, is served at GET /metrics.
	Metrics http.Handler
	// Requests, if not nil, is told of every request answered.
	Requests RequestObserver
	// Budget is the process's memory budget: request bodies, image
	// decodes and encoded answers reserve from it. nil: unbounded.
	Budget *budget.Budget
	// Stopping, if not nil, is cancelled when the server begins to shut
	// down: work that only a request waits for (an image decode) stops.
	Stopping context.Context
	// CPU is the process's budget of CPU for heavy request work, shared
	// with the service; nil: one of the default size for this router.
	CPU *budget.CPU
	// RateLimits bound the creates, trainings and imports of one client
	// address; the zero value: no bound (DefaultRateLimits are the
	// server's defaults).
	RateLimits RateLimits
	// Now returns the time for the rate limits; nil: time.Now.
	Now func() time.Time
}

// RequestObserver is told of every request answered, for metrics. route is
// the route's pattern ("/api/networks/:id/train"), "" when none matched.
type RequestObserver interface {
	ObserveRequest(method, route string, status int, d time.Duration)
}

// New returns the HTTP handler of the whole server.
func New(o Options) (http.Handler, error) {
	r, err := newEngine(o)
	if err != nil {
		return nil, err
	}
	return headAsGet(r), nil
}

// newEngine returns the router.
func newEngine(o Options) (*gin.Engine, error) {
	r, _, err := build(o)
	return r, err
}

// build returns the router and its handlers.
func build(o Options) (*gin.Engine, *handlers, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	if err := r.SetTrustedProxies(o.TrustedProxies); err != nil {
		return nil, nil, fmt.Errorf("trusted proxies: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cpu := o.CPU
	if cpu == nil {
		cpu = budget.NewCPU(budget.DefaultCPUSlots(), BusyWait)
	}
	h := &handlers{svc: o.Service, log: o.Logger, logs: newLogLimiter(time.Second, 20), cpu: cpu, cache: newVersionCache(o.Budget, cpu),
		requests: o.Requests, budget: o.Budget, stopping: cmp.Or(o.Stopping, context.Background()),
		imports: make(chan struct{}, maxImports)}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	creates := newAddrLimiter("networks created", o.RateLimits.Create, now)
	trains := newAddrLimiter("training jobs started", o.RateLimits.Train, now)
	imports := newAddrLimiter("networks imported", o.RateLimits.Import, now)

	r.Use(h.recover, h.logRequests, corsExceptSocketIO(), credentials)

	if o.SocketIO != nil {
		// Every method: the handler answers those Engine.IO does not use
		// with 400 and an Engine.IO error body, as the protocol does.
		// The client's address, as Gin believes it (X-Forwarded-For only
		// from TRUSTED_PROXIES), bounds its sessions.
		r.Any("/socket.io/*any", func(c *gin.Context) {
			o.SocketIO.ServeHTTP(c.Writer, live.WithClientAddr(c.Request, c.ClientIP()))
		})
	}

	a := r.Group("/api")
	a.GET("/status", h.status)
	a.GET("/ready", h.ready)
	a.GET("/networks", h.listNetworks)
	a.POST("/networks", rateLimited(creates), h.createNetwork)
	a.DELETE("/networks", h.deleteAll)
	a.DELETE("/networks/:id", h.deleteNetwork)
	a.GET("/networks/:id", h.network)
	a.PATCH("/networks/:id", h.labelNetwork)
	a.GET("/networks/:id/snapshots", h.snapshots)
	a.POST("/networks/:id/restore", h.restore)
	a.POST("/networks/:id/train", rateLimited(trains), h.train)
	a.GET("/networks/:id/access", h.access)
	a.GET("/networks/:id/successful_example", h.example(true))
	a.GET("/networks/:id/unsuccessful_example", h.example(false))
	a.POST("/networks/:id/predict", h.predict)
	a.GET("/networks/:id/history", h.history)
	a.GET("/networks/:id/kernels", h.kernels)
	a.GET("/networks/:id/evaluation", h.evaluation)
	a.GET("/networks/:id/evaluation/examples", h.confusion)
	a.GET("/networks/:id/download", h.download)
	a.POST("/networks/import", rateLimited(imports), h.importNetwork)
	a.GET("/training", h.listJobs)
	a.GET("/training/:id", h.job)
	a.POST("/training/:id/cancel", h.cancel)
	a.GET("/openapi.json", serveOpenAPI)
	if o.Metrics != nil {
		r.GET("/metrics", h.metricsGuard, gin.WrapH(o.Metrics))
	}

	var static http.Handler
	if o.Static != nil {
		sf, err := newStaticFiles(o.Static)
		if err != nil {
			return nil, nil, err
		}
		static = sf
	}
	r.NoRoute(func(c *gin.Context) {
		p := c.Request.URL.Path
		if strings.HasPrefix(p, "/api/") || p == "/api" || o.Static == nil ||
			(c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead) || !isStaticFile(o.Static, p) {
			writeError(c, http.StatusNotFound, "Not found: "+c.Request.Method+" "+truncate(p, 200))
			return
		}
		static.ServeHTTP(c.Writer, c.Request)
	})
	r.NoMethod(func(c *gin.Context) {
		writeError(c, http.StatusMethodNotAllowed, "Method "+c.Request.Method+" not allowed on "+truncate(c.Request.URL.Path, 200))
	})
	return r, h, nil
}

// NewWorker returns the HTTP handler of a worker replica (ROLE=worker),
// which only trains: GET /api/status (with "role": "worker"), /api/ready
// and, if o.Metrics is set, /metrics; everything else is a JSON 404 saying
// where to send it.
func NewWorker(o Options) (http.Handler, error) {
	o.SocketIO, o.Static = nil, nil
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(o.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &handlers{svc: o.Service, log: o.Logger, logs: newLogLimiter(time.Second, 20), requests: o.Requests}
	r.Use(h.recover, h.logRequests, credentials)
	r.GET("/api/status", func(c *gin.Context) {
		st := h.svc.Status(c.Request.Context())
		h.writeJSON(c, http.StatusOK, statusBody{Status: "online", ActiveNetworks: st.ActiveNetworks,
			TrainingJobs: st.TrainingJobs, Database: st.Database, Role: "worker"})
	})
	r.GET("/api/ready", h.ready)
	if o.Metrics != nil {
		r.GET("/metrics", h.metricsGuard, gin.WrapH(o.Metrics))
	}
	r.NoRoute(func(c *gin.Context) {
		writeError(c, http.StatusNotFound, "this replica only trains (ROLE=worker): send requests to an api replica")
	})
	return headAsGet(r), nil
}

// headAsGet answers HEAD like GET without the body, as Flask did (uptime
// monitors use it). net/http drops the body because the request it holds
// is still a HEAD.
func headAsGet(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			r = r.Clone(r.Context())
			r.Method = http.MethodGet
		}
		h.ServeHTTP(w, r)
	})
}

// isStaticFile reports whether urlPath names a file of fsys, or is "/"
// (the page): anything else gets a JSON 404, not a text page or a
// directory listing.
func isStaticFile(fsys fs.FS, urlPath string) bool {
	name := strings.TrimPrefix(path.Clean(urlPath), "/")
	if name == "" {
		return true
	}
	info, err := fs.Stat(fsys, name)
	return err == nil && !info.IsDir()
}

// corsExceptSocketIO allows every origin on everything but /socket.io/,
// where Engine.IO answers CORS itself (two sets of headers would confuse
// browsers).
func corsExceptSocketIO() gin.HandlerFunc {
	c := cors.New(cors.Config{
		AllowAllOrigins: true,
		AllowMethods:    []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPatch, http.MethodOptions},
		AllowHeaders:    []string{"Origin", "Content-Type", "Accept", "Authorization", "X-Requested-With", OwnerTokenHeader},
		ExposeHeaders:   []string{"Retry-After", "Content-Disposition", "WWW-Authenticate"},
		MaxAge:          12 * time.Hour,
	})
	return func(ctx *gin.Context) {
		if strings.HasPrefix(ctx.Request.URL.Path, "/socket.io/") {
			ctx.Next()
			return
		}
		c(ctx)
	}
}

type handlers struct {
	svc      *service.Service
	log      *slog.Logger
	logs     *logLimiter
	cache    *versionCache   // answers encoded once per network version
	requests RequestObserver // nil: none
	budget   *budget.Budget  // nil: unbounded
	cpu      *budget.CPU     // heavy work of requests: large bodies, image decodes, encodings
	stopping context.Context // done when the server shuts down
	imports  chan struct{}   // bounds the imports checked at once
}

// writeError answers {"error": msg} with status and ends the request.
func writeError(c *gin.Context, status int, msg string) {
	if err := writeJSON(c, status, errorBody{Error: msg}); err != nil {
		panic(err) // a struct of one string always encodes
	}
}

// writeJSON encodes v, then answers it with status and ends the request:
// nothing is written before the whole body is known, so an answer is never
// a status without its body. JSON is plain (no HTML escaping of & < >).
func writeJSON(c *gin.Context, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode the answer to %s %s: %w", c.Request.Method, truncate(c.Request.URL.Path, 200), err)
	}
	c.Abort()
	c.Data(status, "application/json; charset=utf-8", bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return nil
}

// writeJSON answers v, or, if it cannot be encoded (a NaN, say), a logged
// 500 with a JSON error.
func (h *handlers) writeJSON(c *gin.Context, status int, v any) {
	if err := writeJSON(c, status, v); err != nil {
		h.log.Error("answer not encodable", "err", err)
		writeError(c, http.StatusInternalServerError, "internal error: the answer could not be encoded")
	}
}

// fail answers a service error with the status its code maps to, and a
// Retry-After header when the service suggests one. Server faults are
// logged here, once, with their cause, which the client never sees.
func (h *handlers) fail(c *gin.Context, err error) {
	status := statusOf(service.ErrorCode(err))
	if status >= 500 && status != http.StatusServiceUnavailable {
		h.log.Error("request failed", "method", c.Request.Method, "path", truncate(c.Request.URL.Path, 200), "err", err)
	}
	if d := service.RetryAfter(err); d > 0 {
		c.Header("Retry-After", strconv.Itoa(retryAfterSeconds(d)))
	}
	authenticate(c, status)
	writeError(c, status, service.ErrorMessage(err))
}

// statusOf maps error codes to HTTP statuses, in this one place.
func statusOf(code service.Code) int {
	switch code {
	case service.Invalid:
		return http.StatusBadRequest
	case service.NotFound:
		return http.StatusNotFound
	case service.Conflict:
		return http.StatusConflict
	case service.Unavailable:
		return http.StatusServiceUnavailable
	case service.Storage:
		return http.StatusInsufficientStorage
	case service.Unauthenticated:
		return http.StatusUnauthorized
	case service.Forbidden:
		return http.StatusForbidden
	default:
		return http.StatusInternalServerError
	}
}

func (h *handlers) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("panic serving request", "method", c.Request.Method, "path", truncate(c.Request.URL.Path, 200), "panic", v)
			writeError(c, http.StatusInternalServerError, "internal error")
		}
	}()
	c.Next()
}

// logRequests writes one line per request at INFO (Socket.IO's long-polls
// at DEBUG), at most 20 a second per route and status class: the rest are
// counted and the count goes with the next line written.
func (h *handlers) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	if h.requests != nil {
		h.requests.ObserveRequest(c.Request.Method, c.FullPath(), c.Writer.Status(), time.Since(start))
	}
	if strings.HasPrefix(c.Request.URL.Path, "/socket.io/") {
		if h.log.Enabled(c.Request.Context(), slog.LevelDebug) {
			h.log.Debug("http request", "method", c.Request.Method, "path", "/socket.io/", "status", c.Writer.Status())
		}
		return
	}
	status := c.Writer.Status()
	ok, suppressed := h.logs.allow(c.FullPath()+" "+strconv.Itoa(status/100), start)
	if !ok {
		return
	}
	attrs := []any{"method", c.Request.Method, "path", truncate(c.Request.URL.Path, 200),
		"status", status, "duration_ms", float64(time.Since(start).Microseconds()) / 1000,
		"remote", c.ClientIP()}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed_before", suppressed)
	}
	h.log.Info("http request", attrs...)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// reply answers out as JSON, or err as an error.
func (h *handlers) reply(c *gin.Context, out any, err error) {
	if err != nil {
		h.fail(c, err)
		return
	}
	h.writeJSON(c, http.StatusOK, out)
}

// pathID returns the id in the path, or answers 404 with notFound and
// returns false if it is not a canonical lowercase UUID (modelfile.CheckID),
// the only form this server hands out: such an id names nothing here, and
// is never used to build a file path.
func pathID(c *gin.Context, notFound string) (string, bool) {
	id := c.Param("id")
	if modelfile.CheckID(id) != nil {
		writeError(c, http.StatusNotFound, notFound)
		return "", false
	}
	return id, true
}

func (h *handlers) status(c *gin.Context) {
	st := h.svc.Status(c.Request.Context())
	h.reply(c, statusBody{Status: "online", ActiveNetworks: st.ActiveNetworks, TrainingJobs: st.TrainingJobs, Database: st.Database,
		Ownership: h.svc.Policy().Ownership()}, nil)
}

// ready answers whether this replica can serve: 200 when every backend it
// needs answers (scaled mode: the database and the model store), else 503
// naming the one that does not. Load balancers and platforms route to
// replicas by it; /api/status only says the process is alive.
func (h *handlers) ready(c *gin.Context) {
	r := h.svc.Ready(c.Request.Context())
	body := readyBody{Ready: r.Ready, Backends: r.Backends}
	if !r.Ready {
		var down []string
		for name, st := range r.Backends {
			if st != "ok" {
				down = append(down, name+" "+st)
			}
		}
		slices.Sort(down)
		body.Error = "not ready: " + strings.Join(down, ", ")
		c.Header("Retry-After", "5")
		h.writeJSON(c, http.StatusServiceUnavailable, body)
		return
	}
	h.writeJSON(c, http.StatusOK, body)
}

func (h *handlers) listNetworks(c *gin.Context) {
	nets, err := h.svc.List(c.Request.Context())
	out := listBody{Networks: make([]networkBody, len(nets))}
	for i, n := range nets {
		out.Networks[i] = networkOf(n)
	}
	h.reply(c, out, err)
}

func (h *handlers) createNetwork(c *gin.Context) {
	release, ok := h.meter(c, jsonReadFactor, true)
	if !ok {
		return
	}
	defer release()
	p, ok := decodeCreate(c, h.svc.Limits())
	if !ok {
		return
	}
	n, err := h.svc.Create(c.Request.Context(), p)
	h.reply(c, createdOf(n, "created"), err)
}

func (h *handlers) deleteNetwork(c *gin.Context) {
	if id, ok := pathID(c, service.MsgNetworkNotFound); ok {
		d, err := h.svc.Delete(c.Request.Context(), id)
		h.reply(c, deletedBody{NetworkID: d.NetworkID, DeletedFromMemory: d.FromMemory, DeletedFromDisk: d.FromDisk}, err)
	}
}

func (h *handlers) deleteAll(c *gin.Context) {
	all, err := h.svc.DeleteAll(c.Request.Context())
	if code := service.ErrorCode(err); err != nil && (code == service.Unauthenticated || code == service.Forbidden) {
		h.fail(c, err) // refused: nothing was deleted
		return
	}
	out := deletedAllBody{DeletedCount: len(all.Deleted)}
	for _, d := range all.Deleted {
		if d.FromMemory {
			out.DeletedFromMemory++
		}
		if d.FromDisk {
			out.DeletedFromDisk++
		}
	}
	out.Message = fmt.Sprintf("Successfully deleted %d network(s)", out.DeletedCount)
	if err == nil {
		h.writeJSON(c, http.StatusOK, out)
		return
	}
	// Some were kept: say which, and what was deleted all the same.
	out.Error = fmt.Sprintf("%d network(s) could not be deleted and are kept; %d deleted", len(all.Failed), out.DeletedCount)
	for _, f := range all.Failed {
		out.NotDeleted = append(out.NotDeleted, notDeleted{NetworkID: f.NetworkID, Error: service.ErrorMessage(f.Err)})
	}
	h.writeJSON(c, statusOf(service.ErrorCode(err)), out)
}

func (h *handlers) train(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	release, ok := h.meter(c, jsonReadFactor, true)
	if !ok {
		return
	}
	defer release()
	if p, ok := decodeTrain(c, h.svc.Limits()); ok {
		// The client's address bounds its pending jobs (MaxQueuedJobsPerClient).
		j, err := h.svc.Train(service.WithClient(c.Request.Context(), c.ClientIP()), id, p)
		h.reply(c, trainStartedBody{JobID: j.ID, NetworkID: j.NetworkID, Status: "training_started"}, err)
	}
}

func (h *handlers) job(c *gin.Context) {
	if id, ok := pathID(c, service.MsgJobNotFound); ok {
		j, err := h.svc.Job(c.Request.Context(), id)
		h.reply(c, jobOf(j), err)
	}
}

func (h *handlers) cancel(c *gin.Context) {
	id, ok := pathID(c, service.MsgJobNotFound)
	if !ok {
		return
	}
	j, err := h.svc.Cancel(c.Request.Context(), id)
	if service.ErrorCode(err) == service.Conflict {
		// A finished job: say what it became, as the error and as a field.
		h.writeJSON(c, http.StatusConflict, struct {
			Error  string `json:"error"`
			JobID  string `json:"job_id"`
			Status string `json:"status"`
		}{service.ErrorMessage(err), j.ID, string(j.Status)})
		return
	}
	h.reply(c, cancelledBody{JobID: j.ID, NetworkID: j.NetworkID, Status: string(j.Status)}, err)
}
