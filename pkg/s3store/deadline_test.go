package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

// hangGuard bounds the wait for a call against a frozen server: a call
// still running then hangs (its timeout is a fraction of a second).
const hangGuard = 30 * time.Second

// failsInTime runs f, which must fail within hangGuard, with an error
// from the timeout (context.DeadlineExceeded): it fails t otherwise, and
// stops the test if f hangs. It logs how long f took.
func failsInTime(t *testing.T, name string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f() }()
	select {
	case err := <-done:
		switch {
		case err == nil:
			t.Errorf("%s succeeded against a frozen server", name)
		case !errors.Is(err, context.DeadlineExceeded):
			t.Errorf("%s: %v; want an error from the timeout", name, err)
		}
		t.Logf("%-12s failed after %6v: %v", name, time.Since(start).Round(time.Millisecond), err)
	case <-time.After(hangGuard):
		t.Fatalf("%s hangs: no answer within %v of a frozen server", name, hangGuard)
	}
}

// TestFrozenS3: against a server that stops answering, every call fails
// within the timeout, however long the caller would wait; once the server
// answers again, so does the Store, and the model is whole.
func TestFrozenS3(t *testing.T) {
	const timeout = 300 * time.Millisecond
	f := newFake(t)
	s := f.openTimeout(t, timeout)
	ctx := context.Background() // no deadline of the caller's
	m, v1 := testModel(t, []int{30, 20, 10}, 1)
	if err := s.Save(ctx, m, v1); err != nil {
		t.Fatal(err)
	}
	_, v2 := testModel(t, []int{30, 20, 10}, 2)

	f.freeze(t, 0)
	failsInTime(t, "Save", func() error { return s.Save(ctx, m, v2) })
	failsInTime(t, "Load", func() error { _, _, err := s.Load(ctx, m.ID); return err })
	failsInTime(t, "Open", func() error {
		rc, _, err := s.Open(ctx, m.ID)
		if err == nil {
			rc.Close()
		}
		return err
	})
	failsInTime(t, "List", func() error {
		es, errs := s.List(ctx)
		if len(es) != 0 || len(errs) != 1 {
			t.Errorf("List: %d entries, errors %v; want one error", len(es), errs)
			return errors.Join(errs...)
		}
		return errs[0]
	})
	failsInTime(t, "Delete", func() error {
		res, err := s.Delete(ctx, m.ID)
		if res != service.DeleteFailed {
			t.Errorf("Delete: %v, want DeleteFailed", res)
		}
		return err
	})
	failsInTime(t, "Ping", func() error { return s.Ping(ctx) })
	failsInTime(t, "Open (store)", func() error {
		cfg := f.cfg
		cfg.Timeout = timeout
		_, err := Open(ctx, cfg, modelfile.Limits{})
		return err
	})

	f.thaw()
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping once the server is back: %v", err)
	}
	// The Save that timed out had sent its whole body, which the server
	// reads once thawed: it may have stored it (a timeout cannot tell), but
	// never a mix.
	if _, got, err := s.Load(ctx, m.ID); err != nil {
		t.Errorf("Load once the server is back: %v", err)
	} else if b := encode(t, m, got); !bytes.Equal(b, encode(t, m, v1)) && !bytes.Equal(b, encode(t, m, v2)) {
		t.Error("Load once the server is back: neither version")
	}
	if err := s.Save(ctx, m, v2); err != nil {
		t.Errorf("Save once the server is back: %v", err)
	}
	if res, err := s.Delete(ctx, m.ID); res != service.DeleteRemoved || err != nil {
		t.Errorf("Delete once the server is back: %v, %v", res, err)
	}
}

// TestStalledDownload: a body that stops coming fails the read within the
// timeout, while a caller that takes its time between reads is not held
// to it: the timeout is S3's, not the caller's.
func TestStalledDownload(t *testing.T) {
	const timeout = 300 * time.Millisecond
	f := newFake(t)
	s := f.openTimeout(t, timeout)
	ctx := context.Background()
	m, n := testModel(t, []int{784, 400, 100, 10}, 1) // 2.8 MB: Open streams it
	if err := s.Save(ctx, m, n); err != nil {
		t.Fatal(err)
	}
	want := encode(t, m, n)

	// The caller's pauses do not count.
	rc, size, err := s.Open(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 100<<10)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * timeout) // the stimulus: a client that downloads slowly
	rest, err := io.ReadAll(rc)
	rc.Close()
	if got := append(head, rest...); err != nil || int64(len(got)) != size || !bytes.Equal(got, want) {
		t.Errorf("a download paused for %v: %d bytes of %d, %v", 3*timeout, len(got), size, err)
	}

	// S3's do.
	f.freeze(t, 256<<10) // every body stops after 256 KiB
	failsInTime(t, "Open's body", func() error {
		rc, _, err := s.Open(ctx, m.ID)
		if err != nil {
			t.Errorf("Open: %v; want the stall in its body", err)
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		t.Logf("read %d bytes of %d", len(b), len(want))
		return err
	})
	failsInTime(t, "Load", func() error { _, _, err := s.Load(ctx, m.ID); return err })
}

// TestPing: Ping tells whether the bucket can be reached.
func TestPing(t *testing.T) {
	var _ service.Pinger = (*Store)(nil)
	f := newFake(t)
	s := f.openTimeout(t, 300*time.Millisecond)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	f.freeze(t, 0)
	failsInTime(t, "Ping, frozen", func() error { return s.Ping(context.Background()) })
	f.thaw()
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping once thawed: %v", err)
	}
	if err := f.backend.DeleteBucket(bucket); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping succeeded without the bucket")
	}
	f.srv.Close()
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping succeeded with the server gone")
	}
}
