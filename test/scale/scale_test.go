// Package scale tests the scaled mode end to end: the real binary as three
// replicas on one Postgres (internal/pgtest) and one S3 bucket (gofakes3,
// served by this process over loopback HTTP), behind the deployed nginx and
// HAProxy configurations (internal/lbtest), with the npm socket.io-client
// 4.8 as the browsers' stand-in (client.mjs, one Node process per client,
// sending no cookies, as Node clients do by default), and the Node client
// that docs/WEBSOCKET.md documents (train.mjs, run as the doc has it).
//
// TestScaled runs the scenarios on one set of replicas, in order: each
// leaves the cluster whole for the next (the kill scenario starts its
// victim again). The replicas run with TAKEOVER_AFTER=3s, LOG_LEVEL=debug
// (the tests read "training started", "epoch done" and "socket.io client
// connected" from their JSON logs) and MAX_CONCURRENT_JOBS=2.
//
// Needs Postgres 15, nginx, HAProxy (.ci/install-engines), Node.js 20+ and
// npm; skipped with -short.
package scale

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/test/internal/testenv"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/internal/lbtest"
	"github.com/mnist-go/nnserver/internal/pgtest"
	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/modelfile"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// suite is the state the scenarios share.
type suite struct {
	root    *testing.T // TestScaled: owns what outlives a scenario
	c       *cluster
	nginx   string // URL
	haproxy string
	direct  []*sioClient // one per replica, connected to it directly
	trained string       // a network trained by scenario 1
	deleted string       // the network scenario 4 deleted

	// Correct answers per epoch of the job resumed after the kill, and of
	// its uninterrupted twin.
	resumedCorrect, twinCorrect []any

	latMu   sync.Mutex
	latency []float64 // ms: "epoch done" on the training replica → a client of another replica
	relayed []float64 // ms: "epoch done" → "event sent" on the client's replica
}

func TestScaled(t *testing.T) {
	if testing.Short() {
		t.Skip("scaled mode: starts Postgres, a fake S3, three replicas and two load balancers; skipped with -short")
	}
	testenv.Tool(t, "node", "Node.js 20+ and npm")
	lbtest.Binary(t, "nginx")
	lbtest.Binary(t, "haproxy")
	testenv.Serial(t)
	began := time.Now()
	s := &suite{root: t, c: startCluster(t, 3)}
	s.nginx = lbtest.StartNginx(t, s.c.backends())
	s.haproxy = lbtest.StartHAProxy(t, s.c.backends())
	t.Logf("cluster up in %v: Postgres on %d, S3 at %s, replicas %s %s %s, nginx %s, haproxy %s",
		time.Since(began).Round(time.Millisecond), s.c.pg.Port(), s.c.s3.srv.URL,
		s.c.reps[0].URL, s.c.reps[1].URL, s.c.reps[2].URL, s.nginx, s.haproxy)
	s.connectDirect(t)

	for _, sc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"1_events_and_reads_agree", s.eventsAndReads},
		{"documented_client_through_each_balancer", s.documentedClient},
		{"3_one_job_per_network", s.oneJobPerNetwork},
		{"4_delete_while_training", s.deleteWhileTraining},
		{"burst_spreads", s.burst},
		{"2_kill_mid_epoch", s.killMidEpoch},
		{"resumed_job_trains_as_uninterrupted", s.resumedIsReproducible},
		{"layers_network_resumed_elsewhere", s.layersAcrossReplicas},
		{"6_postgres_restarts", s.postgresRestarts},
		{"5_restart_every_replica", s.restartAll},
	} {
		// SCALE_ONLY=regexp runs the scenarios it matches (and whatever
		// they need from those before them is then missing: for debugging).
		if only := os.Getenv("SCALE_ONLY"); only != "" && !regexp.MustCompile(only).MatchString(sc.name) {
			continue
		}
		start := time.Now()
		ok := t.Run(sc.name, sc.f)
		t.Logf("%s: %v in %v", sc.name, map[bool]string{true: "ok", false: "FAILED"}[ok], time.Since(start).Round(time.Millisecond))
	}
	s.reportLatency(t)
}

// connectDirect (re)connects one client straight to each replica.
func (s *suite) connectDirect(t *testing.T) {
	t.Helper()
	s.direct = make([]*sioClient, len(s.c.reps))
	var wg sync.WaitGroup
	for i, r := range s.c.reps {
		wg.Go(func() { s.direct[i] = connect(t, s.root, "direct-"+r.name, r.URL, clientOpts{}) })
	}
	wg.Wait()
}

// barrier trains a one-epoch job and waits until every client has its
// training_complete. Events reach a client in the order they were
// published, so once it has, it has every event published before: what a
// test then finds missing or extra is so for good, with no quiet period.
func (s *suite) barrier(t *testing.T, clients ...*sioClient) {
	t.Helper()
	net := createNetwork(t, s.c.reps[0].URL, []int{784, 10, 10}, 99)
	job := train(t, s.c.reps[0].URL, net, trainParams{Epochs: 1, Seed: 1})
	for _, c := range clients {
		if f := c.waitFinal(t, job, eventTimeout); f.Name != "training_complete" {
			t.Fatalf("barrier job: %s got %s %v", c.label, f.Name, f.Data)
		}
	}
	must(t, 200, "DELETE", s.c.reps[0].URL+"/api/networks/"+net, nil)
}

// trainer returns the replica that started a job (its latest start).
func (s *suite) trainer(t *testing.T, job string) *replica {
	t.Helper()
	r, _ := s.c.waitLogged(t, "training started for job "+job, eventTimeout, isJob("training started", job))
	return r
}

