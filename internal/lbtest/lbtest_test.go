package lbtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// backends starts three replicas that say who they are: GET /whoami answers
// "r0", "r1" or "r2" and the forwarding headers they got, /ws echoes
// WebSocket messages prefixed with the name, /api/status is the health
// check.
func backends(t *testing.T) []string {
	t.Helper()
	var addrs []string
	for i := range 3 {
		name := fmt.Sprintf("r%d", i)
		up := websocket.Upgrader{}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {})
		mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s %s", name, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
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
				if err := c.WriteMessage(typ, append([]byte(name+":"), msg...)); err != nil {
					return
				}
			}
		})
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	return addrs
}

// client returns an HTTP client whose connections come from the loopback
// address src, with a cookie jar if jar is set. Each request opens a new
// connection, as clients of a real deployment would now and then.
func client(t *testing.T, src string, jar bool) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	if jar {
		j, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Jar = j
	}
	return c
}

// whoami asks through the load balancer at url which replica answers, and
// returns its name and the forwarding headers it got.
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
	f := strings.Fields(string(b))
	if len(f) != 3 {
		t.Fatalf("GET /whoami: %q", b)
	}
	return f[0], f[1], f[2]
}

// echo opens a WebSocket through the load balancer, with c's cookies, and
// returns the name of the replica that echoed a message.
func echo(t *testing.T, c *http.Client, url, src string) string {
	t.Helper()
	d := websocket.Dialer{
		NetDialContext:   (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext,
		Jar:              c.Jar,
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

// TestNginx checks deploy/nginx.conf: a client sticks to one replica by its
// address, over HTTP and WebSocket; clients of one /24 are spread (ip_hash
// would send them all to one replica); forwarding headers are set.
func TestNginx(t *testing.T) {
	url := StartNginx(t, backends(t))

	c := client(t, "127.0.0.1", false)
	first, xff, proto := whoami(t, c, url)
	if xff != "127.0.0.1" || proto != "http" {
		t.Errorf("X-Forwarded-For %q, X-Forwarded-Proto %q", xff, proto)
	}
	for range 5 {
		if name, _, _ := whoami(t, c, url); name != first {
			t.Fatalf("a request of the same client went to %s, not %s", name, first)
		}
	}
	if name := echo(t, c, url, "127.0.0.1"); name != first {
		t.Errorf("the client's WebSocket went to %s, its requests to %s", name, first)
	}

	seen := map[string]bool{}
	for i := 2; i < 20; i++ {
		src := fmt.Sprintf("127.0.0.%d", i)
		c := client(t, src, false)
		name, xff, _ := whoami(t, c, url)
		if xff != src {
			t.Errorf("X-Forwarded-For %q, want %s", xff, src)
		}
		if again, _, _ := whoami(t, c, url); again != name {
			t.Errorf("client %s went to %s, then %s", src, name, again)
		}
		seen[name] = true
	}
	if len(seen) < 2 {
		t.Errorf("18 clients of 127.0.0.0/24 all went to %v", seen)
	}
}

// TestHAProxy checks deploy/haproxy.cfg: a client with the cookie sticks to
// its replica, over HTTP and WebSocket; clients without it are spread;
// forwarding headers are set.
func TestHAProxy(t *testing.T) {
	url := StartHAProxy(t, backends(t))

	c := client(t, "127.0.0.1", true)
	first, xff, proto := whoami(t, c, url)
	if xff != "127.0.0.1" || proto != "http" {
		t.Errorf("X-Forwarded-For %q, X-Forwarded-Proto %q", xff, proto)
	}
	if cookies := c.Jar.Cookies(mustURL(t, url)); len(cookies) != 1 || cookies[0].Name != "SERVERID" {
		t.Fatalf("cookies after the first response: %v", cookies)
	}
	for range 5 {
		if name, _, _ := whoami(t, c, url); name != first {
			t.Fatalf("a request with the cookie went to %s, not %s", name, first)
		}
	}
	if name := echo(t, c, url, "127.0.0.1"); name != first {
		t.Errorf("the client's WebSocket went to %s, its requests to %s", name, first)
	}

	seen := map[string]int{}
	for range 6 {
		name, _, _ := whoami(t, client(t, "127.0.0.1", false), url)
		seen[name]++
	}
	if len(seen) != 3 {
		t.Errorf("6 clients without the cookie went to %v, want all 3 replicas", seen)
	}
}

func mustURL(t *testing.T, s string) *neturl.URL {
	t.Helper()
	u, err := neturl.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestProductionConfigs renders the files as for production (no Prefix)
// and has each program check its own.
func TestProductionConfigs(t *testing.T) {
	c := Config{Listen: "127.0.0.1:8080", Backends: []string{"10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"}}
	dir := tempDir(t)

	b, err := Render(DeployFile(t, "haproxy.cfg"), Config{Listen: ":80", Backends: c.Backends})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(Binary(t, "haproxy"), "-c", "-f", path).CombinedOutput(); err != nil {
		t.Errorf("haproxy -c: %v\n%s\n%s", err, out, b)
	}

	b, err = Render(DeployFile(t, "nginx.conf"), c)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// -t checks the syntax and the paths; the production paths (pid, logs)
	// are the system's, which exist where nginx is installed.
	if out, err := exec.Command(Binary(t, "nginx"), "-t", "-q", "-e", filepath.Join(dir, "error.log"), "-c", path).CombinedOutput(); err != nil {
		t.Errorf("nginx -t: %v\n%s\n%s", err, out, b)
	}
}
