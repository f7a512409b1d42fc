package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// serve starts a test server answering /api/status with status and body
// (after delay), and returns its port.
func serve(t *testing.T, status int, body string, delay time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/status" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func TestProbe(t *testing.T) {
	const online = `{"status":"online","active_networks":0,"training_jobs":0}`
	tests := []struct {
		name    string
		status  int
		body    string
		delay   time.Duration
		healthy bool
	}{
		{"online", 200, online, 0, true},
		{"online, other fields first", 200, `{"training_jobs":3,"status":"online"}`, 0, true},
		{"not online", 200, `{"status":"starting"}`, 0, false},
		{"no status field", 200, `{}`, 0, false},
		{"not JSON", 200, `<html>ok</html>`, 0, false},
		{"server error", 500, `{"error":"internal error"}`, 0, false},
		{"unavailable but says online", 503, online, 0, false},
		{"too slow", 200, online, 2 * time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := serve(t, tc.status, tc.body, tc.delay)
			err := probe(port, 500*time.Millisecond)
			if tc.healthy && err != nil {
				t.Fatalf("probe: %v, want healthy", err)
			}
			if !tc.healthy && err == nil {
				t.Fatal("probe succeeded, want an error")
			}
		})
	}
}

func TestProbeNothingListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	if err := probe(port, time.Second); err == nil {
		t.Fatal("probe of a closed port succeeded")
	}
}

func TestProbeBadPort(t *testing.T) {
	for _, port := range []string{"http", "0", "65536", "-1", "8000/x", "1:2"} {
		if err := probe(port, time.Second); err == nil {
			t.Errorf("probe(%q) succeeded, want an error", port)
		}
	}
}