// recordLatency adds, for every training_update of the jobs that a client
// of another replica than the training one received, the time from the
// training replica's "epoch done" line (written right after the event is
// committed to Postgres) to its arrival at the client, and to the client's
// replica emitting it ("event sent").
func (s *suite) recordLatency(t *testing.T, clients map[*replica]*sioClient, jobs ...string) {
	t.Helper()
	for _, job := range jobs {
		done := map[int]logLine{}
		var from *replica
		for _, r := range s.c.reps {
			for _, l := range r.find(isJob("epoch done", job)) {
				done[int(l.num("epoch"))] = l
				from = r
			}
		}
		for on, c := range clients {
			if on == from {
				continue
			}
			sent := map[int]time.Time{}
			for _, l := range on.find(func(l logLine) bool {
				p, _ := l.m["payload"].(map[string]any)
				return l.str("msg") == "event sent" && l.str("event") == "training_update" && p["job_id"] == job
			}) {
				p := l.m["payload"].(map[string]any)
				at, _ := time.Parse(time.RFC3339Nano, l.str("emitted_at"))
				sent[int(p["epoch"].(float64))] = at
			}
			for _, e := range c.events(job) {
				d, ok := done[e.epoch()]
				if e.Name != "training_update" || !ok {
					continue
				}
				s.latMu.Lock()
				s.latency = append(s.latency, float64(e.time().Sub(d.time).Microseconds())/1000)
				if at, ok := sent[e.epoch()]; ok {
					s.relayed = append(s.relayed, float64(at.Sub(d.time).Microseconds())/1000)
				}
				s.latMu.Unlock()
			}
		}
	}
}

func (s *suite) directByReplica() map[*replica]*sioClient {
	m := map[*replica]*sioClient{}
	for i, r := range s.c.reps {
		m[r] = s.direct[i]
	}
	return m
}

func (s *suite) reportLatency(t *testing.T) {
	s.latMu.Lock()
	defer s.latMu.Unlock()
	t.Logf("relay latency, training replica's \"epoch done\" → client on another replica: n=%d p50=%.1f ms p99=%.1f ms max=%.1f ms",
		len(s.latency), percentile(s.latency, 50), percentile(s.latency, 99), percentile(s.latency, 100))
	t.Logf("relay latency, \"epoch done\" → the other replica's \"event sent\": n=%d p50=%.1f ms p99=%.1f ms",
		len(s.relayed), percentile(s.relayed, 50), percentile(s.relayed, 99))
}

// ------------------------------------------------------------ scenario 1

// addressFor finds a loopback source address that the balancer at lb
// (named name), hashing the client's address, sends to replica want: a
// request from each candidate for a path of its own, and the replica that
// logged it. Each replica must log the client's address, not the
// balancer's (TRUSTED_PROXIES=127.0.0.1).
func (s *suite) addressFor(t *testing.T, name, lb string, want *replica) string {
	t.Helper()
	for i := 2; i < 100; i++ {
		addr := fmt.Sprintf("127.0.0.%d", i)
		probe := uuid.NewString()
		r, err := call(fromAddress(addr), "GET", lb+"/api/training/"+probe, nil)
		if err != nil || r.status != 404 {
			t.Fatalf("probe from %s through %s: %v %v", addr, name, r, err)
		}
		got, line := s.c.waitLogged(t, "the probe from "+addr, 10*time.Second, func(l logLine) bool {
			return l.str("msg") == "http request" && strings.HasSuffix(l.str("path"), probe)
		})
		if line.str("remote") != addr {
			t.Errorf("replica %s logged the request from %s (through %s, TRUSTED_PROXIES=127.0.0.1) as from %q",
				got.name, addr, name, line.str("remote"))
		}
		if got == want {
			return addr
		}
	}
	t.Fatalf("no address of 127.0.0.2-99 goes to replica %s through %s", want.name, name)
	return ""
}

// eventsAndReads is scenario 1: a network created on A and trained through
// B; clients of C (through each balancer from an address it sends to C,
// upgraded to WebSocket and polling only, none with a cookie, and
// directly) receive every event once, in order; GET /api/training/{id}
// agrees on every replica and through both balancers whenever it is
// sampled.
func (s *suite) eventsAndReads(t *testing.T) {
	A, B, C := s.c.reps[0], s.c.reps[1], s.c.reps[2]
	clients := map[string]*sioClient{"direct-C": s.direct[2]}
	for _, lb := range []struct{ name, url string }{{"nginx", s.nginx}, {"haproxy", s.haproxy}} {
		addr := s.addressFor(t, lb.name, lb.url, C)
		for _, o := range []clientOpts{{LocalAddress: addr}, {LocalAddress: addr, Transports: []string{"polling"}}} {
			label := lb.name + "-from-" + addr
			if o.Transports != nil {
				label = lb.name + "-polling-from-" + addr
			}
			clients[label] = connect(t, t, label, lb.url, o)
		}
	}
	for name, cl := range clients {
		if on := s.c.landedOn(t, cl); on != C {
			t.Errorf("client %s should be on C, is on %s", name, on.name)
		}
	}

	net := createNetwork(t, A.URL, []int{784, 100, 10}, 11)
	const epochs = 6
	job := train(t, B.URL, net, trainParams{Epochs: epochs, Seed: 12})
	trainer := s.trainer(t, job)
	t.Logf("job %s trains on %s", job, trainer.name)

	// Sample: A, then B, C, nginx, HAProxy, then A again. Job records only
	// move forward, so when A's two reads agree nothing changed between
	// them, and every read between must agree with them.
	bases := []string{A.URL, B.URL, C.URL, s.nginx, s.haproxy}
	type view struct {
		Status   any
		Epoch    any
		Progress any
		Accuracy any
	}
	read := func(base string) view {
		j := getJob(t, base, job)
		return view{j["status"], j["epoch"], j["progress"], j["accuracy"]}
	}
	var agreed, training, moved int
	epochsSeen := map[any]bool{}
	// Sample one after the other, until the job ends.
	if !testutil.Poll(2*eventTimeout, 0, func() bool {
		first := read(A.URL)
		views := []view{first}
		for _, b := range bases[1:] {
			views = append(views, read(b))
		}
		if last := read(A.URL); last != first {
			moved++
			return false
		}
		for i, v := range views {
			if v != first {
				t.Fatalf("GET /api/training/%s disagrees: %s says %+v, %s says %+v", job, bases[0], first, bases[i], v)
			}
		}
		agreed++
		if first.Status == "training" {
			training++
			epochsSeen[first.Epoch] = true
		}
		if first.Status == "completed" || first.Status == "failed" {
			if first.Status != "completed" || first.Epoch != float64(epochs) {
				t.Fatalf("job ended %+v", first)
			}
			return true
		}
		return false
	}) {
		t.Fatalf("job %s not ended after %v", job, 2*eventTimeout)
	}
	t.Logf("GET /api/training on A, B, C, nginx, HAProxy: %d samples agreed (%d while training, at %d different epochs), %d skipped because an epoch ended mid-sample",
		agreed, training, len(epochsSeen), moved)
	if training < 3 || len(epochsSeen) < 2 {
		t.Errorf("too few samples while the job trained (%d, at %d epochs): the check saw too little", training, len(epochsSeen))
	}

	all := slices.Collect(func(yield func(*sioClient) bool) {
		for _, c := range clients {
			yield(c)
		}
	})
	all = append(all, s.direct[0], s.direct[1])
	s.barrier(t, all...)
	var ref []clientRec
	for _, c := range all {
		ups := checkJobEvents(t, c, job, 1, epochs)
		if ref == nil {
			ref = ups
			continue
		}
		for i := range ups {
			if fmt.Sprint(ups[i].Data) != fmt.Sprint(ref[i].Data) {
				t.Errorf("client %s got update %v, another %v", c.label, ups[i].Data, ref[i].Data)
			}
		}
	}
	final := getJob(t, C.URL, job)
	if final["accuracy"] != ref[epochs-1].Data["accuracy"] {
		t.Errorf("job accuracy %v, last update %v", final["accuracy"], ref[epochs-1].Data["accuracy"])
	}
	s.trained = net
	s.recordLatency(t, s.directByReplica(), job)
}

