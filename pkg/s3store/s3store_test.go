package s3store

import (
	"bytes"
	"context"
	"github.com/mnist-go/nnserver/pkg/model"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
	"github.com/mnist-go/nnserver/pkg/service"
	"github.com/mnist-go/nnserver/pkg/service/storetest"
)

const bucket = "models"

// fake is an in-process S3 server (gofakes3 over a memory backend), with
// faults that tests switch on in front of it.
type fake struct {
	srv     *httptest.Server
	backend *s3mem.Backend
	cfg     Config

	fail500    atomic.Bool // every request gets a 500
	fail500Put atomic.Bool // every PUT gets a 500
	cutPut     atomic.Bool // every PUT's connection is cut after half its body

	gets      atomic.Int64 // GET requests
	sentBytes atomic.Int64 // body bytes answered to GETs
	puts      atomic.Int64 // PUT requests, failed or not
	putBytes  atomic.Int64 // body bytes PUT requests announced

	// frozen, when set, is closed by thaw: until then the server hangs
	// (see freeze).
	frozen      atomic.Pointer[chan struct{}]
	frozenAfter atomic.Int64

	mu        sync.Mutex
	beforeGet func(*http.Request) // called before a GET is served
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{backend: s3mem.New()}
	if err := f.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	s3 := gofakes3.New(f.backend).Server()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.serve(s3, w, r)
	}))
	t.Cleanup(f.srv.Close)
	f.cfg = Config{Endpoint: strings.TrimPrefix(f.srv.URL, "http://"), Bucket: bucket, Prefix: "nets/",
		AccessKey: "test-access", SecretKey: "test-secret"}
	return f
}

