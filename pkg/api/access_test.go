package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/pkg/api"
	"github.com/mnist-go/nnserver/pkg/dirstore"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

const adminToken = "the-admin-token-of-the-tests"

// newAccessServer is a server with this policy and these rate limits,
// whose log is kept.
func newAccessServer(t *testing.T, pc service.PolicyConfig, rl api.RateLimits, proxies []string) (*server, *syncBuffer) {
	t.Helper()
	st, err := dirstore.Open(t.TempDir(), modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := service.NewPolicy(pc)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := service.New(context.Background(), service.Config{Data: loadMNIST, Store: st, Workers: 1, Logger: log, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Close(ctx)
	})
	h, err := api.New(api.Options{Service: svc, Logger: log, RateLimits: rl, TrustedProxies: proxies,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("metrics\n")) })})
	if err != nil {
		t.Fatal(err)
	}
	return &server{h: h, svc: svc, store: st}, logs
}

// send is do with request headers ("Name: value").
func (s *server) send(t *testing.T, method, path, body string, headers ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, req)
	return response{w.Code, w.Header(), w.Body.String()}
}

// TestAccessSwitches: each switch on and off, over HTTP: which statuses
// each caller gets; 401 asks for a Bearer token; every answer is JSON;
// with both off everything is as before, the answers only gain
// owner_token.
func TestAccessSwitches(t *testing.T) {
	for _, tc := range []struct {
		name string
		pc   service.PolicyConfig
		// statuses of: delete another's network without a token, with a
		// wrong one, train it without a token, delete all without a
		// token, with the admin token.
		anonDelete, wrongDelete, anonTrain, anonDeleteAll, adminDeleteAll int
	}{
		{"both off", service.PolicyConfig{}, 200, 200, 200, 200, 200},
		{"admin token", service.PolicyConfig{AdminToken: adminToken}, 200, 200, 200, 401, 200},
		{"ownership", service.PolicyConfig{Ownership: true}, 401, 403, 401, 403, 403},
		{"both", service.PolicyConfig{AdminToken: adminToken, Ownership: true}, 401, 403, 401, 401, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, logs := newAccessServer(t, tc.pc, api.RateLimits{}, nil)
			create := func() (id, token string) {
				r := s.send(t, "POST", "/api/networks", `{"layer_sizes":[784,10]}`)
				m := r.json(t)
				id, _ = m["network_id"].(string)
				token, _ = m["owner_token"].(string)
				if r.status != 200 || len(token) != 43 {
					t.Fatalf("create: %d %s", r.status, r.body)
				}
				return id, token
			}
			a, tokA := create()
			b, _ := create()
			c, _ := create()
			d, _ := create()
			wantStatus := func(what string, r response, want int) {
				t.Helper()
				if r.status != want || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
					t.Errorf("%s: %d %s, want %d", what, r.status, r.body, want)
				}
				if r.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s: 401 without WWW-Authenticate: Bearer: %v", what, r.header)
				}
				if r.status >= 400 && !strings.Contains(r.body, `"error":`) {
					t.Errorf("%s: an error without an error field: %s", what, r.body)
				}
			}
			wantStatus("train without a token", s.send(t, "POST", "/api/networks/"+a+"/train", `{"epochs":1}`), tc.anonTrain)
			wantStatus("delete without a token", s.send(t, "DELETE", "/api/networks/"+b, ""), tc.anonDelete)
			wantStatus("delete with another's token", s.send(t, "DELETE", "/api/networks/"+c, "", "X-Owner-Token: "+tokA), tc.wrongDelete)
			// Another scheme than Bearer counts as no credentials.
			wantStatus("delete with a Basic credential", s.send(t, "DELETE", "/api/networks/"+d, "", "Authorization: Basic YWRtaW46YWRtaW4="), tc.anonDelete)
			wantStatus("reading stays open", s.send(t, "GET", "/api/networks/"+a+"/history", ""), 200)
			wantStatus("the job list stays open", s.send(t, "GET", "/api/training?network_id="+a, ""), 200)
			wantStatus("the owner deletes its own", s.send(t, "DELETE", "/api/networks/"+a, "", "Authorization: Bearer "+tokA), 200)
			wantStatus("delete all without a token", s.send(t, "DELETE", "/api/networks", ""), tc.anonDeleteAll)
			wantStatus("delete all as the admin", s.send(t, "DELETE", "/api/networks", "", "Authorization: bearer "+adminToken), tc.adminDeleteAll)
			if tc.pc.Ownership != strings.Contains(s.send(t, "GET", "/api/status", "").body, `"ownership":true`) {
				t.Errorf("status does not say ownership is %v", tc.pc.Ownership)
			}
			for _, secret := range []string{tokA, adminToken, service.OwnerHash(tokA)} {
				if len(logs.lines(secret)) > 0 {
					t.Errorf("the log holds a token or its hash")
				}
			}
		})
	}
}

