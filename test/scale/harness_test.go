package scale

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/mnist-go/nnserver/internal/pgtest"
	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/test/internal/testenv"
)

// Guards: how long a wait may take before the test calls it a hang. None is
// a delay: every wait returns as soon as its condition holds.
const (
	readyTimeout = 60 * time.Second // a replica listens and has loaded MNIST
	eventTimeout = 60 * time.Second // an event or a log line that should come
	stopTimeout  = 20 * time.Second // SIGTERM to exit (SHUTDOWN_TIMEOUT is 10 s)
)

// ---------------------------------------------------------------- binary

// ---------------------------------------------------------------- S3

const (
	bucket   = "models"
	s3Prefix = "nets/"
)

// fakeS3 is gofakes3 over memory, served by this test process on a loopback
// port: the replicas are other processes, and reach it over HTTP.
type fakeS3 struct {
	srv     *httptest.Server
	backend *s3mem.Backend
}

func startS3(t *testing.T) *fakeS3 {
	t.Helper()
	f := &fakeS3{backend: s3mem.New()}
	if err := f.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(gofakes3.New(f.backend).Server())
	t.Cleanup(f.srv.Close)
	return f
}

// env is what a replica needs to keep its models in the fake.
func (f *fakeS3) env() []string {
	return []string{"S3_ENDPOINT=" + strings.TrimPrefix(f.srv.URL, "http://"), "S3_BUCKET=" + bucket,
		"S3_PREFIX=" + s3Prefix, "S3_USE_SSL=false", "AWS_ACCESS_KEY_ID=test-access", "AWS_SECRET_ACCESS_KEY=test-secret"}
}

// keys lists every object in the bucket.
func (f *fakeS3) keys(t *testing.T) []string {
	t.Helper()
	var keys []string
	page := gofakes3.ListBucketPage{}
	for {
		list, err := f.backend.ListBucket(bucket, &gofakes3.Prefix{}, page)
		if err != nil {
			t.Fatalf("listing the fake S3 bucket: %v", err)
		}
		for _, c := range list.Contents {
			keys = append(keys, c.Key)
		}
		if !list.IsTruncated || list.NextMarker == "" {
			return keys
		}
		page = gofakes3.ListBucketPage{Marker: list.NextMarker, HasMarker: true}
	}
}

// ---------------------------------------------------------------- replicas

// logLine is one JSON line of a replica's log.
type logLine struct {
	m    map[string]any
	time time.Time // its "time"
	gen  int       // which run of the replica wrote it (0, then 1 after a restart…)
}

func (l logLine) str(k string) string { s, _ := l.m[k].(string); return s }
func (l logLine) num(k string) float64 {
	f, _ := l.m[k].(float64)
	return f
}

// replica is one server process of the cluster, started again on the same
// port after a stop or a kill.
type replica struct {
	name string // A, B, C
	idx  int    // HAProxy names it r<idx>
	port int
	URL  string
	addr string // 127.0.0.1:port
	env  []string
	bin  string

	mu      sync.Mutex
	lines   []logLine
	raw     []string      // every line, for failure reports
	changed chan struct{} // closed and replaced when a line comes
	gen     int
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	stderr  bytes.Buffer // this run's non-JSON output
}

func newReplica(t *testing.T, bin, name string, idx int, env []string) *replica {
	port := testenv.FreePort(t)
	r := &replica{name: name, idx: idx, port: port, bin: bin, env: env, changed: make(chan struct{}), gen: -1,
		URL: fmt.Sprintf("http://127.0.0.1:%d", port), addr: fmt.Sprintf("127.0.0.1:%d", port)}
	return r
}

// start runs the binary (again) and waits until it serves and has loaded
// MNIST.
func (r *replica) start(t *testing.T) {
	t.Helper()
	r.spawn(t)
	r.waitReady(t)
}

func (r *replica) spawn(t *testing.T) {
	t.Helper()
	cmd := exec.Command(r.bin)
	cmd.Env = append(baseEnv(), append([]string{"PORT=" + strconv.Itoa(r.port)}, r.env...)...)
	// Killed with the test binary, should it die before its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.gen++
	gen := r.gen
	r.cmd, r.exited, r.exitErr = cmd, make(chan struct{}), nil
	r.stderr.Reset()
	exited := r.exited
	r.mu.Unlock()
	collected := make(chan struct{})
	go func() { r.collect(stderr, gen); close(collected) }()
	go func() {
		<-collected
		err := cmd.Wait()
		r.mu.Lock()
		r.exitErr = err
		r.mu.Unlock()
		close(exited)
		r.notify()
	}()
}