// ------------------------------------------------------------ scenario 3

// oneJobPerNetwork is scenario 3: two train requests for one network sent
// at once through A and through B run one after the other.
func (s *suite) oneJobPerNetwork(t *testing.T) {
	A, B, C := s.c.reps[0], s.c.reps[1], s.c.reps[2]
	net := createNetwork(t, s.haproxy, []int{784, 30, 10}, 21)
	jobs := make([]string, 2)
	var wg sync.WaitGroup
	for i, base := range []string{A.URL, B.URL} {
		wg.Go(func() { jobs[i] = train(t, base, net, trainParams{Epochs: 8, Seed: 22 + i}) })
	}
	wg.Wait()
	// Which went first is the queue's to say: the one that starts.
	firstRep, firstLine := s.c.waitLogged(t, "a start of either job", eventTimeout, func(l logLine) bool {
		return l.str("msg") == "training started" && (l.str("job_id") == jobs[0] || l.str("job_id") == jobs[1])
	})
	first, second := firstLine.str("job_id"), jobs[0]
	if first == jobs[0] {
		second = jobs[1]
	}
	t.Logf("first job %s started on %s", first, firstRep.name)

	// GET through C: the second is pending while the first trains (read
	// first, second, first: the first trained throughout).
	var pendingSeen int
	if !testutil.Poll(2*eventTimeout, 0, func() bool {
		j1 := getJob(t, C.URL, first)
		j2 := getJob(t, C.URL, second)
		j1b := getJob(t, s.nginx, first)
		if j1["status"] == "training" && j1b["status"] == "training" {
			if j2["status"] != "pending" {
				t.Fatalf("job %s is %v while %s trains (%v): two jobs of one network at once", second, j2["status"], first, j1)
			}
			pendingSeen++
		}
		return j1b["status"] != "training" && j1b["status"] != "pending"
	}) {
		t.Fatalf("job %s not ended after %v", first, 2*eventTimeout)
	}
	if pendingSeen == 0 {
		t.Error("never saw the second job pending while the first trained")
	}
	waitJobEnded(t, B.URL, second, eventTimeout)

	// The logs: the second started after the first completed.
	_, firstDone := s.c.waitLogged(t, "the first job's end", eventTimeout, isJob("training completed", first))
	secondRep, secondStart := s.c.waitLogged(t, "the second job's start", eventTimeout, isJob("training started", second))
	if !secondStart.time.After(firstDone.time) {
		t.Errorf("job %s started on %s at %v, before job %s completed at %v", second, secondRep.name, secondStart.time, first, firstDone.time)
	}
	t.Logf("second job started on %s %v after the first completed (GET saw it pending %d times)",
		secondRep.name, secondStart.time.Sub(firstDone.time).Round(time.Microsecond), pendingSeen)

	// The events: every client had all of the first's before any of the
	// second's.
	for _, c := range s.direct {
		c.waitFinal(t, second, eventTimeout)
		checkJobEvents(t, c, first, 1, 8)
		checkJobEvents(t, c, second, 1, 8)
		var order []string
		for _, r := range c.snapshot() {
			if r.Type == "event" && (r.job() == first || r.job() == second) && r.Name != "training_progress" {
				order = append(order, r.job())
			}
		}
		if i := slices.Index(order, second); i != 9 {
			t.Errorf("client %s: the second job's first event came at %d, want 9 (after the first's 9 events)", c.label, i)
		}
	}
	s.recordLatency(t, s.directByReplica(), first, second)
}

// ------------------------------------------------------------ scenario 4

// deleteWhileTraining is scenario 4: a network deleted through A while its
// job (sent through B) trains fails the job with one training_error, is
// gone from every replica, and leaves nothing in the bucket.
func (s *suite) deleteWhileTraining(t *testing.T) {
	A, B := s.c.reps[0], s.c.reps[1]
	net := createNetwork(t, B.URL, []int{784, 30, 10}, 31)
	job := train(t, B.URL, net, trainParams{Epochs: 40, Seed: 32})
	trainer := s.trainer(t, job)
	s.direct[0].waitEvent(t, "update 2 of job "+job, eventTimeout, func(r clientRec) bool {
		return r.job() == job && r.Name == "training_update" && r.epoch() == 2
	})
	if !slices.Contains(s.c.s3.keys(t), s3Prefix+net+".npz") {
		t.Fatalf("the network's model is not in the bucket while it trains: %v", s.c.s3.keys(t))
	}
	must(t, 200, "DELETE", A.URL+"/api/networks/"+net, nil)
	t.Logf("deleted through A while it trained on %s", trainer.name)

	s.barrier(t, s.direct...)
	for _, c := range s.direct {
		evs := c.events(job)
		last := evs[len(evs)-1]
		for _, e := range evs[:len(evs)-1] {
			if e.Name != "training_update" {
				t.Errorf("client %s: %s before the end: %s", c.label, e.Name, c.describe(job))
			}
		}
		if last.Name != "training_error" || last.Data["error"] != "the network was deleted" || last.Data["status"] != "failed" {
			t.Errorf("client %s: the job's last event is %s %v, want one training_error \"the network was deleted\": %s",
				c.label, last.Name, last.Data, c.describe(job))
		}
	}
	for _, r := range s.c.reps {
		j := getJob(t, r.URL, job)
		if j["status"] != "failed" || j["error"] != "the network was deleted" {
			t.Errorf("%s: job %v", r.name, j)
		}
		if slices.Contains(listIDs(t, r.URL), net) {
			t.Errorf("%s still lists the deleted network", r.name)
		}
		must(t, 404, "GET", r.URL+"/api/networks/"+net+"/successful_example", nil)
	}
	for _, k := range s.c.s3.keys(t) {
		if strings.Contains(k, net) {
			t.Errorf("the bucket still holds %s after the delete", k)
		}
	}
	s.deleted = net
}