// TestAccessEndpoint: GET /api/networks/{id}/access says what the caller
// is to the network, 200 whatever the credentials.
func TestAccessEndpoint(t *testing.T) {
	s, _ := newAccessServer(t, service.PolicyConfig{AdminToken: adminToken, Ownership: true}, api.RateLimits{}, nil)
	m := s.send(t, "POST", "/api/networks", `{"layer_sizes":[784,10]}`).json(t)
	id, token := m["network_id"].(string), m["owner_token"].(string)
	for _, tc := range []struct {
		header string
		want   string
	}{
		{"", `{"network_id":"` + id + `","ownership":true,"may_change":false,"role":null}`},
		{"X-Owner-Token: not-it", `"may_change":false,"role":null}`},
		{"X-Owner-Token: " + token, `"may_change":true,"role":"owner"}`},
		{"Authorization: Bearer " + adminToken, `"may_change":true,"role":"admin"}`},
	} {
		r := s.send(t, "GET", "/api/networks/"+id+"/access", "", tc.header)
		if r.status != 200 || !strings.HasSuffix(r.body, tc.want) {
			t.Errorf("%q: %d %s, want …%s", tc.header, r.status, r.body, tc.want)
		}
	}
}

// TestCORSAllowsOwnerToken: a page on another origin may send
// X-Owner-Token and Authorization, and read WWW-Authenticate.
func TestCORSAllowsOwnerToken(t *testing.T) {
	s, _ := newAccessServer(t, service.PolicyConfig{}, api.RateLimits{}, nil)
	req := httptest.NewRequest("OPTIONS", "/api/networks/x", nil)
	req.Header.Set("Origin", "http://app.example.org")
	req.Header.Set("Access-Control-Request-Method", "DELETE")
	req.Header.Set("Access-Control-Request-Headers", "x-owner-token, authorization")
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, req)
	allowed := strings.ToLower(w.Header().Get("Access-Control-Allow-Headers"))
	if w.Code/100 != 2 || !strings.Contains(allowed, "x-owner-token") || !strings.Contains(allowed, "authorization") {
		t.Errorf("preflight: %d %v", w.Code, w.Header())
	}
}

// TestMetricsToken: /metrics with METRICS_TOKEN needs it (or the admin
// token); without, it is open.
func TestMetricsToken(t *testing.T) {
	const metricsToken = "the-metrics-token-of-the-tests"
	for _, tc := range []struct {
		name   string
		pc     service.PolicyConfig
		header string
		want   int
	}{
		{"open", service.PolicyConfig{AdminToken: adminToken}, "", 200},
		{"no token", service.PolicyConfig{MetricsToken: metricsToken}, "", 401},
		{"a wrong token", service.PolicyConfig{MetricsToken: metricsToken}, "Authorization: Bearer " + metricsToken + "x", 403},
		{"the metrics token", service.PolicyConfig{MetricsToken: metricsToken}, "Authorization: Bearer " + metricsToken, 200},
		{"the admin token", service.PolicyConfig{MetricsToken: metricsToken, AdminToken: adminToken}, "Authorization: Bearer " + adminToken, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newAccessServer(t, tc.pc, api.RateLimits{}, nil)
			if r := s.send(t, "GET", "/metrics", "", tc.header); r.status != tc.want {
				t.Errorf("%d %s, want %d", r.status, r.body, tc.want)
			}
		})
	}
}

// TestRateLimitsPerAddress: creates, trainings and imports are counted per
// client address, the forwarded one behind a trusted proxy; past the
// limit, 429 with Retry-After; 0 is no limit.
func TestRateLimitsPerAddress(t *testing.T) {
	from := func(s *server, t *testing.T, client, method, path, body string) response {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = "10.0.0.2:4000" // the proxy
		req.Header.Set("X-Forwarded-For", client)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.h.ServeHTTP(w, req)
		return response{w.Code, w.Header(), w.Body.String()}
	}
	for _, tc := range []struct {
		name  string
		rl    api.RateLimits
		path  string // "" for train
		limit int    // 0: none
	}{
		{"create", api.RateLimits{Create: 3}, "/api/networks", 3},
		{"train", api.RateLimits{Train: 2}, "", 2},
		{"import", api.RateLimits{Import: 1}, "/api/networks/import", 1},
		{"off", api.RateLimits{}, "/api/networks", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newAccessServer(t, service.PolicyConfig{}, tc.rl, []string{"10.0.0.0/8"})
			path := tc.path
			if path == "" {
				id := from(s, t, "192.0.2.99", "POST", "/api/networks", `{"layer_sizes":[784,10]}`).json(t)["network_id"].(string)
				path = "/api/networks/" + id + "/train"
			}
			body := `{"layer_sizes":[784,10]}`
			if path == "/api/networks/import" {
				body = "" // 400: counted all the same
			}
			n := tc.limit
			if n == 0 {
				n = 10
			}
			for i := range n {
				if r := from(s, t, "192.0.2.1", "POST", path, body); r.status == 429 {
					t.Fatalf("request %d of %d: 429", i+1, n)
				}
			}
			r := from(s, t, "192.0.2.1", "POST", path, body)
			if tc.limit == 0 {
				if r.status == 429 {
					t.Errorf("429 with no limit")
				}
				return
			}
			retry, err := strconv.Atoi(r.header.Get("Retry-After"))
			if r.status != 429 || err != nil || retry < 1 || retry > 60 || !strings.Contains(r.body, fmt.Sprintf("at most %d a minute", tc.limit)) {
				t.Errorf("past the limit: %d %v %s", r.status, r.header, r.body)
			}
			if r := from(s, t, "192.0.2.2", "POST", path, body); r.status == 429 {
				t.Errorf("another address behind the same proxy is limited: %s", r.body)
			}
		})
	}
}
