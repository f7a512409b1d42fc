package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/pkg/api"
	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/dirstore"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

// allocatedBy returns the bytes f allocates, the garbage collector off: an
// upper bound of what it holds at once.
func allocatedBy(f func()) int64 {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// TestLargeJSONBodiesCostLittle: a 1 MiB body of numbers used to be decoded
// into interfaces, ~33 bytes of heap per byte of body (20 such requests in
// parallel held 734 MB). Read as a stream, a request costs a small fraction
// of its body beyond the body itself.
func TestLargeJSONBodiesCostLittle(t *testing.T) {
	s := newServer(t)
	id := s.createNetwork(t)
	zeros := func(prefix string) []byte {
		var b bytes.Buffer
		b.WriteString(prefix)
		for b.Len() < 1<<20-16 {
			b.WriteString("0,")
		}
		b.WriteString("0]}")
		return b.Bytes()
	}
	for _, tc := range []struct {
		name, path string
		body       []byte
		status     int
		want       string
	}{
		{"predict pixels", "/api/networks/" + id + "/predict", zeros(`{"pixels":[`), 400, "pixels must be 784 numbers, got"},
		{"create layer_sizes", "/api/networks", zeros(`{"layer_sizes":[`), 400, "may list at most 10 layers"},
		// A refusal read to the end: no job starts to allocate meanwhile.
		{"train with an unknown list", "/api/networks/" + id + "/train", zeros(`{"epochs":0,"x":[`), 400, "epochs must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r response
			got := allocatedBy(func() { r = s.doBytes(t, "POST", tc.path, jsonCT, tc.body) })
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Fatalf("%d %s, want %d with %q", r.status, r.body, tc.status, tc.want)
			}
			t.Logf("a %d-byte body: %d bytes allocated", len(tc.body), got)
			if got > 2<<20 {
				t.Errorf("a %d-byte body allocated %d bytes, more than 2 MiB", len(tc.body), got)
			}
		})
	}
}

// historyOfLength is a model file of a network that has trained n epochs,
// each recorded.
func historyOfLength(t *testing.T, n int) []byte {
	t.Helper()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	recs := make([]modelfile.EpochRecord, n)
	for i := range recs {
		recs[i] = modelfile.EpochRecord{Epoch: i + 1, JobID: "job-1", Accuracy: 0.5, Correct: 5000, Total: 10000,
			ElapsedTime: 0.1, LearningRate: 3, MiniBatchSize: 10, Cost: "quadratic", Seed: 1, FinishedAt: at}
	}
	return oursNPZ(t, modelfile.Meta{Init: "normal", Trained: true, EpochsTrained: n, History: recs, CreatedAt: at, UpdatedAt: at},
		mustNet(t, []int{784, 30, 10}))
}