// ------------------------------------------------------------ burst

// burst: 60 one-epoch jobs over 6 networks, sent through both balancers at
// once, run on every replica, each once, and all complete.
func (s *suite) burst(t *testing.T) {
	const networks, jobsN = 6, 60
	var nets []string
	for i := range networks {
		nets = append(nets, createNetwork(t, s.haproxy, []int{784, 30, 10}, 40+i))
	}
	jobs := make([]string, jobsN)
	began := time.Now()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= jobsN {
					return
				}
				base := s.haproxy
				if i%2 == 1 {
					base = s.nginx
				}
				jobs[i] = train(t, base, nets[i%networks], trainParams{Epochs: 1, Seed: 100 + i})
			}
		})
	}
	wg.Wait()
	t.Logf("60 train requests answered in %v", time.Since(began).Round(time.Millisecond))
	for _, job := range jobs {
		for _, c := range s.direct {
			if f := c.waitFinal(t, job, 2*eventTimeout); f.Name != "training_complete" {
				t.Fatalf("client %s: job %s ended with %s %v", c.label, job, f.Name, f.Data)
			}
		}
	}
	t.Logf("all 60 completed %v after the first request", time.Since(began).Round(time.Millisecond))
	s.barrier(t, s.direct...)

	per := map[string]int{}
	for _, job := range jobs {
		n := 0
		for _, r := range s.c.reps {
			if k := len(r.find(isJob("training started", job))); k > 0 {
				n += k
				per[r.name] += k
			}
		}
		if n != 1 {
			t.Errorf("job %s started %d times", job, n)
		}
		for _, c := range s.direct {
			checkJobEvents(t, c, job, 1, 1)
		}
	}
	t.Logf("burst: jobs started per replica: A=%d B=%d C=%d", per["A"], per["B"], per["C"])
	for _, r := range s.c.reps {
		if per[r.name] == 0 {
			t.Errorf("replica %s trained none of the 60 jobs", r.name)
		}
	}
	s.recordLatency(t, s.directByReplica(), jobs...)
}

// ------------------------------------------------------------ scenario 2

