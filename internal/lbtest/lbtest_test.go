package lbtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mnist-go/nnserver/internal/testutil"
)

// backend is a test replica that says who it is: GET /whoami answers its
// name and the forwarding headers it got, /ws echoes WebSocket messages
// prefixed with the name, /api/status always answers 200 (liveness) and
// /api/ready answers 200 or 503 as ready says, counting the checks.
type backend struct {
	name  string
	addr  string
	srv   *httptest.Server
	ready atomic.Bool

	mu     sync.Mutex
	checks []bool // every /api/ready answered, true for 200
}

// backends starts n replicas named r1, r2, … (as Render names them for
// HAProxy), ready.
func backends(t *testing.T, n int) []*backend {
	t.Helper()
	var bs []*backend
	for i := range n {
		b := &backend{name: fmt.Sprintf("r%d", i+1)}
		b.ready.Store(true)
		up := websocket.Upgrader{}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {})
		mux.HandleFunc("GET /api/ready", func(w http.ResponseWriter, r *http.Request) {
			ok := b.ready.Load()
			b.mu.Lock()
			b.checks = append(b.checks, ok)
			b.mu.Unlock()
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})
		mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s %s", b.name, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
		})
		mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				typ, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				if err := c.WriteMessage(typ, append([]byte(b.name+":"), msg...)); err != nil {
					return
				}
			}
		})
		b.srv = httptest.NewServer(mux)
		t.Cleanup(b.srv.Close)
		b.addr = strings.TrimPrefix(b.srv.URL, "http://")
		bs = append(bs, b)
	}
	return bs
}

func addrs(bs []*backend) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.addr)
	}
	return out
}

// checksSince returns the checks b answered after the first from of them.
func (b *backend) checksSince(from int) []bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]bool(nil), b.checks[min(from, len(b.checks)):]...)
}

func (b *backend) checkCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.checks)
}

// setReady makes b answer its health checks with ok, and waits until it
// has answered n checks so: HAProxy's state has then followed (n is one
// more than its fall or rise count, so that the check that decided has
// been processed).
func (b *backend) setReady(t *testing.T, ok bool, n int) {
	t.Helper()
	from := b.checkCount()
	b.ready.Store(ok)
	var got []bool
	var same int
	if !testutil.Poll(30*time.Second, 50*time.Millisecond, func() bool {
		got, same = b.checksSince(from), 0
		for _, c := range got {
			if c == ok {
				same++
			}
		}
		return same >= n
	}) {
		t.Fatalf("replica %s answered %d health checks %v in 30 s (%v): does HAProxy check GET /api/ready?", b.name, same, ok, got)
	}
}

// HAProxy's health checks of deploy/haproxy.cfg: fall 3, rise 2.
const (
	fall = 3
	rise = 2
)

