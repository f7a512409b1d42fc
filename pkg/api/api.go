// Package api is the REST API on Gin: it validates requests, calls the
// service and writes JSON. Every error a client can cause is answered as
// {"error": "..."} with a 4xx status.
package api

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/service"
)

// MaxBodyBytes caps request bodies.
const MaxBodyBytes = 1 << 20

// Options configure the router.
type Options struct {
	Service  *service.Service
	SocketIO http.Handler // mounted at /socket.io/ for every method; nil: none
	Static   fs.FS        // the management page and its files, served at /
	Logger   *slog.Logger
}

// New returns the HTTP handler of the whole server.
func New(o Options) http.Handler { return headAsGet(newEngine(o)) }

// newEngine returns the router.
func newEngine(o Options) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	h := &handlers{svc: o.Service, log: o.Logger}

	r.Use(h.recover, h.logRequests, corsExceptSocketIO())

	if o.SocketIO != nil {
		// Every method: the handler answers those Engine.IO does not use
		// with 400 and an Engine.IO error body, as the protocol does.
		r.Any("/socket.io/*any", gin.WrapH(o.SocketIO))
	}

	a := r.Group("/api")
	a.GET("/status", h.status)
	a.GET("/networks", h.listNetworks)
	a.POST("/networks", h.createNetwork)
	a.DELETE("/networks", h.deleteAll)
	a.DELETE("/networks/:id", h.deleteNetwork)
	a.POST("/networks/:id/train", h.train)
	a.GET("/networks/:id/successful_example", h.example(true))
	a.GET("/networks/:id/unsuccessful_example", h.example(false))
	a.GET("/training/:id", h.job)
	a.GET("/openapi.json", serveOpenAPI)

	static := http.FileServerFS(o.Static)
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
	return r
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
		AllowMethods:    []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodOptions},
		AllowHeaders:    []string{"Origin", "Content-Type", "Accept", "Authorization", "X-Requested-With"},
		ExposeHeaders:   []string{"Retry-After"},
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
	svc *service.Service
	log *slog.Logger
}

// errorBody is every error response.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, errorBody{Error: msg})
}

// fail answers a service error with the status its code maps to. Internal
// errors are logged here, once, and their details are not shown.
func (h *handlers) fail(c *gin.Context, err error) {
	code := service.ErrorCode(err)
	status := statusOf(code)
	if status >= 500 {
		h.log.Error("request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
	}
	if errors.Is(err, service.ErrQueueFull) {
		c.Header("Retry-After", strconv.Itoa(int(service.RetryAfter.Seconds())))
	}
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
			h.log.Error("panic serving request", "method", c.Request.Method, "path", c.Request.URL.Path, "panic", v)
			writeError(c, http.StatusInternalServerError, "internal error")
		}
	}()
	c.Next()
}

func (h *handlers) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	level := slog.LevelInfo
	if strings.HasPrefix(c.Request.URL.Path, "/socket.io/") {
		level = slog.LevelDebug // long-polls, one every ping interval per client
	}
	h.log.Log(c.Request.Context(), level, "http request",
		"method", c.Request.Method, "path", truncate(c.Request.URL.Path, 200),
		"status", c.Writer.Status(), "duration_ms", float64(time.Since(start).Microseconds())/1000,
		"remote", c.ClientIP())
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// validID reports whether s is a UUID in canonical lowercase form, the only
// form this server hands out.
func validID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

// reply answers out as JSON, or err as an error.
func (h *handlers) reply(c *gin.Context, out any, err error) {
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// pathID returns the id in the path, or answers 404 with notFound and
// returns false if it is not a UUID: such an id names nothing here, and is
// never used to build a file path.
func pathID(c *gin.Context, notFound string) (string, bool) {
	id := c.Param("id")
	if !validID(id) {
		writeError(c, http.StatusNotFound, notFound)
		return "", false
	}
	return id, true
}

const (
	networkNotFound = "Network not found"
	jobNotFound     = "Training job not found"
)

func (h *handlers) status(c *gin.Context) { c.JSON(http.StatusOK, h.svc.Status()) }

func (h *handlers) listNetworks(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"networks": h.svc.List()})
}

func (h *handlers) createNetwork(c *gin.Context) {
	if arch, ok := decodeCreate(c, h.svc.Limits()); ok {
		out, err := h.svc.Create(arch)
		h.reply(c, out, err)
	}
}

func (h *handlers) deleteNetwork(c *gin.Context) {
	if id, ok := pathID(c, networkNotFound); ok {
		out, err := h.svc.Delete(id)
		h.reply(c, out, err)
	}
}

func (h *handlers) deleteAll(c *gin.Context) {
	out, err := h.svc.DeleteAll()
	h.reply(c, out, err)
}

func (h *handlers) train(c *gin.Context) {
	id, ok := pathID(c, networkNotFound)
	if !ok {
		return
	}
	if p, ok := decodeTrain(c, h.svc.Limits()); ok {
		out, err := h.svc.Train(id, p)
		h.reply(c, out, err)
	}
}

func (h *handlers) job(c *gin.Context) {
	if id, ok := pathID(c, jobNotFound); ok {
		out, err := h.svc.Job(id)
		h.reply(c, out, err)
	}
}

func (h *handlers) example(correct bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if id, ok := pathID(c, networkNotFound); ok {
			out, err := h.svc.Example(id, correct)
			h.reply(c, out, err)
		}
	}
}