// killMidEpoch is scenario 2: the replica training a 3-epoch job is killed
// (-9) during its second epoch (once a training_progress of epoch 2 reached
// a client); another replica takes it over and resumes it from its last
// saved epoch, 1 (its "training started" line says epochs_done=1 and the
// network at epoch 1). The clients of the surviving replicas see
// training_update for epochs 1, 2, 3 once each, in order, with
// network_epoch 1, 2, 3, and one training_complete: epoch 2, lost mid-way,
// was never reported before the kill, so no epoch is reported twice. The
// job's history lists epochs 1, 2, 3. The model downloaded through the API
// decodes (modelfile.Decode), has 3 epochs of history, and classifies exactly
// the "correct" count of the last update on the MNIST test set.
func (s *suite) killMidEpoch(t *testing.T) {
	net := createNetworkInit(t, s.haproxy, []int{784, 600, 10}, 51, "scaled")
	const epochs = 3
	// Clients through HAProxy, one on each replica, that reconnect by
	// themselves: the victim's finds another replica.
	var lbClients []*sioClient
	for _, r := range s.c.reps {
		addr := s.addressFor(t, "haproxy", s.haproxy, r)
		lbClients = append(lbClients, connect(t, t, "haproxy-from-"+addr, s.haproxy, clientOpts{LocalAddress: addr, Reconnection: true}))
	}
	job := train(t, s.nginx, net, trainParams{Epochs: epochs, Seed: 52, Rate: 0.5})
	victim := s.trainer(t, job)
	var watcher *sioClient // a client of a survivor
	for i, r := range s.c.reps {
		if r != victim {
			watcher = s.direct[i]
			break
		}
	}
	// Mid-epoch: a training_progress of epoch 2 says it has run for a
	// second (an epoch here takes 1.5–3 s). On a machine fast enough to
	// finish it sooner, update 2 comes first, and the kill lands at the
	// start of epoch 3 instead.
	at := watcher.waitEvent(t, "training_progress of epoch 2, or update 2", 2*eventTimeout, func(r clientRec) bool {
		return r.job() == job && (r.Name == "training_progress" && r.epoch() == 2 || r.Name == "training_update" && r.epoch() == 2)
	})
	killed := time.Now()
	victim.kill()
	saved := 1 // the epochs finished, and reported, before the kill
	if at.Name == "training_update" {
		saved = 2
	}
	t.Logf("killed %s (kill -9) during epoch %d of job %s (on %s #%d)", victim.name, saved+1, job, at.Name, at.epoch())

	taker, takeover := s.c.waitLogged(t, "the takeover of job "+job, 2*eventTimeout, isJob("job queue: taking over a job whose worker is gone", job))
	resumer, resumed := s.c.waitLogged(t, "the resumption of job "+job, 2*eventTimeout, func(l logLine) bool {
		return isJob("training started", job)(l) && l.time.After(killed)
	})
	if resumer == victim {
		t.Fatalf("the killed replica resumed the job")
	}
	if resumed.num("epochs_done") != float64(saved) || resumed.num("from_epoch") != float64(saved) {
		t.Errorf("resumed from epochs_done=%v (network at epoch %v), want %d: the last saved epoch", resumed.m["epochs_done"], resumed.m["from_epoch"], saved)
	}
	for i, r := range s.c.reps {
		if r == victim {
			continue
		}
		c := s.direct[i]
		if f := c.waitFinal(t, job, 2*eventTimeout); f.Name != "training_complete" {
			t.Fatalf("client %s: %s %v", c.label, f.Name, f.Data)
		}
	}
	var firstAfter time.Time
	for _, e := range watcher.events(job) {
		if e.Name == "training_update" && e.epoch() == saved+1 {
			firstAfter = e.time()
		}
	}
	t.Logf("takeover: %s took the job over %v after the kill (TAKEOVER_AFTER=3s), %s resumed it %v after, the lost epoch's update reached a client %v after",
		taker.name, takeover.time.Sub(killed).Round(time.Millisecond), resumer.name, resumed.time.Sub(killed).Round(time.Millisecond),
		firstAfter.Sub(killed).Round(time.Millisecond))

	// HAProxy's client of the victim reconnects by itself, through
	// HAProxy, to a survivor: from the same address, which the victim no
	// longer serves.
	for _, c := range lbClients {
		if s.c.landedOn(t, c) != victim {
			continue
		}
		var again clientRec
		c.waitFor(t, "a reconnection after the kill", 2*eventTimeout, func(rs []clientRec) bool {
			for _, r := range rs {
				if r.Type == "connect" && r.time().After(killed) {
					again = r
					return true
				}
			}
			return false
		})
		on, _ := s.c.waitLogged(t, "the reconnection of client "+c.label, 10*time.Second, func(l logLine) bool {
			return l.str("msg") == "socket.io client connected" && l.str("sid") == again.ID
		})
		if on == victim {
			t.Errorf("HAProxy client %s reconnected to the killed replica %s", c.label, victim.name)
		}
		t.Logf("HAProxy client %s was on %s: reconnected to %s %v after the kill; events of the job it saw: %s",
			c.label, victim.name, on.name, again.time().Sub(killed).Round(time.Millisecond), c.describe(job))
	}

	// Restart the victim now, so that the barrier job can run anywhere.
	victim.start(t)
	var survivors []*sioClient
	for i, r := range s.c.reps {
		if r != victim {
			survivors = append(survivors, s.direct[i])
		}
	}
	s.barrier(t, survivors...)
	var last clientRec
	for _, c := range survivors {
		ups := checkJobEvents(t, c, job, 1, epochs)
		for i, u := range ups {
			if u.Data["network_epoch"] != float64(i+1) {
				t.Errorf("client %s: update %d has network_epoch %v", c.label, i+1, u.Data["network_epoch"])
			}
		}
		last = ups[len(ups)-1]
	}
	j := getJob(t, s.haproxy, job)
	var hist []any
	for _, h := range j["history"].([]any) {
		hist = append(hist, h.(map[string]any)["epoch"])
	}
	if j["status"] != "completed" || fmt.Sprint(hist) != "[1 2 3]" {
		t.Errorf("job after the takeover: status %v, history epochs %v", j["status"], hist)
	}

	// The model in S3, through the API: it decodes, and scores on the test
	// set what the last event said.
	res, err := httpClient.Get(s.haproxy + "/api/networks/" + net + "/download")
	if err != nil {
		t.Fatal(err)
	}
	model, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("download: %d %v", res.StatusCode, err)
	}
	meta, nw, err := modelfile.Decode(bytes.NewReader(model), int64(len(model)), modelfile.Limits{})
	if err != nil {
		t.Fatalf("the downloaded model does not decode: %v", err)
	}
	ds, err := mnist.LoadEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	correct, err := nw.Evaluate(ds.Test)
	if err != nil {
		t.Fatal(err)
	}
	if float64(correct) != last.Data["correct"] || math.Abs(float64(correct)/10000-last.Data["accuracy"].(float64)) > 1e-12 {
		t.Errorf("the stored model classifies %d of 10000 correctly; the last event said %v (%v)", correct, last.Data["correct"], last.Data["accuracy"])
	}
	t.Logf("model from S3: %d bytes, %d epochs in its history, %d/10000 correct, as the last event said", len(model), len(meta.History), correct)
	if len(meta.History) != epochs {
		t.Errorf("the stored model's history has %d epochs, want %d", len(meta.History), epochs)
	}

	// Seeded training is reproducible, bit for bit (docs/API.md): a twin
	// of the network (same layers, init and seed) trained with the same
	// parameters without interruption must score the same at every epoch.
	twin := createNetworkInit(t, s.haproxy, []int{784, 600, 10}, 51, "scaled")
	twinJob := train(t, s.haproxy, twin, trainParams{Epochs: epochs, Seed: 52, Rate: 0.5})
	survivors[0].waitFinal(t, twinJob, 2*eventTimeout)
	var got, want []any
	for _, c := range []*sioClient{survivors[0]} {
		for _, u := range checkJobEvents(t, c, job, 1, epochs) {
			got = append(got, u.Data["correct"])
		}
		for _, u := range checkJobEvents(t, c, twinJob, 1, epochs) {
			want = append(want, u.Data["correct"])
		}
	}
	s.resumedCorrect, s.twinCorrect = got, want

	// The victim's clients are gone with it: connect a new one.
	for i, r := range s.c.reps {
		if r == victim {
			s.direct[i] = connect(t, s.root, "direct-"+r.name+"-again", r.URL, clientOpts{})
		}
	}
}