// baseEnv is the replicas' environment: the test's, without anything that
// would configure them behind the test's back.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "S3_") || strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "PG") ||
			slices.Contains([]string{"DATABASE_URL", "ROLE", "PORT", "MODELS_DIR", "LOG_LEVEL", "TAKEOVER_AFTER",
				"MAX_CONCURRENT_JOBS", "TRUSTED_PROXIES", "METRICS", "DEBUG_ADDR", "GORACE"}, k) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (r *replica) collect(rd io.Reader, gen int) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		text := sc.Text()
		var m map[string]any
		r.mu.Lock()
		r.raw = append(r.raw, fmt.Sprintf("[%s#%d] %s", r.name, gen, text))
		if json.Unmarshal([]byte(text), &m) == nil {
			at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(m["time"]))
			r.lines = append(r.lines, logLine{m: m, time: at, gen: gen})
		} else {
			r.stderr.WriteString(text + "\n")
		}
		r.mu.Unlock()
		r.notify()
	}
}

func (r *replica) notify() {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// find returns the log lines for which match is true.
func (r *replica) find(match func(logLine) bool) []logLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []logLine
	for _, l := range r.lines {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

func (r *replica) waitReady(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	gen, exited := r.gen, r.exited
	r.mu.Unlock()
	deadline := time.After(readyTimeout)
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if len(r.find(func(l logLine) bool { return l.gen == gen && l.str("msg") == "MNIST loaded" })) > 0 &&
			len(r.find(func(l logLine) bool { return l.gen == gen && l.str("msg") == "serving" })) > 0 {
			return
		}
		select {
		case <-ch:
		case <-exited:
			t.Fatalf("replica %s exited while starting (%v): %s\n%s", r.name, r.exitErr, r.stderr.String(), r.tail(30))
		case <-deadline:
			t.Fatalf("replica %s not ready within %v:\n%s", r.name, readyTimeout, r.tail(30))
		}
	}
}

func (r *replica) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exited == nil {
		return false
	}
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for the exit; it reports a non-zero exit or
// one that takes longer than stopTimeout (then it kills).
func (r *replica) stop(t *testing.T) {
	t.Helper()
	if !r.running() {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		if r.exitErr != nil {
			t.Errorf("replica %s: exit after SIGTERM: %v; stderr: %s", r.name, r.exitErr, r.stderr.String())
		}
	case <-time.After(stopTimeout):
		t.Errorf("replica %s did not exit within %v of SIGTERM; killing it", r.name, stopTimeout)
		r.kill()
	}
}

// kill sends SIGKILL (kill -9) and waits for the exit.
func (r *replica) kill() {
	if !r.running() {
		return
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// tail returns the last n raw log lines.
func (r *replica) tail(n int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.raw[max(0, len(r.raw)-n):], "\n")
}

// ---------------------------------------------------------------- cluster

// cluster is N replicas on one database and one bucket, and the load
// balancers in front of them.
type cluster struct {
	pg   *pgtest.Postgres
	s3   *fakeS3
	reps []*replica
}

// startCluster starts Postgres, the fake S3 and n replicas (A, B, C…), and
// stops them when the test ends (logging the replicas' tails if it failed).
func startCluster(t *testing.T, n int, extraEnv ...string) *cluster {
	t.Helper()
	bin := testenv.ServerBinary(t)
	c := &cluster{pg: pgtest.Start(t), s3: startS3(t)}
	env := append([]string{"DATABASE_URL=" + c.pg.URL(), "LOG_LEVEL=debug", "TAKEOVER_AFTER=3s",
		"MAX_CONCURRENT_JOBS=2", "TRUSTED_PROXIES=127.0.0.1",
		// Every client of the tests is 127.0.0.1: the 60-job burst is one
		// client's, beyond the 50 pending jobs it may have by default.
		"MAX_QUEUED_JOBS_PER_CLIENT=0"}, c.s3.env()...)
	env = append(env, extraEnv...)
	for i := range n {
		c.reps = append(c.reps, newReplica(t, bin, string(rune('A'+i)), i, env))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range c.reps {
				t.Logf("---- replica %s, last log lines ----\n%s", r.name, r.tail(80))
			}
		}
		// SCALE_LOG_DIR=dir keeps every replica's whole log there.
		if dir := os.Getenv("SCALE_LOG_DIR"); dir != "" {
			for _, r := range c.reps {
				r.mu.Lock()
				os.WriteFile(filepath.Join(dir, t.Name()[strings.LastIndex(t.Name(), "/")+1:]+"-"+r.name+".log"),
					[]byte(strings.Join(r.raw, "\n")+"\n"), 0o644)
				r.mu.Unlock()
			}
		}
		var wg sync.WaitGroup
		for _, r := range c.reps {
			wg.Go(func() { r.stop(t) })
		}
		wg.Wait()
	})
	var wg sync.WaitGroup
	for _, r := range c.reps {
		r.spawn(t)
	}
	for _, r := range c.reps {
		wg.Go(func() { r.waitReady(t) })
	}
	wg.Wait()
	return c
}

