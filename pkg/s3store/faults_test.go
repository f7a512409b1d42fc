package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

// TestServerErrors checks that every call reports a server answering 500
// as an error (Delete: DeleteFailed), without panicking, in bounded time.
func TestServerErrors(t *testing.T) {
	// One try per request: retries are TestFailedSaveKeepsPrevious's.
	defer func(n int) { maxRetries = n }(maxRetries)
	maxRetries = 1
	f := newFake(t)
	s := f.open(t)
	ctx := t.Context()
	m, n := testModel(t, []int{5, 3, 2}, 1)
	if err := s.Save(ctx, m, n); err != nil {
		t.Fatal(err)
	}
	f.fail500.Store(true)
	start := time.Now()
	checkAllFail(t, s, m.ID)
	t.Logf("all calls failed within %v", time.Since(start).Round(time.Millisecond))
	f.fail500.Store(false)
	if _, _, err := s.Load(ctx, m.ID); err != nil {
		t.Errorf("Load once the server is back: %v", err)
	}
}

// TestUnreachable checks that a server that went away is reported by every
// call, and by Open.
func TestUnreachable(t *testing.T) {
	// One try per request: retries are TestFailedSaveKeepsPrevious's.
	defer func(n int) { maxRetries = n }(maxRetries)
	maxRetries = 1
	f := newFake(t)
	s := f.open(t)
	m, n := testModel(t, []int{5, 3, 2}, 1)
	if err := s.Save(t.Context(), m, n); err != nil {
		t.Fatal(err)
	}
	f.srv.Close()
	checkAllFail(t, s, m.ID)
	_, err := Open(t.Context(), f.cfg, modelfile.Limits{})
	if err == nil || !strings.Contains(err.Error(), `checking bucket "models" at http://127.0.0.1:`) {
		t.Errorf("Open of an unreachable server: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), f.cfg.SecretKey) {
		t.Errorf("the error shows the secret key: %v", err)
	}
}

func checkAllFail(t *testing.T, s *Store, id string) {
	t.Helper()
	ctx := t.Context()
	m, n := testModel(t, []int{5, 3, 2}, 2)
	if err := s.Save(ctx, m, n); err == nil {
		t.Error("Save succeeded")
	}
	if _, _, err := s.Load(ctx, id); err == nil || errors.Is(err, service.ErrModelNotFound) {
		t.Errorf("Load: %v, want an error other than not found", err)
	}
	if rc, _, err := s.Open(ctx, id); err == nil || errors.Is(err, service.ErrModelNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Open: %v, want an error other than not found", err)
	}
	if es, errs := s.List(ctx); len(es) != 0 || len(errs) != 1 {
		t.Errorf("List: %v, %v; want one error", es, errs)
	}
	if res, err := s.Delete(ctx, id); res != service.DeleteFailed || err == nil {
		t.Errorf("Delete: %v, %v; want failed", res, err)
	}
}

func TestOpenChecks(t *testing.T) {
	f := newFake(t)
	cfg := f.cfg
	cfg.Bucket = "missing"
	if _, err := Open(t.Context(), cfg, modelfile.Limits{}); err == nil || !strings.Contains(err.Error(), `bucket "missing" does not exist at http://`) {
		t.Errorf("Open of a missing bucket: %v", err)
	}
	if _, err := Open(t.Context(), f.cfg, modelfile.Limits{MaxLayers: modelfile.MaxLayers + 1}); err == nil || !strings.Contains(err.Error(), "MaxLayers") {
		t.Errorf("Open with limits beyond the format's: %v", err)
	}
	cfg = f.cfg
	cfg.Timeout = -time.Second
	if _, err := Open(t.Context(), cfg, modelfile.Limits{}); err == nil || !strings.Contains(err.Error(), "must not be negative") {
		t.Errorf("Open with a negative timeout: %v", err)
	}
	s, err := Open(t.Context(), f.cfg, modelfile.Limits{MaxParams: 100})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Limits(); got != (modelfile.Limits{MaxLayers: modelfile.DefaultMaxLayers, MaxParams: 100, MaxMACs: modelfile.DefaultMaxMACs, MaxActivations: modelfile.DefaultMaxActivations}) {
		t.Errorf("Limits: %+v", got)
	}
	if got := s.String(); got != "s3://models/nets/" {
		t.Errorf("String: %q", got)
	}
}

// TestOperatorLimits checks that a store with lower limits refuses to save
// and to read networks beyond them, as the directory store does.
func TestOperatorLimits(t *testing.T) {
	f := newFake(t)
	big := f.open(t)
	small, err := Open(t.Context(), f.cfg, modelfile.Limits{MaxParams: 100})
	if err != nil {
		t.Fatal(err)
	}
	m, n := testModel(t, []int{20, 10}, 1) // 210 parameters
	if err := small.Save(t.Context(), m, n); !errors.Is(err, modelfile.ErrTooLarge) {
		t.Errorf("Save beyond the limits: %v", err)
	}
	if err := big.Save(t.Context(), m, n); err != nil {
		t.Fatal(err)
	}
	if _, _, err := small.Load(t.Context(), m.ID); !errors.Is(err, modelfile.ErrTooLarge) {
		t.Errorf("Load beyond the limits: %v", err)
	}
	if es, errs := small.List(t.Context()); len(es) != 0 || len(errs) != 1 || !errors.Is(errs[0], modelfile.ErrTooLarge) {
		t.Errorf("List beyond the limits: %v, %v", es, errs)
	}
}

// TestForeignObjects checks that keys outside the prefix, or not named
// <uuid>.npz, are ignored, and that corrupt objects, or objects of another
// network, are reported by name without hiding the others.
func TestForeignObjects(t *testing.T) {
	f := newFake(t)
	s := f.open(t)
	m, n := testModel(t, []int{5, 3, 2}, 1)
	if err := s.Save(t.Context(), m, n); err != nil {
		t.Fatal(err)
	}
	good := encode(t, m, n)
	corrupt, moved := uuid.NewString(), uuid.NewString()
	f.put(t, s, "nets/"+corrupt+".npz", []byte("not a zip archive"))
	f.put(t, s, "nets/"+moved+".npz", good) // says it is m.ID
	f.put(t, s, "other/"+uuid.NewString()+".npz", good)
	f.put(t, s, "nets/"+strings.ToUpper(uuid.NewString())+".npz", good)
	f.put(t, s, "nets/README.txt", []byte("hello"))
	f.put(t, s, "nets/sub/"+uuid.NewString()+".npz", good)

	es, errs := s.List(t.Context())
	if len(es) != 1 || es[0].ID != m.ID {
		t.Errorf("List: %v, want only %s", es, m.ID)
	}
	if len(errs) != 2 {
		t.Fatalf("List: errors %v, want 2", errs)
	}
	msgs := errs[0].Error() + "\n" + errs[1].Error()
	for _, want := range []string{corrupt + ".npz", moved + ".npz: meta.json describes network"} {
		if !strings.Contains(msgs, want) {
			t.Errorf("List's errors do not mention %q:\n%s", want, msgs)
		}
	}
	if _, _, err := s.Load(t.Context(), corrupt); err == nil || errors.Is(err, service.ErrModelNotFound) {
		t.Errorf("Load of a corrupt object: %v", err)
	}
	if _, _, err := s.Load(t.Context(), moved); err == nil {
		t.Error("Load of another network's object succeeded")
	}
	if rc, _, err := s.Open(t.Context(), corrupt); err == nil {
		rc.Close()
		t.Error("Open of a corrupt object succeeded")
	}
}

// TestReplacedWhileRead replaces the object between the start of a read
// and its first GET: the read starts again and returns the new version
// whole.
func TestReplacedWhileRead(t *testing.T) {
	f := newFake(t)
	s := f.open(t)
	ctx := t.Context()
	m, v1 := testModel(t, []int{300, 100, 10}, 1) // several windows
	if err := s.Save(ctx, m, v1); err != nil {
		t.Fatal(err)
	}
	_, v2 := testModel(t, []int{300, 100, 10}, 2)
	want := encode(t, m, v2)

	arm := func() {
		var once sync.Once
		f.mu.Lock()
		f.beforeGet = func(*http.Request) {
			once.Do(func() { f.put(t, s, s.key(m.ID), want) })
		}
		f.mu.Unlock()
	}
	arm()
	_, got, err := s.Load(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(t, m, got), want) {
		t.Error("Load returned the old version, or a mix")
	}

	if err := s.Save(ctx, m, v1); err != nil {
		t.Fatal(err)
	}
	arm()
	rc, size, err := s.Open(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || int64(len(b)) != size || !bytes.Equal(b, want) {
		t.Errorf("Open: %d bytes (said %d), %v; want the new version's %d", len(b), size, err, len(want))
	}
	f.mu.Lock()
	f.beforeGet = nil
	f.mu.Unlock()
}

// TestDeletedWhileListed removes an object between the listing and the
// read of its headers: List leaves it out, without an error.
func TestDeletedWhileListed(t *testing.T) {
	f := newFake(t)
	s := f.open(t)
	ctx := t.Context()
	m, n := testModel(t, []int{5, 3, 2}, 1)
	if err := s.Save(ctx, m, n); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.beforeGet = func(*http.Request) {
		f.backend.DeleteObject(bucket, s.key(m.ID))
	}
	f.mu.Unlock()
	if es, errs := s.List(ctx); len(es) != 0 || len(errs) != 0 {
		t.Errorf("List: %v, %v; want nothing", es, errs)
	}
}

// TestCancelledSave checks that a Save whose ctx ends during the PUT is an
// error, is not tried again, and changes nothing. The ctx ends once the
// PUT has reached the server, which then answers 500, an error worth a
// retry: the client must give up rather than retry, whatever its backoff.
func TestCancelledSave(t *testing.T) {
	f := newFake(t)
	// A front to the fake that ends the Save's ctx as a PUT arrives, then
	// lets the fake answer it.
	var cancelPut atomic.Pointer[context.CancelFunc]
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cancel := cancelPut.Load(); cancel != nil && r.Method == http.MethodPut {
			(*cancel)()
		}
		f.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	cfg := f.cfg
	cfg.Endpoint = strings.TrimPrefix(front.URL, "http://")
	s, err := Open(t.Context(), cfg, modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	m, v1 := testModel(t, []int{5, 3, 2}, 1)
	if err := s.Save(t.Context(), m, v1); err != nil {
		t.Fatal(err)
	}
	_, v2 := testModel(t, []int{5, 3, 2}, 2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cancelPut.Store(&cancel)
	f.fail500Put.Store(true)
	f.puts.Store(0)
	err = s.Save(ctx, m, v2)
	f.fail500Put.Store(false)
	cancelPut.Store(nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Save: %v, want context.Canceled", err)
	}
	if n := f.puts.Load(); n != 1 {
		t.Errorf("%d PUTs reached the server, want 1: a cancelled Save was tried again", n)
	}
	if _, got, err := s.Load(t.Context(), m.ID); err != nil || !bytes.Equal(encode(t, m, got), encode(t, m, v1)) {
		t.Errorf("Load: %v; want the first version", err)
	}
}