// layersAcrossReplicas: a layers network (conv, pool, dense with dropout,
// softmax) in scaled mode. Made through one balancer, every replica
// describes it alike (its layers and output shapes from the catalog); a
// job with dropout and L2 started through the other balancer loses its
// replica (kill -9) after its first epoch, another replica resumes it, and
// it ends as its uninterrupted twin (same layers, init and seeds) does:
// the same test score every epoch, and the same first-layer kernels, read
// from every replica.
func (s *suite) layersAcrossReplicas(t *testing.T) {
	layers := []map[string]any{
		{"type": "conv", "filters": 4, "size": 5, "activation": "relu"},
		{"type": "pool", "size": 2},
		{"type": "dense", "size": 20, "activation": "relu", "dropout": 0.3},
		{"type": "softmax", "size": 10},
	}
	create := func() string {
		t.Helper()
		b := must(t, 200, "POST", s.haproxy+"/api/networks", map[string]any{"layers": layers, "init": "scaled", "seed": 61})
		return b["network_id"].(string)
	}
	net := create()
	for _, r := range s.c.reps {
		n := must(t, 200, "GET", r.URL+"/api/networks/"+net, nil)
		ls, _ := n["layers"].([]any)
		if fmt.Sprint(n["architecture"]) != "[784 2304 576 20 10]" || len(ls) != len(layers) ||
			fmt.Sprint(ls[1].(map[string]any)["output_shape"]) != "[4 12 12]" {
			t.Fatalf("%s describes the network as %v, layers %v", r.name, n["architecture"], n["layers"])
		}
	}
	const epochs = 3
	params := map[string]any{"epochs": epochs, "seed": 62, "lambda": 0.1, "mini_batch_size": 10}
	job := must(t, 200, "POST", s.nginx+"/api/networks/"+net+"/train", params)["job_id"].(string)
	victim := s.trainer(t, job)
	var watcher *sioClient // a client of a survivor
	for i, r := range s.c.reps {
		if r != victim {
			watcher = s.direct[i]
			break
		}
	}
	watcher.waitEvent(t, "update 1", 2*eventTimeout, func(r clientRec) bool {
		return r.job() == job && r.Name == "training_update" && r.epoch() == 1
	})
	killed := time.Now()
	victim.kill()
	if f := watcher.waitFinal(t, job, 3*eventTimeout); f.Name != "training_complete" {
		t.Fatalf("the resumed job: %s %v", f.Name, f.Data)
	}
	if resumer, _ := s.c.waitLogged(t, "the resumption of job "+job, eventTimeout, func(l logLine) bool {
		return isJob("training started", job)(l) && l.time.After(killed)
	}); resumer == victim {
		t.Errorf("the killed replica resumed the job")
	}
	victim.start(t)
	for i, r := range s.c.reps {
		if r == victim {
			s.direct[i] = connect(t, s.root, "direct-"+r.name+"-after-layers", r.URL, clientOpts{})
		}
	}

	twin := create()
	twinJob := must(t, 200, "POST", s.haproxy+"/api/networks/"+twin+"/train", params)["job_id"].(string)
	if f := watcher.waitFinal(t, twinJob, 3*eventTimeout); f.Name != "training_complete" {
		t.Fatalf("the twin's job: %s %v", f.Name, f.Data)
	}
	var got, want []any
	for _, u := range checkJobEvents(t, watcher, job, 1, epochs) {
		got = append(got, u.Data["correct"])
	}
	for _, u := range checkJobEvents(t, watcher, twinJob, 1, epochs) {
		want = append(want, u.Data["correct"])
	}
	t.Logf("layers network, correct per epoch: resumed after the kill %v, uninterrupted twin %v", got, want)
	if !slices.Equal(got, want) {
		t.Errorf("the resumed layers job does not train as its uninterrupted twin: correct per epoch %v, want %v", got, want)
	}
	twinKernels := fmt.Sprint(must(t, 200, "GET", s.haproxy+"/api/networks/"+twin+"/kernels", nil)["kernels"])
	for _, r := range s.c.reps {
		k := must(t, 200, "GET", r.URL+"/api/networks/"+net+"/kernels", nil)
		if k["epochs_trained"] != float64(epochs) || fmt.Sprint(k["kernels"]) != twinKernels {
			t.Errorf("%s: the resumed network's kernels after %v epochs differ from its twin's", r.name, k["epochs_trained"])
		}
	}
}

// ------------------------------------------------------------ scenario 6

// probeResult is one request made while Postgres restarted.
type probeResult struct {
	what   string
	status int
	json   bool
	err    error
	took   time.Duration
}

// hammer sends GET requests to every replica and both balancers, each
// bounded by a client timeout, until stop is closed; then returns what
// they answered.
func (s *suite) hammer(job string, stop <-chan struct{}) <-chan []probeResult {
	out := make(chan []probeResult, 1)
	client := &http.Client{Timeout: 8 * time.Second}
	bases := []string{s.c.reps[0].URL, s.c.reps[1].URL, s.c.reps[2].URL, s.nginx, s.haproxy}
	paths := []string{"/api/status", "/api/networks", "/api/training/" + job}
	go func() {
		var mu sync.Mutex
		var all []probeResult
		var wg sync.WaitGroup
		for _, b := range bases {
			wg.Go(func() {
				for {
					for _, p := range paths {
						select {
						case <-stop:
							return
						default:
						}
						start := time.Now()
						r, err := call(client, "GET", b+p, nil)
						pr := probeResult{what: "GET " + b + p, status: r.status, err: err, took: time.Since(start),
							json: r.body != nil && (r.status == 200 || r.body["error"] != nil)}
						mu.Lock()
						all = append(all, pr)
						mu.Unlock()
					}
					time.Sleep(20 * time.Millisecond) // the request interval of each prober
				}
			})
		}
		wg.Wait()
		out <- all
	}()
	return out
}

// checkProbes asserts that every request answered in time, 200 or a JSON
// 503.
func checkProbes(t *testing.T, label string, rs []probeResult) {
	t.Helper()
	counts := map[int]int{}
	var slowest time.Duration
	for _, r := range rs {
		slowest = max(slowest, r.took)
		if r.err != nil {
			t.Errorf("%s: %s: %v after %v (a request must answer, 200 or a JSON 503, within its 8 s timeout)", label, r.what, r.err, r.took)
			continue
		}
		counts[r.status]++
		if !(r.status == 200 || r.status == 503) || !r.json {
			t.Errorf("%s: %s answered %d (JSON %v), want 200 or a JSON 503", label, r.what, r.status, r.json)
		}
	}
	t.Logf("%s: %d requests, statuses %v, slowest %v", label, len(rs), counts, slowest.Round(time.Millisecond))
}

// waitAll200 waits until every replica answers 200 to the probes' paths.
func (s *suite) waitAll200(t *testing.T, job string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	type probe struct {
		r    *replica
		path string
	}
	var probes []probe // those still to answer 200, in turn
	for _, r := range s.c.reps {
		for _, p := range []string{"/api/status", "/api/networks", "/api/training/" + job} {
			probes = append(probes, probe{r, p})
		}
	}
	var res resp
	var err error
	if !testutil.Poll(timeout, 50*time.Millisecond, func() bool { // 50 ms: the polling interval
		for len(probes) > 0 {
			res, err = call(httpClient, "GET", probes[0].r.URL+probes[0].path, nil)
			if err != nil || res.status != 200 {
				return false
			}
			probes = probes[1:]
		}
		return true
	}) {
		t.Fatalf("%s: GET %s still %v %v %v after Postgres restarted", probes[0].r.name, probes[0].path, res.status, err, timeout)
	}
	return time.Since(start)
}