func (c *cluster) backends() []string {
	var out []string
	for _, r := range c.reps {
		out = append(out, r.addr)
	}
	return out
}

// replicaOf returns the replica whose log line (of any run) matches, and
// the line; nil if none.
func (c *cluster) logged(match func(logLine) bool) (*replica, []logLine) {
	for _, r := range c.reps {
		if ls := r.find(match); len(ls) > 0 {
			return r, ls
		}
	}
	return nil, nil
}

// waitLogged waits until some replica logs a matching line.
func (c *cluster) waitLogged(t *testing.T, what string, timeout time.Duration, match func(logLine) bool) (*replica, logLine) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var chans []chan struct{}
		for _, r := range c.reps {
			r.mu.Lock()
			chans = append(chans, r.changed)
			r.mu.Unlock()
		}
		if r, ls := c.logged(match); r != nil {
			return r, ls[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica logged %s within %v", what, timeout)
		}
		// Any replica's next line, or a tick for the deadline.
		any := make(chan struct{})
		stop := make(chan struct{})
		for _, ch := range chans {
			go func() {
				select {
				case <-ch:
					select {
					case any <- struct{}{}:
					case <-stop:
					}
				case <-stop:
				}
			}()
		}
		select {
		case <-any:
		case <-time.After(time.Until(deadline)):
		}
		close(stop)
	}
}

func isJob(msg, job string) func(logLine) bool {
	return func(l logLine) bool { return l.str("msg") == msg && l.str("job_id") == job }
}

// ---------------------------------------------------------------- HTTP

var httpClient = &http.Client{Timeout: 30 * time.Second}

type resp struct {
	status int
	body   map[string]any
	raw    []byte
	header http.Header
}

func (r resp) String() string { return fmt.Sprintf("HTTP %d %s", r.status, bytes.TrimSpace(r.raw)) }