// TestHistoryPages: a history is answered a page at a time (1,000 records
// by default, at most 10,000), every page encoded once per version, and
// every record reachable by following next_from_epoch.
func TestHistoryPages(t *testing.T) {
	s := newServer(t)
	r := s.doBytes(t, "POST", "/api/networks/import", "application/octet-stream", historyOfLength(t, 2500))
	if r.status != 200 {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	id := r.json(t)["network_id"].(string)
	page := func(query string) (epochs []any, next any, total float64) {
		t.Helper()
		r := s.do(t, "GET", "/api/networks/"+id+"/history"+query, "", "")
		if r.status != 200 {
			t.Fatalf("history%s: %d %s", query, r.status, r.body)
		}
		m := r.json(t)
		return m["epochs"].([]any), m["next_from_epoch"], m["total"].(float64)
	}
	for _, tc := range []struct {
		query       string
		first, size int
		next        any
	}{
		{"", 1, 1000, float64(1001)},
		{"?from_epoch=1001", 1001, 1000, float64(2001)},
		{"?from_epoch=2001", 2001, 500, nil},
		{"?from_epoch=2400&limit=50", 2400, 50, float64(2450)},
		{"?limit=10000", 1, 2500, nil},
		{"?from_epoch=3000", 0, 0, nil},
	} {
		epochs, next, total := page(tc.query)
		if len(epochs) != tc.size || next != tc.next || total != 2500 {
			t.Errorf("history%s: %d records, next %v, total %v; want %d, %v, 2500", tc.query, len(epochs), next, total, tc.size, tc.next)
			continue
		}
		if tc.size > 0 && epochs[0].(map[string]any)["epoch"] != float64(tc.first) {
			t.Errorf("history%s starts at %v, want %d", tc.query, epochs[0].(map[string]any)["epoch"], tc.first)
		}
	}
	for _, q := range []string{"?limit=0", "?limit=10001", "?from_epoch=0", "?from_epoch=x", "?limit=-5"} {
		if r := s.do(t, "GET", "/api/networks/"+id+"/history"+q, "", ""); r.status != 400 {
			t.Errorf("history%s: %d %s, want 400", q, r.status, r.body)
		}
	}
	// The same page of the same version is the same bytes, encoded once:
	// a second request allocates a small fraction of the answer.
	get := func() *countingWriter {
		w := &countingWriter{header: http.Header{}}
		s.h.ServeHTTP(w, httptest.NewRequest("GET", "/api/networks/"+id+"/history?limit=10000", nil))
		return w
	}
	var first, again *countingWriter
	cold := allocatedBy(func() { first = get() })
	warm := allocatedBy(func() { again = get() })
	if first.status != 200 || again.status != 200 || first.n != again.n || first.n < 400_000 {
		t.Fatalf("pages of %d and %d bytes (%d, %d)", first.n, again.n, first.status, again.status)
	}
	t.Logf("a page of %d bytes: %d bytes allocated to encode and answer it, %d to answer it again", first.n, cold, warm)
	if warm > 64<<10 {
		t.Errorf("answering a cached %d-byte page allocated %d bytes", first.n, warm)
	}
}

// slowBody is a request body sent a piece at a time: Write returns once the
// server has read what it was given.
type slowBody struct {
	pr *io.PipeReader
	pw *io.PipeWriter
}

func newSlowBody() *slowBody {
	pr, pw := io.Pipe()
	return &slowBody{pr, pw}
}

// TestSlotsAfterTheBody: clients sending their bodies slowly hold no decode
// or import slot (they used to hold both slots for the whole read timeout,
// every other image predict and import answered 503 meanwhile).
func TestSlotsAfterTheBody(t *testing.T) {
	s := newServer(t)
	id := s.createNetwork(t)
	srv := httptest.NewServer(s.h)
	t.Cleanup(srv.Close)
	png := digitPNG(t, 0)
	for _, tc := range []struct {
		name, path, ct string
		body           []byte
	}{
		{"image predict", "/api/networks/" + id + "/predict", "image/png", png},
		{"import", "/api/networks/import", "application/octet-stream", nielsenNPZ(t, mustNet(t, []int{784, 30, 10}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var slow []*slowBody
			answered := make(chan int, 4)
			for range 4 { // more than the slots
				b := newSlowBody()
				slow = append(slow, b)
				go func() {
					resp, err := http.Post(srv.URL+tc.path, tc.ct, b.pr)
					if err != nil {
						answered <- 0
						return
					}
					resp.Body.Close()
					answered <- resp.StatusCode
				}()
				// Returns once the handler has read it: the request is in.
				if _, err := b.pw.Write(tc.body[:8]); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := http.Post(srv.URL+tc.path, tc.ct, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("with 4 slow uploads under way: %d %s, want 200", resp.StatusCode, body)
			}
			for _, b := range slow {
				b.pw.Write(tc.body[8:])
				b.pw.Close()
			}
			for range slow {
				if code := <-answered; code != 200 && code != 503 {
					t.Errorf("a slow upload, once sent: %d", code)
				}
			}
		})
	}
}

// TestBudgetRefusesWhatDoesNotFit: with a small memory budget, bodies that
// would take more than is free are answered 503 with Retry-After (413 when
// one request alone needs more than the whole budget), and everything is
// given back afterwards.
func TestBudgetRefusesWhatDoesNotFit(t *testing.T) {
	b := budget.New(8<<20, 0)
	s := newServerBudget(t, service.DefaultLimits(), b)
	id := s.createNetwork(t)
	held, err := b.Reserve(t.Context(), 6<<20)
	if err != nil {
		t.Fatal(err)
	}
	big := `{"pixels":[` + strings.Repeat("0,", 400_000) + `0]}`
	r := s.do(t, "POST", "/api/networks/"+id+"/predict", jsonCT, big)
	if r.status != 503 || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "busy") {
		t.Errorf("a body the budget cannot hold: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	if r := s.do(t, "POST", "/api/networks/"+id+"/predict", jsonCT, pixelsJSON(t, make([]uint8, 784))); r.status != 200 {
		t.Errorf("a small body meanwhile: %d %s", r.status, r.body)
	}
	held.Release()
	if r := s.do(t, "POST", "/api/networks/"+id+"/predict", jsonCT, big); r.status != 400 {
		t.Errorf("the same body with the budget free: %d %s, want 400 (too many pixels)", r.status, r.body)
	}
	r = s.doBytes(t, "POST", "/api/networks/import", "application/octet-stream", historyOfLength(t, 1))
	if r.status != 200 {
		t.Errorf("an import within the budget: %d %s", r.status, r.body)
	}
	small := budget.New(64<<10, 0)
	s2 := newServerBudget(t, service.DefaultLimits(), small)
	if r := s2.doBytes(t, "POST", "/api/networks/import", "application/octet-stream", historyOfLength(t, 1)); r.status != 413 {
		t.Errorf("an import larger than the whole budget: %d %s, want 413", r.status, r.body)
	}
	// The networks in memory hold their share until they go.
	if st := b.Stats(); st.Used != 381_952 {
		t.Errorf("%d bytes reserved with two [784, 30, 10] networks in memory (one with a recorded epoch), want 2 × 190,880 + 192: %+v", st.Used, st)
	}
	s.do(t, "DELETE", "/api/networks", "", "")
	if st := b.Stats(); st.Used != 0 {
		t.Errorf("%d bytes still reserved after every request and network has gone: %+v", st.Used, st)
	}
	if st := small.Stats(); st.Used != 0 {
		t.Errorf("%d bytes still reserved after every request: %+v", st.Used, st)
	}
	_ = fmt.Sprint()
}

// countingWriter is a ResponseWriter that counts the body and keeps none.
type countingWriter struct {
	header http.Header
	status int
	n      int
}

func (w *countingWriter) Header() http.Header { return w.header }
func (w *countingWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}
func (w *countingWriter) Write(b []byte) (int, error) {
	w.WriteHeader(200)
	w.n += len(b)
	return len(b), nil
}

// TestImageBombs: images whose decoding would cost far more than a digit
// needs are refused from their headers, before any decoding (the scan bomb
// took 18 s of CPU, the 4-component and the 16-bit interlaced images over
// 300 MB each).
func TestImageBombs(t *testing.T) {
	b := budget.New(192<<20, 0)
	s := newServerBudget(t, service.DefaultLimits(), b)
	id := s.createNetwork(t)
	for _, tc := range []struct{ file, ct, want string }{
		{"scan-bomb.jpg", "image/jpeg", "progressive JPEG"},
		{"ycck-bomb.jpg", "image/jpeg", "more than 3 colour components"},
		{"png16-interlaced-4096.png", "image/png", "interlaced PNG"},
	} {
		data, err := os.ReadFile(filepath.Join("..", "digit", "testdata", "bombs", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		var r response
		got := allocatedBy(func() { r = s.doBytes(t, "POST", "/api/networks/"+id+"/predict", tc.ct, data) })
		if r.status != 400 || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", tc.file, r.status, r.body, tc.want)
		}
		t.Logf("%s (%d bytes): %d bytes allocated to refuse it", tc.file, len(data), got)
		if got > 4<<20 {
			t.Errorf("refusing %s allocated %d bytes", tc.file, got)
		}
	}
	s.do(t, "DELETE", "/api/networks", "", "")
	if st := b.Stats(); st.Used != 0 {
		t.Errorf("%d bytes still reserved", st.Used)
	}
}

// TestDecodeStopsOnShutdown: once the server begins to shut down, an image
// decode stops at once (a decode used to run to its end, and SIGTERM waited
// for it past the shutdown timeout).
func TestDecodeStopsOnShutdown(t *testing.T) {
	st, err := dirstore.Open(t.TempDir(), modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := service.New(context.Background(), service.Config{Data: loadMNIST, Store: st, Workers: 1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	stopping, stop := context.WithCancel(context.Background())
	h, err := api.New(api.Options{Service: svc, Logger: log, Stopping: stopping})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{h: h, svc: svc, store: st}
	id := s.createNetwork(t)
	png := digitPNG(t, 0)
	if r := s.doBytes(t, "POST", "/api/networks/"+id+"/predict", "image/png", png); r.status != 200 {
		t.Fatalf("before shutdown: %d %s", r.status, r.body)
	}
	stop()
	if r := s.doBytes(t, "POST", "/api/networks/"+id+"/predict", "image/png", png); r.status != 503 || !strings.Contains(r.body, "in time") {
		t.Errorf("during shutdown: %d %s, want 503", r.status, r.body)
	}
}