// waitAll503 waits until every replica answers GET /api/training/{job}
// with a JSON 503 (Postgres is down), and returns how long that took.
func (s *suite) waitAll503(t *testing.T, job string) time.Duration {
	t.Helper()
	start := time.Now()
	client := &http.Client{Timeout: 8 * time.Second}
	reps := s.c.reps // those still to answer 503, in turn
	var res resp
	if !testutil.Poll(30*time.Second, 50*time.Millisecond, func() bool { // 50 ms: the polling interval
		for len(reps) > 0 {
			r := reps[0]
			var err error
			res, err = call(client, "GET", r.URL+"/api/training/"+job, nil)
			if err != nil {
				t.Fatalf("%s: GET /api/training/%s with Postgres down: %v", r.name, job, err)
			}
			if res.status != 503 {
				return false
			}
			if res.body == nil || res.body["error"] == nil || res.header.Get("Retry-After") == "" {
				t.Errorf("%s: the 503 is not a JSON error with Retry-After: %s %v", r.name, res, res.header)
			}
			reps = reps[1:]
		}
		return true
	}) {
		t.Fatalf("%s: GET /api/training/%s still %s 30 s after Postgres stopped", reps[0].name, job, res)
	}
	return time.Since(start)
}

// stopsJob says whether a log line tells that a replica stopped running a
// job (the job goes on elsewhere, or later).
func stopsJob(job string) func(logLine) bool {
	return func(l logLine) bool {
		return l.str("job_id") == job && (l.str("msg") == "training handed over" ||
			l.str("msg") == "could not record a job's end" || strings.Contains(l.str("msg"), "lost the connection"))
	}
}