// call makes one request with client and decodes a JSON object answer.
func call(client *http.Client, method, url string, body any) (resp, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return resp{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return resp{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	out := resp{status: res.StatusCode, raw: raw, header: res.Header}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		json.Unmarshal(raw, &out.body)
	}
	return out, nil
}

// must makes a request that must answer want, and returns the JSON body.
func must(t *testing.T, want int, method, url string, body any) map[string]any {
	t.Helper()
	r, err := call(httpClient, method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if r.status != want {
		t.Fatalf("%s %s: want %d, got %s", method, url, want, r)
	}
	return r.body
}

func createNetwork(t *testing.T, base string, sizes []int, seed int) string {
	t.Helper()
	return createNetworkInit(t, base, sizes, seed, "normal")
}

func createNetworkInit(t *testing.T, base string, sizes []int, seed int, init string) string {
	t.Helper()
	b := must(t, 200, "POST", base+"/api/networks", map[string]any{"layer_sizes": sizes, "seed": seed, "init": init})
	return b["network_id"].(string)
}

// trainParams are the body of POST …/train.
type trainParams struct {
	Epochs    int     `json:"epochs"`
	MiniBatch int     `json:"mini_batch_size"`
	Rate      float64 `json:"learning_rate"`
	Seed      int     `json:"seed"`
}

func train(t *testing.T, base, network string, p trainParams) string {
	t.Helper()
	if p.MiniBatch == 0 {
		p.MiniBatch = 10
	}
	if p.Rate == 0 {
		p.Rate = 3
	}
	b := must(t, 200, "POST", base+"/api/networks/"+network+"/train", p)
	return b["job_id"].(string)
}

func getJob(t *testing.T, base, job string) map[string]any {
	t.Helper()
	return must(t, 200, "GET", base+"/api/training/"+job, nil)
}

// waitJobEnded polls GET /api/training/{job} until it has ended. Polling is
// the client's way of seeing a job's state; the deadline is a guard.
func waitJobEnded(t *testing.T, base, job string, timeout time.Duration) map[string]any {
	t.Helper()
	var j map[string]any
	if !testutil.Poll(timeout, 50*time.Millisecond, func() bool { // 50 ms: the polling interval
		j = getJob(t, base, job)
		switch j["status"] {
		case "completed", "failed", "cancelled":
			return true
		}
		return false
	}) {
		t.Fatalf("job %s still %v after %v", job, j["status"], timeout)
	}
	return j
}

// listIDs returns the ids GET /api/networks lists, sorted.
func listIDs(t *testing.T, base string) []string {
	t.Helper()
	b := must(t, 200, "GET", base+"/api/networks", nil)
	var ids []string
	for _, n := range b["networks"].([]any) {
		ids = append(ids, n.(map[string]any)["network_id"].(string))
	}
	sort.Strings(ids)
	return ids
}

// fromAddress is an HTTP client whose connections come from a loopback
// address of its own (both balancers hash it to pick a replica).
func fromAddress(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// ---------------------------------------------------------------- Socket.IO clients

// clientRec is one line of client.mjs.
type clientRec struct {
	Type      string         `json:"type"`
	ID        string         `json:"id"`
	Transport string         `json:"transport"`
	Name      string         `json:"name"`
	Data      map[string]any `json:"data"`
	Reason    string         `json:"reason"`
	Message   string         `json:"message"`
	At        float64        `json:"at"` // ms since the epoch
}

func (c clientRec) time() time.Time { return time.UnixMicro(int64(c.At * 1000)) }
func (c clientRec) job() string     { s, _ := c.Data["job_id"].(string); return s }
func (c clientRec) epoch() int      { f, _ := c.Data["epoch"].(float64); return int(f) }

// sioClient is a socket.io-client 4.8 in a Node process (client.mjs).
type sioClient struct {
	label string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu      sync.Mutex
	recs    []clientRec
	changed chan struct{}
	done    chan struct{}
	stderr  bytes.Buffer
}

// clientOpts are client.mjs's options. There is no cookie option: like
// Node's socket.io-client by default (docs/WEBSOCKET.md's train.mjs), the
// clients send none, and the balancers must keep them on one replica
// without.
type clientOpts struct {
	Transports   []string `json:"transports,omitempty"`
	LocalAddress string   `json:"localAddress,omitempty"`
	Reconnection bool     `json:"reconnection,omitempty"`
}

// npmMu serialises testenv.NpmCI: clients start in parallel, and two
// npm ci at once in one folder corrupt its node_modules.
var npmMu sync.Mutex

// nodeModules returns node and test/scale, once its packages are there.
func nodeModules(t *testing.T) (node, dir string) {
	t.Helper()
	node = testenv.Tool(t, "node", "Node.js 20+ and npm (the tests run `npm ci` in test/scale)")
	dir = filepath.Join(testenv.ModuleRoot(t), "test", "scale")
	npmMu.Lock()
	defer npmMu.Unlock()
	testenv.NpmCI(t, dir, "socket.io-client")
	return node, dir
}

// connect starts a client and waits until it is connected, and, with the
// default transports, upgraded to WebSocket. It is stopped when owner (t
// or a parent of t) ends.
func connect(t *testing.T, owner testing.TB, label, url string, o clientOpts) *sioClient {
	t.Helper()
	node, dir := nodeModules(t)
	opts, _ := json.Marshal(o)
	c := &sioClient{label: label, changed: make(chan struct{}), done: make(chan struct{})}
	c.cmd = exec.Command(node, filepath.Join(dir, "client.mjs"), url, string(opts))
	c.cmd.Dir = dir
	c.cmd.Stderr = &lockedBuffer{mu: &c.mu, b: &c.stderr}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			var r clientRec
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue
			}
			c.mu.Lock()
			c.recs = append(c.recs, r)
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
		c.cmd.Wait()
		close(c.done)
	}()
	owner.Cleanup(c.close)
	c.waitFor(t, "connect", 30*time.Second, func(rs []clientRec) bool {
		for _, r := range rs {
			if r.Type == "connect_error" {
				t.Fatalf("client %s: connect_error: %s", label, r.Message)
			}
		}
		return c.first("connect") != nil
	})
	if len(o.Transports) == 0 {
		c.waitFor(t, "the upgrade to WebSocket", 30*time.Second, func([]clientRec) bool { return c.first("upgrade") != nil })
		if tr := c.first("upgrade").Transport; tr != "websocket" {
			t.Fatalf("client %s upgraded to %q", label, tr)
		}
	}
	return c
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// close ends the client: its stdin closes and it exits; killed if it
// lingers.
func (c *sioClient) close() {
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// vanish kills the client (SIGKILL): it leaves without a close packet, as
// a browser whose machine sleeps or whose network drops.
func (c *sioClient) vanish() {
	c.cmd.Process.Kill()
	<-c.done
}

func (c *sioClient) snapshot() []clientRec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

func (c *sioClient) first(typ string) *clientRec {
	for _, r := range c.snapshot() {
		if r.Type == typ {
			return &r
		}
	}
	return nil
}

// id is the client's Socket.IO socket id (its first connection's).
func (c *sioClient) id() string { return c.first("connect").ID }

// waitFor waits until cond holds for the client's records.
func (c *sioClient) waitFor(t *testing.T, what string, timeout time.Duration, cond func([]clientRec) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if cond(c.snapshot()) {
			return
		}
		select {
		case <-ch:
		case <-c.done:
			if cond(c.snapshot()) {
				return
			}
			t.Fatalf("client %s exited while waiting for %s; stderr: %s; records: %s", c.label, what, c.stderr.String(), c.describe(""))
		case <-deadline:
			t.Fatalf("client %s: no %s within %v; records: %s", c.label, what, timeout, c.describe(""))
		}
	}
}

// events returns the training events of a job (training_progress left
// out), in arrival order.
func (c *sioClient) events(job string) []clientRec {
	var out []clientRec
	for _, r := range c.snapshot() {
		if r.Type == "event" && r.Name != "training_progress" && r.job() == job {
			out = append(out, r)
		}
	}
	return out
}

// waitFinal waits for the job's training_complete or training_error.
func (c *sioClient) waitFinal(t *testing.T, job string, timeout time.Duration) clientRec {
	t.Helper()
	var final clientRec
	c.waitFor(t, "the final event of job "+job, timeout, func([]clientRec) bool {
		for _, r := range c.events(job) {
			if r.Name == "training_complete" || r.Name == "training_error" {
				final = r
				return true
			}
		}
		return false
	})
	return final
}

// waitEvent waits for an event of the job for which match is true.
func (c *sioClient) waitEvent(t *testing.T, what string, timeout time.Duration, match func(clientRec) bool) clientRec {
	t.Helper()
	var got clientRec
	c.waitFor(t, what, timeout, func(rs []clientRec) bool {
		for _, r := range rs {
			if r.Type == "event" && match(r) {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

// describe summarises the client's records (of one job, if given).
func (c *sioClient) describe(job string) string {
	var parts []string
	for _, r := range c.snapshot() {
		switch {
		case r.Type != "event":
			parts = append(parts, r.Type+"("+r.Transport+r.Reason+r.Message+")")
		case job != "" && r.job() != job:
		case r.Name == "training_update", r.Name == "training_progress":
			parts = append(parts, fmt.Sprintf("%s#%d", r.Name, r.epoch()))
		default:
			parts = append(parts, fmt.Sprintf("%s(%v)", r.Name, r.Data["error"]))
		}
	}
	if len(parts) > 60 {
		parts = append(parts[:30], append([]string{"…"}, parts[len(parts)-30:]...)...)
	}
	return strings.Join(parts, " ")
}

// checkJobEvents asserts that a client saw, for the job, exactly the
// training_update events of epochs first..last, once each and in order, then
// exactly one training_complete (accuracy: the last update's), and nothing
// else. It returns the updates.
func checkJobEvents(t *testing.T, c *sioClient, job string, first, last int) []clientRec {
	t.Helper()
	evs := c.events(job)
	var got, want []string
	for _, e := range evs {
		if e.Name == "training_update" {
			got = append(got, fmt.Sprintf("update#%d", e.epoch()))
		} else {
			got = append(got, e.Name)
		}
	}
	for e := first; e <= last; e++ {
		want = append(want, fmt.Sprintf("update#%d", e))
	}
	want = append(want, "training_complete")
	if !slices.Equal(got, want) {
		t.Fatalf("client %s, job %s: events\n got %v\nwant %v", c.label, job, got, want)
	}
	updates := evs[:len(evs)-1]
	complete := evs[len(evs)-1]
	if complete.Data["accuracy"] != updates[len(updates)-1].Data["accuracy"] || complete.Data["status"] != "completed" {
		t.Errorf("client %s: training_complete %v does not match the last update %v", c.label, complete.Data, updates[len(updates)-1].Data)
	}
	return updates
}

// landedOn returns the replica whose log says the client connected to it.
func (c *cluster) landedOn(t *testing.T, cl *sioClient) *replica {
	t.Helper()
	id := cl.id()
	r, _ := c.waitLogged(t, "the connection of client "+cl.label, 10*time.Second, func(l logLine) bool {
		return l.str("msg") == "socket.io client connected" && l.str("sid") == id
	})
	return r
}

// ---------------------------------------------------------------- numbers

// percentile returns the p-th percentile (0–100) of xs, nearest rank.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