// client returns an HTTP client whose connections come from the loopback
// address src, with no cookie jar (as Node's socket.io-client). Each
// request opens a new connection, as clients of a real deployment would
// now and then.
func client(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// whoami asks through the load balancer at url which replica answers, and
// returns its name and the forwarding headers it got. The answer must set
// no cookie: stickiness must not depend on one.
func whoami(t *testing.T, c *http.Client, url string) (name, xff, proto string) {
	t.Helper()
	resp, err := c.Get(url + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /whoami: %s %q %v", resp.Status, b, err)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) > 0 {
		t.Errorf("the load balancer set a cookie: %v", sc)
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		t.Fatalf("GET /whoami: %q", b)
	}
	return f[0], f[1], f[2]
}

// echo opens a WebSocket through the load balancer from src and returns
// the name of the replica that echoed a message.
func echo(t *testing.T, url, src string) string {
	t.Helper()
	d := websocket.Dialer{
		NetDialContext:   (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext,
		HandshakeTimeout: 5 * time.Second,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, resp, err := d.DialContext(ctx, "ws"+strings.TrimPrefix(url, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("WebSocket through the load balancer: %v (response %v)", err, resp)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	_, msg, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	name, rest, ok := strings.Cut(string(msg), ":")
	if !ok || rest != "hello" {
		t.Fatalf("echo: %q", msg)
	}
	return name
}

// balancers are the two shipped recipes, started in front of backends.
var balancers = []struct {
	name  string
	start func(testing.TB, []string) string
}{
	{"nginx", StartNginx},
	{"haproxy", StartHAProxy},
}

// TestStickyByAddress checks both recipes: a client sticks to one replica
// by its address alone (no cookie is set, none is needed), over HTTP and
// WebSocket; clients of one /24 are spread (nginx's ip_hash would send
// them all to one replica); forwarding headers are set.
func TestStickyByAddress(t *testing.T) {
	for _, lb := range balancers {
		t.Run(lb.name, func(t *testing.T) {
			url := lb.start(t, addrs(backends(t, 3)))

			c := client("127.0.0.1")
			first, xff, proto := whoami(t, c, url)
			if xff != "127.0.0.1" || proto != "http" {
				t.Errorf("X-Forwarded-For %q, X-Forwarded-Proto %q", xff, proto)
			}
			for range 5 {
				if name, _, _ := whoami(t, c, url); name != first {
					t.Fatalf("a request of the same client went to %s, not %s", name, first)
				}
			}
			if name := echo(t, url, "127.0.0.1"); name != first {
				t.Errorf("the client's WebSocket went to %s, its requests to %s", name, first)
			}

			seen := map[string]int{}
			for i := 2; i < 20; i++ {
				src := fmt.Sprintf("127.0.0.%d", i)
				c := client(src)
				name, xff, _ := whoami(t, c, url)
				if xff != src {
					t.Errorf("X-Forwarded-For %q, want %s", xff, src)
				}
				for range 3 {
					if again, _, _ := whoami(t, c, url); again != name {
						t.Errorf("client %s went to %s, then %s", src, name, again)
					}
				}
				if ws := echo(t, url, src); ws != name {
					t.Errorf("client %s: WebSocket on %s, requests on %s", src, ws, name)
				}
				seen[name]++
			}
			t.Logf("18 clients of 127.0.0.0/24: %v", seen)
			if len(seen) < 2 {
				t.Errorf("18 clients of 127.0.0.0/24 all went to %v", seen)
			}
		})
	}
}

// addressOn returns a loopback address (127.0.0.2-99) whose requests the
// balancer at url sends to the replica named want.
func addressOn(t *testing.T, url, want string) string {
	t.Helper()
	for i := 2; i < 100; i++ {
		src := fmt.Sprintf("127.0.0.%d", i)
		if name, _, _ := whoami(t, client(src), url); name == want {
			return src
		}
	}
	t.Fatalf("no address of 127.0.0.2-99 goes to %s", want)
	return ""
}

// TestDeadReplica checks both recipes: when a replica stops accepting
// connections, its clients' very next requests are answered by another
// replica (nginx: proxy_next_upstream; HAProxy: a retry redispatched),
// always the same one, while the other replicas' clients stay where they
// are.
func TestDeadReplica(t *testing.T) {
	for _, lb := range balancers {
		t.Run(lb.name, func(t *testing.T) {
			bs := backends(t, 3)
			url := lb.start(t, addrs(bs))
			victim := addressOn(t, url, "r1")
			other := addressOn(t, url, "r2")
			bs[0].srv.Close()
			start := time.Now()
			moved, _, _ := whoami(t, client(victim), url)
			took := time.Since(start)
			if moved == "r1" {
				t.Fatal("a closed replica answered")
			}
			t.Logf("the first request of r1's client after r1 closed was answered by %s in %v", moved, took.Round(time.Millisecond))
			if took > 3*time.Second {
				t.Errorf("the first request after the replica closed took %v", took)
			}
			for range 10 {
				if name, _, _ := whoami(t, client(victim), url); name != moved {
					t.Fatalf("r1's client went to %s, then %s", moved, name)
				}
				if name, _, _ := whoami(t, client(other), url); name != "r2" {
					t.Fatalf("r2's client went to %s", name)
				}
			}
		})
	}
}

// TestHAProxyReadiness checks deploy/haproxy.cfg's health check: it asks
// GET /api/ready; a replica that answers 503 (while its /api/status still
// answers 200) loses its clients to the others until it is ready again,
// and gets them back; the other replicas' clients do not move. When no
// replica is ready, HAProxy fails open: the replicas still answer, each
// client still on one replica.
func TestHAProxyReadiness(t *testing.T) {
	t.Parallel() // it waits for health checks, 2 s apart
	bs := backends(t, 3)
	url := StartHAProxy(t, addrs(bs))
	on := map[string]string{} // replica → a client address it serves
	for _, b := range bs {
		on[b.name] = addressOn(t, url, b.name)
	}
	where := func(src string) string {
		t.Helper()
		name, _, _ := whoami(t, client(src), url)
		for range 3 {
			if again, _, _ := whoami(t, client(src), url); again != name {
				t.Fatalf("client %s went to %s, then %s", src, name, again)
			}
		}
		return name
	}

	bs[0].setReady(t, false, fall+1)
	moved := where(on["r1"])
	if moved == "r1" {
		t.Fatalf("r1 answers 503 to GET /api/ready, and still gets its clients")
	}
	if got := where(on["r2"]); got != "r2" {
		t.Errorf("r2's client moved to %s when r1 became unready", got)
	}
	if got := where(on["r3"]); got != "r3" {
		t.Errorf("r3's client moved to %s when r1 became unready", got)
	}
	t.Logf("r1 unready: its client went to %s", moved)

	bs[0].setReady(t, true, rise+1)
	if got := where(on["r1"]); got != "r1" {
		t.Errorf("r1 is ready again, and its client stays on %s", got)
	}

	// Postgres is down: no replica is ready.
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Go(func() { b.setReady(t, false, fall+1) })
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := 2; i < 20; i++ {
		seen[where(fmt.Sprintf("127.0.0.%d", i))] = true
	}
	t.Logf("no replica ready: 18 clients answered by %v", seen)
	if len(seen) < 2 {
		t.Errorf("failing open, every client went to %v", seen)
	}
	for _, b := range bs {
		wg.Go(func() { b.setReady(t, true, rise+1) })
	}
	wg.Wait()
	for name, src := range on {
		if got := where(src); got != name {
			t.Errorf("every replica ready again: %s's client is on %s", name, got)
		}
	}
}

// TestRender: the shipped files rendered for the replicas they ship with
// are themselves, byte for byte (so Render touches nothing else); rendered
// for other replicas, each gets its line(s) with the shipped options.
func TestRender(t *testing.T) {
	for _, tc := range []struct {
		file, listen string
		shipped      Config
		wantLines    []string
	}{
		{"nginx.conf", "8080", Config{Listen: "8080", Backends: []string{"127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"}},
			[]string{"        server 10.0.0.1:8000 max_fails=3 fail_timeout=10s;", "        server 10.0.0.2:8000 max_fails=3 fail_timeout=10s;",
				"        listen 0.0.0.0:80;"}},
		{"haproxy.cfg", ":8080", Config{Listen: ":8080", Backends: []string{"127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"}},
			[]string{"    server r1 10.0.0.1:8000 check", "    server r2 10.0.0.2:8000 check",
				"    server r1-open 10.0.0.1:8000 backup", "    server r2-open 10.0.0.2:8000 backup", "    bind 0.0.0.0:80"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := DeployFile(t, tc.file)
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			same, err := Render(path, tc.shipped)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(same, src) {
				t.Errorf("rendered for its own replicas, %s changes:\n%s", tc.file, same)
			}
			out, err := Render(path, Config{Listen: "0.0.0.0:80", Backends: []string{"10.0.0.1:8000", "10.0.0.2:8000"}})
			if err != nil {
				t.Fatal(err)
			}
			text := string(out)
			for _, l := range tc.wantLines {
				if !strings.Contains(text, l+"\n") {
					t.Errorf("no line %q in\n%s", l, text)
				}
			}
			if strings.Contains(text, "127.0.0.1:800") {
				t.Errorf("a shipped replica is left:\n%s", text)
			}
		})
	}
}

// TestShippedConfigs has each program check its file exactly as shipped
// (system paths, 127.0.0.1:8001-8003), and as rendered for other hosts.
func TestShippedConfigs(t *testing.T) {
	dir := tempDir(t)
	other := Config{Listen: "127.0.0.1:8080", Backends: []string{"10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.4:8000"}}
	check := func(name string, args ...string) {
		t.Helper()
		for _, c := range []*Config{nil, &other} {
			path := DeployFile(t, name)
			if c != nil {
				path = render(t, name, *c, dir)
			}
			b, _ := os.ReadFile(path)
			cmd := exec.Command(Binary(t, strings.TrimSuffix(strings.TrimSuffix(name, ".cfg"), ".conf")), append(args, path)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: %v\n%s\n%s", cmd, err, out, b)
			}
		}
	}
	check("haproxy.cfg", "-c", "-f")
	// -t checks the syntax and the paths; the production paths (pid, logs)
	// are the system's, which exist where nginx is installed.
	check("nginx.conf", "-t", "-q", "-e", filepath.Join(dir, "error.log"), "-c")
}