// runsNow says whether a replica runs the job, from the logs: its latest
// start is later than its latest stop. (A job handed over stays
// "training" while it waits to be resumed.)
func (s *suite) runsNow(job string) bool {
	var started, stopped time.Time
	for _, r := range s.c.reps {
		for _, l := range r.find(isJob("training started", job)) {
			started = later(started, l.time)
		}
		for _, l := range r.find(stopsJob(job)) {
			stopped = later(stopped, l.time)
		}
	}
	return started.After(stopped)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// postgresRestarts is scenario 6: Postgres restarts (a fast shutdown and a
// start on the same data) while idle, then while a job runs. Requests
// answer within their timeout throughout (200 or a JSON 503); the replicas
// reconnect (REST and the event relay); the job completes, or fails with
// one training_error.
func (s *suite) postgresRestarts(t *testing.T) {
	// Whatever happens here, the next scenarios get Postgres back.
	defer func() {
		if !s.c.pg.Running() {
			s.c.pg.Restart(t)
		}
	}()
	net := createNetwork(t, s.haproxy, []int{784, 30, 10}, 61)
	warm := train(t, s.haproxy, net, trainParams{Epochs: 1, Seed: 62})
	waitJobEnded(t, s.haproxy, warm, eventTimeout)

	var back2, outage time.Duration
	// Idle: a restart, then an outage that lasts until every replica has
	// answered a 503.
	stop := make(chan struct{})
	results := s.hammer(warm, stop)
	began := time.Now()
	s.c.pg.Restart(t)
	down := time.Since(began)
	back := s.waitAll200(t, warm, 60*time.Second)
	stopped := time.Now()
	s.c.pg.Stop()
	s.waitAll503(t, warm)
	outage = time.Since(stopped)
	s.c.pg.Restart(t)
	back2 = s.waitAll200(t, warm, 60*time.Second)
	close(stop)
	checkProbes(t, "idle restart", <-results)
	t.Logf("idle: Postgres restarted in %v; every replica answered 200 again %v later; then down %v (until every replica answered 503), and 200 again %v after its start",
		down.Round(time.Millisecond), back.Round(time.Millisecond), outage.Round(time.Millisecond), back2.Round(time.Millisecond))
	// The relay is back on every replica: a job's events reach them all.
	start := time.Now()
	s.barrier(t, s.direct...)
	t.Logf("idle: events reach every replica's clients again (a one-epoch job, %v)", time.Since(start).Round(time.Millisecond))

	// While a job runs.
	job := train(t, s.c.reps[1].URL, net, trainParams{Epochs: 40, Seed: 63})
	trainer := s.trainer(t, job)
	s.direct[0].waitEvent(t, "update 2 of job "+job, eventTimeout, func(r clientRec) bool {
		return r.job() == job && r.Name == "training_update" && r.epoch() == 2
	})
	stop = make(chan struct{})
	results = s.hammer(job, stop)
	began = time.Now()
	s.c.pg.Restart(t)
	down = time.Since(began)
	back = s.waitAll200(t, job, 60*time.Second)
	t.Logf("during a job (on %s): Postgres restarted in %v; every replica answered 200 again %v later", trainer.name, down.Round(time.Millisecond), back.Round(time.Millisecond))
	// Then down until every replica has answered 503 and, if the job still
	// runs, its replica has noticed: it hands the job over (its lock
	// connection is gone), or cannot record its end.
	running := getJob(t, s.haproxy, job)["status"] == "training" && s.runsNow(job)
	stopped = time.Now()
	s.c.pg.Stop()
	s.waitAll503(t, job)
	if running {
		r, l := s.c.waitLogged(t, "the job's replica noticing the outage", eventTimeout, func(l logLine) bool {
			return stopsJob(job)(l) && l.time.After(stopped)
		})
		t.Logf("with Postgres down, %s logged %q", r.name, l.str("msg"))
	}
	outage = time.Since(stopped)
	s.c.pg.Restart(t)
	back2 = s.waitAll200(t, job, 60*time.Second)
	close(stop)
	checkProbes(t, "restarts during a job", <-results)
	t.Logf("during a job: then down %v, and every replica answered 200 again %v after its start", outage.Round(time.Millisecond), back2.Round(time.Millisecond))

	j := waitJobEnded(t, s.haproxy, job, 3*eventTimeout)
	t.Logf("the job ended %v (%v), epoch %v", j["status"], j["error"], j["epoch"])
	for _, r := range s.c.reps {
		for _, l := range r.find(func(l logLine) bool {
			return l.str("job_id") == job && l.str("level") != "DEBUG" && l.str("msg") != "training started"
		}) {
			t.Logf("  %s: %s %s %v", r.name, l.str("level"), l.str("msg"), l.m["err"])
		}
	}
	if j["status"] == "failed" && j["error"] == "" || j["status"] == "cancelled" {
		t.Errorf("job ended %v without a clear error: %v", j["status"], j)
	}
	s.barrier(t, s.direct...)
	for _, c := range s.direct {
		evs := c.events(job)
		var finals []string
		prev := 0
		for _, e := range evs {
			switch e.Name {
			case "training_update":
				if e.epoch() <= prev {
					t.Errorf("client %s: update of epoch %d after epoch %d: %s", c.label, e.epoch(), prev, c.describe(job))
				}
				prev = e.epoch()
			default:
				finals = append(finals, e.Name)
			}
		}
		want := "training_complete"
		if j["status"] == "failed" {
			want = "training_error"
		}
		if len(finals) != 1 || finals[0] != want || evs[len(evs)-1].Name != want {
			t.Errorf("client %s: final events %v, want one %s, last: %s", c.label, finals, want, c.describe(job))
		}
		t.Logf("client %s saw %d of the 40 updates", c.label, len(evs)-len(finals))
	}
	for _, r := range s.c.reps {
		for _, l := range r.find(isJob("training started", job)) {
			t.Logf("%s started the job (run %d) with epochs_done=%v, the network at epoch %v, at %v", r.name, l.gen, l.m["epochs_done"], l.m["from_epoch"], l.time.Format("15:04:05.000"))
		}
	}
}

// ------------------------------------------------------------ scenario 5

// restartAll is scenario 5: every replica stops (SIGTERM, exit 0) and starts
// again on the same database and bucket: each lists every network, which
// trains and gives examples; the bucket holds one model per network.
func (s *suite) restartAll(t *testing.T) {
	before := listIDs(t, s.c.reps[0].URL)
	// A polling client of A vanishes without a word: its session stays
	// open on A until its ping timeout.
	// A job's events then queue for it there.
	gone := connect(t, t, "polling-vanished", s.c.reps[0].URL, clientOpts{Transports: []string{"polling"}})
	gone.vanish()
	s.barrier(t, s.direct...)
	var wg sync.WaitGroup
	took := make([]time.Duration, len(s.c.reps))
	for i, r := range s.c.reps {
		wg.Go(func() {
			start := time.Now()
			r.stop(t)
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	t.Logf("SIGTERM to exit: A %v (a polling client of it vanished, with events queued), B %v, C %v", took[0].Round(time.Millisecond), took[1].Round(time.Millisecond), took[2].Round(time.Millisecond))
	for i, d := range took {
		// SHUTDOWN_TIMEOUT is 10 s: "how long shutdown waits for jobs and
		// connections".
		if d > 10*time.Second+time.Second {
			// A vanished polling client holds the flush at most 2 s.
			t.Errorf("replica %s took %v to exit after SIGTERM, more than SHUTDOWN_TIMEOUT (10 s)", s.c.reps[i].name, d.Round(time.Millisecond))
		}
	}
	began := time.Now()
	for _, c := range s.direct {
		c.close()
	}
	for _, r := range s.c.reps {
		r.spawn(t)
	}
	for _, r := range s.c.reps {
		wg.Go(func() { r.waitReady(t) })
	}
	wg.Wait()
	t.Logf("every replica ready again %v after the start", time.Since(began).Round(time.Millisecond))
	s.connectDirect(t)

	var keys []string
	for _, id := range before {
		keys = append(keys, s3Prefix+id+".npz")
	}
	// Besides, the snapshots of the networks that are there (the deleted
	// network's went with it), at most SNAPSHOTS_KEPT+2 (7) each.
	var models []string
	snaps := map[string]int{}
	for _, k := range s.c.s3.keys(t) {
		rest, ok := strings.CutPrefix(k, s3Prefix+"snapshots/")
		if !ok {
			models = append(models, k)
			continue
		}
		id, _, _ := strings.Cut(rest, "/")
		if !slices.Contains(before, id) || !strings.HasSuffix(rest, ".npz") {
			t.Errorf("the bucket holds %s, a snapshot of no network listed", k)
		}
		snaps[id]++
	}
	if !slices.Equal(models, keys) {
		t.Errorf("the bucket holds the models %v, the catalog %v: one model per network, no more", models, keys)
	}
	for id, n := range snaps {
		if n > 7 {
			t.Errorf("network %s keeps %d snapshots, more than SNAPSHOTS_KEPT+2", id, n)
		}
	}
	for _, r := range s.c.reps {
		if got := listIDs(t, r.URL); !slices.Equal(got, before) {
			t.Errorf("%s lists %v after the restart, before: %v", r.name, got, before)
		}
		if s.trained != "" {
			ex := must(t, 200, "GET", r.URL+"/api/networks/"+s.trained+"/successful_example", nil)
			if ex["network_id"] != s.trained || ex["predicted_digit"] != ex["actual_digit"] {
				t.Errorf("%s: example %v", r.name, ex)
			}
		}
	}
	if s.deleted != "" && slices.Contains(before, s.deleted) {
		t.Errorf("the network deleted in scenario 4 is back")
	}
	sort.Strings(before)
	// Every network trains again: one epoch each, through HAProxy.
	var jobs []string
	for i, id := range before {
		jobs = append(jobs, train(t, s.haproxy, id, trainParams{Epochs: 1, Seed: 70 + i}))
	}
	for _, job := range jobs {
		for _, c := range s.direct {
			if f := c.waitFinal(t, job, 2*eventTimeout); f.Name != "training_complete" {
				t.Errorf("after the restart, job %s: %s %v", job, f.Name, f.Data)
			}
		}
	}
	t.Logf("after restarting every replica: %d networks listed on each, all trained one more epoch", len(before))
	s.recordLatency(t, s.directByReplica(), jobs...)
}

// resumedIsReproducible compares, epoch by epoch, the job that scenario 2
// resumed after the kill with its uninterrupted twin. docs/API.md promises
// that "the same network, parameters and seed give the same weights, bit
// for bit": a resumed job draws the shuffles of the epochs already done
// (network.Params.Done) before it trains the rest, so it continues them
// rather than repeating epochs 1, 2…, and trains as the uninterrupted job.
func (s *suite) resumedIsReproducible(t *testing.T) {
	if s.twinCorrect == nil {
		t.Skip("scenario 2 did not get that far")
	}
	t.Logf("correct per epoch: resumed after epoch 1 %v, uninterrupted twin %v", s.resumedCorrect, s.twinCorrect)
	if fmt.Sprint(s.resumedCorrect[0]) != fmt.Sprint(s.twinCorrect[0]) {
		t.Fatalf("epoch 1, before the kill, already differs: the twin is not a twin")
	}
	if !slices.Equal(s.resumedCorrect, s.twinCorrect) {
		t.Errorf("a seeded job resumed after a takeover does not train as the same job uninterrupted: correct per epoch %v, want %v",
			s.resumedCorrect, s.twinCorrect)
	}
}
