//go:build unix

package dirstore

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/pkg/service"
)

// returnsPromptly runs f in a goroutine and fails t if it has not returned
// after a generous deadline. The deadline is a guard against a hang, which
// would otherwise stall the test binary until its timeout, not a way of
// waiting for f: a passing run never waits for it.
func returnsPromptly(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s has not returned after 20 s: it blocks", what)
	}
}

// TestNonRegularFiles puts files that are not regular, a FIFO first of all,
// under network names: opening a FIFO for reading blocks until a writer
// comes, so a store that opened one would hang its start-up forever.
func TestNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo, linkToFIFO, sock := newID(), newID(), newID()
	if err := syscall.Mkfifo(filepath.Join(dir, fifo+".npz"), 0o644); err != nil {
		t.Skip("cannot make a FIFO:", err)
	}
	if err := os.Symlink(fifo+".npz", filepath.Join(dir, linkToFIFO+".npz")); err != nil {
		t.Fatal(err)
	}
	// What Load must say of each: a socket cannot even be opened.
	wantErr := map[string]string{fifo: "named pipe (FIFO), not a regular file", linkToFIFO: "named pipe (FIFO), not a regular file"}
	ids := []string{fifo, linkToFIFO}
	// A socket too, when the path is short enough for one.
	if l, err := net.Listen("unix", filepath.Join(dir, sock+".npz")); err == nil {
		defer l.Close()
		ids = append(ids, sock)
		wantErr[sock] = "no such device or address"
	} else {
		t.Log("no socket:", err)
	}
	m, n := fixture(t)
	m.ID = newID()
	s := openStore(t, dir)
	if err := s.Save(t.Context(), m, n); err != nil {
		t.Fatal(err)
	}

	returnsPromptly(t, "List", func() {
		es, errs := s.List(t.Context())
		if len(es) != 1 || es[0].ID != m.ID {
			t.Errorf("List: %v, want only the regular file", es)
		}
		if len(errs) != len(ids) {
			t.Errorf("List: errors %v, want one naming each of %v", errs, ids)
		}
		for _, id := range ids {
			named := false
			for _, err := range errs {
				named = named || strings.Contains(err.Error(), id+".npz")
			}
			if !named {
				t.Errorf("List: errors %v name no %s.npz", errs, id)
			}
		}
	})
	for _, id := range ids {
		returnsPromptly(t, "Load", func() {
			_, _, err := s.Load(t.Context(), id)
			if err == nil || errors.Is(err, service.ErrModelNotFound) || !strings.Contains(err.Error(), wantErr[id]) {
				t.Errorf("Load %s: %v, want an error containing %q", id, err, wantErr[id])
			}
		})
	}
	for _, id := range ids {
		returnsPromptly(t, "Delete", func() {
			if got, err := s.Delete(t.Context(), id); got != service.DeleteRemoved || err != nil {
				t.Errorf("Delete %s: %v, %v; want removed, nil", id, got, err)
			}
		})
	}
	if names := dirNames(t, dir); len(names) != 1 || names[0] != m.ID+".npz" {
		t.Errorf("the directory holds %v, want only %s.npz", names, m.ID)
	}
}