const internalError = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>InternalError</Code><Message>injected by the test</Message></Error>`

// freeze makes the server hang, as a frozen one would: with after 0,
// every request waits; else the bodies of GET answers stop after that
// many bytes. They wait until thaw, or until the client gives up. The
// test's end thaws the server.
func (f *fake) freeze(t *testing.T, after int64) {
	ch := make(chan struct{})
	f.frozenAfter.Store(after)
	f.frozen.Store(&ch)
	t.Cleanup(f.thaw) // before the server closes: it waits for its handlers
}

func (f *fake) thaw() {
	if ch := f.frozen.Swap(nil); ch != nil {
		close(*ch)
	}
}

// hang waits until the server is thawed or the client gives up (for a
// request whose body is not read, only the thaw ends the wait).
func hang(r *http.Request, thawed <-chan struct{}) {
	select {
	case <-thawed:
	case <-r.Context().Done():
	}
}

// stallingWriter hangs after after bytes of a body, until thawed.
type stallingWriter struct {
	http.ResponseWriter
	r      *http.Request
	after  int64
	thawed <-chan struct{}
}

func (s *stallingWriter) Write(p []byte) (int, error) {
	if s.after >= int64(len(p)) || s.after < 0 {
		s.after -= int64(len(p))
		return s.ResponseWriter.Write(p)
	}
	n, err := s.ResponseWriter.Write(p[:s.after])
	if err != nil {
		return n, err
	}
	http.NewResponseController(s.ResponseWriter).Flush()
	s.after = -1
	hang(s.r, s.thawed)
	m, err := s.ResponseWriter.Write(p[n:])
	return n + m, err
}

func (f *fake) serve(s3 http.Handler, w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		f.puts.Add(1)
		f.putBytes.Add(max(r.ContentLength, 0))
	}
	if ch := f.frozen.Load(); ch != nil {
		if after := f.frozenAfter.Load(); after == 0 {
			hang(r, *ch)
		} else if r.Method == http.MethodGet {
			w = &stallingWriter{ResponseWriter: w, r: r, after: after, thawed: *ch}
		}
	}
	if f.fail500.Load() || r.Method == http.MethodPut && f.fail500Put.Load() {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, internalError)
		return
	}
	switch r.Method {
	case http.MethodPut:
		if f.cutPut.Load() {
			// Read half the body, then drop the connection: the upload
			// never completes.
			io.CopyN(io.Discard, r.Body, r.ContentLength/2)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
	case http.MethodGet:
		if strings.HasSuffix(r.URL.Path, fileExt) {
			f.gets.Add(1)
			f.mu.Lock()
			hook := f.beforeGet
			f.mu.Unlock()
			if hook != nil {
				hook(r)
			}
			w = &countingWriter{ResponseWriter: w, n: &f.sentBytes}
		}
	}
	s3.ServeHTTP(w, r)
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (f *fake) open(t *testing.T) *Store {
	t.Helper()
	return f.openTimeout(t, 0)
}

// openTimeout opens a Store whose requests may wait at most timeout.
func (f *fake) openTimeout(t *testing.T, timeout time.Duration) *Store {
	t.Helper()
	cfg := f.cfg
	cfg.Timeout = timeout
	s, err := Open(t.Context(), cfg, modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// put stores raw bytes under key with s's client, behind the Store's back.
// It may be called from the server's handler.
func (f *fake) put(t *testing.T, s *Store, key string, b []byte) {
	if _, err := s.client.PutObject(context.Background(), bucket, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Error(err)
	}
}

// The service's Store, as the directory store.
var _ service.Store = (*Store)(nil)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) service.Store {
		return newFake(t).open(t)
	})
}

// model returns a description and a network of the given sizes, drawn from
// seed.
func testModel(t *testing.T, sizes []int, seed uint64) (modelfile.Meta, *network.Network) {
	t.Helper()
	n, err := network.New(sizes, network.InitNormal, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	return modelfile.Meta{ID: uuid.NewString(), Sizes: sizes, Init: modelfile.InitNormal, CreatedAt: now, UpdatedAt: now}, n
}

func encode(t *testing.T, m modelfile.Meta, n model.Model) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := modelfile.Encode(&b, m, n); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestListReadsHeaders checks that List fetches headers, not weights, and
// that Load streams a large network in a few requests.
func TestListReadsHeaders(t *testing.T) {
	f := newFake(t)
	s := f.open(t)
	ctx := t.Context()
	var size int
	for i := range 3 {
		m, n := testModel(t, []int{784, 400, 100, 10}, uint64(i)) // 2.8 MB each
		if err := s.Save(ctx, m, n); err != nil {
			t.Fatal(err)
		}
		size = len(encode(t, m, n))
	}
	f.gets.Store(0)
	f.sentBytes.Store(0)
	es, errs := s.List(ctx)
	if len(es) != 3 || len(errs) != 0 {
		t.Fatalf("List: %d entries, errors %v", len(es), errs)
	}
	t.Logf("List of 3 networks of %d bytes: %d GETs, %d bytes", size, f.gets.Load(), f.sentBytes.Load())
	if got := f.sentBytes.Load(); got > 3*512<<10 {
		t.Errorf("List read %d bytes of %d", got, 3*size)
	}

	f.gets.Store(0)
	f.sentBytes.Store(0)
	if _, _, err := s.Load(ctx, es[0].ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("Load of one: %d GETs, %d bytes", f.gets.Load(), f.sentBytes.Load())
	if got := f.gets.Load(); got > 12 {
		t.Errorf("Load took %d GETs", got)
	}
	if got := f.sentBytes.Load(); got > int64(size)+int64(size)/4 {
		t.Errorf("Load read %d bytes of a %d-byte object", got, size)
	}
}

// TestFailedSaveKeepsPrevious checks that a Save the server refuses, or
// whose connection is cut, is an error and leaves the saved model as it was.
func TestFailedSaveKeepsPrevious(t *testing.T) {
	f := newFake(t)
	s := f.open(t)
	ctx := t.Context()
	m, v1 := testModel(t, []int{30, 20, 10}, 1)
	if err := s.Save(ctx, m, v1); err != nil {
		t.Fatal(err)
	}
	_, v2 := testModel(t, []int{30, 20, 10}, 2)
	for _, fault := range []struct {
		name string
		on   *atomic.Bool
	}{{"500", &f.fail500Put}, {"cut connection", &f.cutPut}} {
		t.Run(fault.name, func(t *testing.T) {
			fault.on.Store(true)
			f.puts.Store(0)
			start := time.Now()
			err := s.Save(ctx, m, v2)
			fault.on.Store(false)
			if err == nil {
				t.Fatal("Save succeeded")
			}
			t.Logf("Save failed after %v and %d PUTs: %v", time.Since(start).Round(time.Millisecond), f.puts.Load(), err)
			_, got, err := s.Load(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(encode(t, m, got), encode(t, m, v1)) {
				t.Error("the saved model changed")
			}
		})
	}
}
