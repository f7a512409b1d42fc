package dirstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
	"github.com/mnist-go/nnserver/pkg/service"
)

// TestRoundTrip checks that Save writes the model file modelfile.Encode
// writes, under <id>.npz, and that Load and List read it back. (The format's
// own round trips are package modelfile's tests.)
func TestRoundTrip(t *testing.T) {
	untrained := newMeta(newID(), []int{784, 30, 10})
	untrained.Trained, untrained.Accuracy, untrained.EpochsTrained, untrained.History = false, nil, 0, nil
	for _, m := range []modelfile.Meta{newMeta(newID(), []int{784, 30, 10}), untrained, newMeta(newID(), []int{1, 1})} {
		t.Run(fmt.Sprint(m.Sizes, m.Trained), func(t *testing.T) {
			s := openStore(t, t.TempDir())
			n := newNet(t, m.Sizes, 7)
			if err := s.Save(t.Context(), m, n); err != nil {
				t.Fatal(err)
			}
			if got := getFile(t, filepath.Join(s.Dir(), m.ID+".npz")); !bytes.Equal(got, encode(t, m, n)) {
				t.Error("Save wrote other bytes than modelfile.Encode")
			}
			gm, gn, err := s.Load(t.Context(), m.ID)
			if err != nil {
				t.Fatal(err)
			}
			sameMeta(t, gm, m)
			sameNetwork(t, gn, n)
			es, errs := s.List(t.Context())
			if len(es) != 1 || len(errs) != 0 {
				t.Fatalf("List: %v, %v", es, errs)
			}
			sameMeta(t, es[0].Meta, modelfile.EntryOf(m).Meta)
		})
	}
}

// TestCorruptFiles plants files the format refuses (package modelfile tests
// every way a file can be corrupt; these are a few of each kind) and checks
// that Load, Open and List report them, naming the file, as corrupt: not as
// missing, nor as an invalid id.
func TestCorruptFiles(t *testing.T) {
	m, n := fixture(t)
	valid := encode(t, m, n)

	// A bit of w0's first value flipped: the headers are fine, the CRC-32
	// is not. The NPY preamble of our arrays takes 128 bytes.
	flipped := bytes.Clone(valid)
	flipped[bytes.Index(flipped, []byte("\x93NUMPY"))+128+3] ^= 0x40

	other := m
	other.ID = newID()

	tooDeep := newMeta(fixtureID, slices.Repeat([]int{2}, modelfile.DefaultMaxLayers+1))

	for _, tc := range []struct {
		name    string
		data    []byte
		wantErr string
		tooBig  bool // the error wraps modelfile.ErrTooLarge
		// listOK is set when only the weights are bad: List and Open read
		// no more than the headers, and only Load finds the fault.
		listOK bool
	}{
		{"empty file", nil, "zip", false, false},
		{"not a zip", []byte("hello, world"), "zip", false, false},
		{"truncated zip", valid[:len(valid)/2], "zip", false, false},
		{"no meta.json", edit(t, valid, "meta.json", nil), "meta.json is missing", false, false},
		{"meta sizes do not match npy shapes", withSizes(t, []int{3, 4, 2}), "shape [2 3] does not match", false, false},
		{"meta id of another network", encode(t, other, n), "does not match the file name", false, false},
		{"history not JSON", edit(t, valid, "history.json", []byte("[{")), "history.json: record 0", false, true},
		{"checksum mismatch", flipped, "checksum", false, true},
		{"over the Store's MaxLayers", encode(t, tooDeep, newNet(t, tooDeep.Sizes, 1)), "11 layers, more than the limit of 10 (MaxLayers)", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			putFile(t, filepath.Join(dir, fixtureID+".npz"), tc.data)
			s := openStore(t, dir)

			_, n, err := s.Load(t.Context(), fixtureID)
			if err == nil || n != nil {
				t.Fatalf("Load succeeded, want an error containing %q", tc.wantErr)
			}
			t.Log(err)
			if errors.Is(err, service.ErrModelNotFound) || errors.Is(err, modelfile.ErrInvalidID) {
				t.Errorf("Load: %v, want a corruption error", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), fixtureID+".npz") {
				t.Errorf("Load: %v, want an error naming the file and containing %q", err, tc.wantErr)
			}
			if errors.Is(err, modelfile.ErrTooLarge) != tc.tooBig {
				t.Errorf("Load: %v; wraps ErrTooLarge: %v, want %v", err, !tc.tooBig, tc.tooBig)
			}

			rc, _, openErr := s.Open(t.Context(), fixtureID)
			if openErr == nil {
				rc.Close()
			}
			es, errs := s.List(t.Context())
			if tc.listOK {
				if len(es) != 1 || len(errs) != 0 {
					t.Errorf("List: %d entries, errors %v; want the file listed", len(es), errs)
				}
				if openErr != nil {
					t.Errorf("Open: %v; want it to accept the headers", openErr)
				}
				return
			}
			if len(es) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), fixtureID+".npz") || !strings.Contains(errs[0].Error(), tc.wantErr) {
				t.Errorf("List: %d entries, errors %v; want one error naming the file and containing %q", len(es), errs, tc.wantErr)
			}
			if openErr == nil || errors.Is(openErr, service.ErrModelNotFound) || !strings.Contains(openErr.Error(), tc.wantErr) {
				t.Errorf("Open: %v; want it to refuse the file with an error containing %q", openErr, tc.wantErr)
			}
		})
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	put := func(name string, data []byte) { putFile(t, filepath.Join(dir, name), data) }

	// Written before Open, as a crash in the middle of a Save would leave it.
	stale := tempPrefix + newID() + "-XYZ"
	put(stale, []byte("half a network"))

	m, n := fixture(t)
	valid := encode(t, m, n)
	truncated, noMeta, mismatch := newID(), newID(), newID()
	put(truncated+".npz", valid[:len(valid)/2])
	put(noMeta+".npz", edit(t, valid, "meta.json", nil))
	put(mismatch+".npz", withSizes(t, []int{3, 4, 2}))
	// Ignored: their names are not <canonical uuid>.npz.
	put("notes.npz", []byte("not a network"))
	put(strings.ToUpper(newID())+".npz", valid)
	put(newID()+".npz.bak", valid)
	put(newID(), valid)
	put("README", []byte("hello"))
	dirEntry := newID()
	if err := os.Mkdir(filepath.Join(dir, dirEntry+".npz"), 0o755); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, dir)
	if slices.Contains(dirNames(t, dir), stale) {
		t.Errorf("Open left the stale temporary file %s", stale)
	}

	// Saved out of order, to check sorting by CreatedAt then ID.
	early, late1, late2 := newMeta(newID(), []int{3, 2, 2}), newMeta(newID(), []int{3, 2, 2}), newMeta(newID(), []int{5, 4, 3, 2})
	early.CreatedAt = late1.CreatedAt.Add(-1)
	late2.CreatedAt = late1.CreatedAt
	for _, m := range []modelfile.Meta{late1, late2, early} {
		if err := s.Save(t.Context(), m, newNet(t, m.Sizes, 3)); err != nil {
			t.Fatal(err)
		}
	}

	es, errs := s.List(t.Context())
	want := []string{early.ID, min(late1.ID, late2.ID), max(late1.ID, late2.ID)}
	var got []string
	for _, e := range es {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("List: ids %v, want %v", got, want)
	}
	for _, e := range es {
		if e.ID != late2.ID {
			continue
		}
		sameMeta(t, e.Meta, modelfile.EntryOf(late2).Meta)
		if ws, bs := [][2]int{{4, 5}, {3, 4}, {2, 3}}, [][2]int{{4, 1}, {3, 1}, {2, 1}}; !slices.Equal(e.WeightShapes, ws) || !slices.Equal(e.BiasShapes, bs) {
			t.Errorf("shapes %v, %v; want %v, %v", e.WeightShapes, e.BiasShapes, ws, bs)
		}
	}

	reported := map[string]bool{}
	for _, err := range errs {
		for _, id := range []string{truncated, noMeta, mismatch, dirEntry} {
			if strings.Contains(err.Error(), id+".npz") {
				reported[id] = true
			}
		}
	}
	if len(errs) != 4 || len(reported) != 4 {
		t.Errorf("List reported %d errors, want one for each of the 4 bad files:\n%v", len(errs), errors.Join(errs...))
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	putFile(t, filepath.Join(dir, "passwd"), []byte("root:x:0:0"))
	s := openStore(t, filepath.Join(dir, "models"))
	id := newID()
	for _, tc := range []struct {
		id   string
		want error
	}{
		{newID(), service.ErrModelNotFound},
		{"../../etc/passwd", modelfile.ErrInvalidID},
		{"../passwd", modelfile.ErrInvalidID},
		{"ABC", modelfile.ErrInvalidID},
		{"", modelfile.ErrInvalidID},
		{strings.ToUpper(id), modelfile.ErrInvalidID},
		{"{" + id + "}", modelfile.ErrInvalidID},
		{"urn:uuid:" + id, modelfile.ErrInvalidID},
		{strings.ReplaceAll(id, "-", ""), modelfile.ErrInvalidID},
		{id + "/../" + id, modelfile.ErrInvalidID},
		{id + "\x00", modelfile.ErrInvalidID},
	} {
		t.Run(fmt.Sprintf("%.40q", tc.id), func(t *testing.T) {
			if _, _, err := s.Load(t.Context(), tc.id); !errors.Is(err, tc.want) {
				t.Errorf("Load: %v, want %v", err, tc.want)
			}
			if tc.want == modelfile.ErrInvalidID {
				if _, err := s.Delete(t.Context(), tc.id); !errors.Is(err, modelfile.ErrInvalidID) {
					t.Errorf("Delete: %v, want %v", err, modelfile.ErrInvalidID)
				}
				m, n := fixture(t)
				m.ID = tc.id
				if err := s.Save(t.Context(), m, n); !errors.Is(err, modelfile.ErrInvalidID) {
					t.Errorf("Save: %v, want %v", err, modelfile.ErrInvalidID)
				}
			}
		})
	}
	if names := dirNames(t, s.Dir()); len(names) != 0 {
		t.Errorf("the directory holds %v, want nothing", names)
	}
}

// TestSymlinkOutside checks that a link in the directory cannot make Load
// read a file outside it.
func TestSymlinkOutside(t *testing.T) {
	dir := t.TempDir()
	m, n := fixture(t)
	putFile(t, filepath.Join(dir, "outside.npz"), encode(t, m, n))
	s := openStore(t, filepath.Join(dir, "models"))
	if err := os.Symlink("../outside.npz", filepath.Join(s.Dir(), fixtureID+".npz")); err != nil {
		t.Skip("cannot make a symbolic link:", err)
	}
	if _, _, err := s.Load(t.Context(), fixtureID); err == nil {
		t.Error("Load followed a link out of the directory")
	}
	if es, errs := s.List(t.Context()); len(es) != 0 || len(errs) != 1 {
		t.Errorf("List: %d entries, errors %v; want one error", len(es), errs)
	}
}

func TestSaveFailureKeepsPreviousFile(t *testing.T) {
	newDir := func(t *testing.T) (*Store, modelfile.Meta, []byte) {
		dir := t.TempDir()
		s := openStore(t, dir)
		m, n := fixture(t)
		if err := s.Save(t.Context(), m, n); err != nil {
			t.Fatal(err)
		}
		return s, m, getFile(t, filepath.Join(dir, m.ID+".npz"))
	}
	check := func(t *testing.T, s *Store, m modelfile.Meta, before []byte) {
		t.Helper()
		if after := getFile(t, filepath.Join(s.Dir(), m.ID+".npz")); !bytes.Equal(after, before) {
			t.Error("the previous file changed")
		}
		if names := dirNames(t, s.Dir()); !slices.Equal(names, []string{m.ID + ".npz"}) {
			t.Errorf("the directory holds %v, want only the previous file", names)
		}
	}

	nan := math.NaN()
	for _, tc := range []struct {
		name  string
		edit  func(m *modelfile.Meta) // applied to the fixture's Meta
		sizes []int                   // of the network to save
	}{
		{"sizes do not match the network", func(m *modelfile.Meta) {}, []int{3, 4, 2}},
		{"meta sizes changed", func(m *modelfile.Meta) { m.Sizes = []int{3, 3, 2} }, []int{3, 2, 2}},
		{"NaN accuracy", func(m *modelfile.Meta) { m.Accuracy = &nan }, []int{3, 2, 2}},
		{"negative epochs", func(m *modelfile.Meta) { m.EpochsTrained = -1 }, []int{3, 2, 2}},
		{"epochs beyond a life", func(m *modelfile.Meta) { m.EpochsTrained = modelfile.MaxHistory + 1 }, []int{3, 2, 2}},
		{"unknown init", func(m *modelfile.Meta) { m.Init = "Normal" }, []int{3, 2, 2}},
		{"history beyond epochs trained", func(m *modelfile.Meta) { m.EpochsTrained = 2 }, []int{3, 2, 2}},
		{"history out of order", func(m *modelfile.Meta) { m.History[0], m.History[1] = m.History[1], m.History[0] }, []int{3, 2, 2}},
		{"history job id too long", func(m *modelfile.Meta) { m.History[0].JobID = strings.Repeat("j", 65) }, []int{3, 2, 2}},
		{"history time beyond year 9999", func(m *modelfile.Meta) { m.History[0].FinishedAt = m.History[0].FinishedAt.AddDate(10000, 0, 0) }, []int{3, 2, 2}},
		{"too many layers", func(m *modelfile.Meta) { m.Sizes = slices.Repeat([]int{1}, modelfile.MaxLayers+1) }, slices.Repeat([]int{1}, modelfile.MaxLayers+1)},
		{"time beyond year 9999", func(m *modelfile.Meta) { m.UpdatedAt = m.UpdatedAt.AddDate(10000, 0, 0) }, []int{3, 2, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, m, before := newDir(t)
			tc.edit(&m)
			if err := s.Save(t.Context(), m, newNet(t, tc.sizes, 9)); err == nil {
				t.Fatal("Save succeeded")
			}
			check(t, s, m, before)
		})
	}

	t.Run("nil network", func(t *testing.T) {
		s, m, before := newDir(t)
		if err := s.Save(t.Context(), m, nil); err == nil {
			t.Fatal("Save succeeded")
		}
		check(t, s, m, before)
	})

	t.Run("read-only directory", func(t *testing.T) {
		s, m, before := newDir(t)
		if !makeReadOnly(t, s.Dir()) {
			testutil.SkipOrFail(t, "the directory cannot be made read-only here (neither the immutable attribute nor mode 0555 holds), so this failure cannot be provoked")
		}
		m.EpochsTrained++
		if err := s.Save(t.Context(), m, newNet(t, m.Sizes, 9)); err == nil {
			t.Fatal("Save succeeded")
		}
		check(t, s, m, before)
		if got, err := s.Delete(t.Context(), m.ID); got != service.DeleteFailed || err == nil {
			t.Errorf("Delete: %v, %v; want failed and an error", got, err)
		}
	})
}

func TestSaveReplaces(t *testing.T) {
	s := openStore(t, t.TempDir())
	m, n := fixture(t)
	if err := s.Save(t.Context(), m, n); err != nil {
		t.Fatal(err)
	}
	m.EpochsTrained++
	n2 := newNet(t, m.Sizes, 99)
	if err := s.Save(t.Context(), m, n2); err != nil {
		t.Fatal(err)
	}
	got, gn, err := s.Load(t.Context(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, got, m)
	sameNetwork(t, gn, n2)
}

var errInjected = errors.New("injected flush failure")

func TestDelete(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup prepares s and returns the id to delete.
		setup      func(t *testing.T, s *Store) string
		want       service.DeleteResult
		wantErr    string // empty: no error
		stillThere bool   // the file is there after Delete
	}{
		{"saved", func(t *testing.T, s *Store) string {
			return saveFixture(t, s)
		}, service.DeleteRemoved, "", false},
		{"not saved", func(t *testing.T, s *Store) string {
			return newID()
		}, service.DeleteNotFound, "", false},
		{"deleted twice", func(t *testing.T, s *Store) string {
			id := saveFixture(t, s)
			if got, err := s.Delete(t.Context(), id); got != service.DeleteRemoved || err != nil {
				t.Fatalf("first Delete: %v, %v", got, err)
			}
			return id
		}, service.DeleteNotFound, "", false},
		{"removed, the flush fails", func(t *testing.T, s *Store) string {
			id := saveFixture(t, s)
			s.flush = func(*os.File) error { return errInjected }
			return id
		}, service.DeleteRemovedNotFlushed, "removed, but not flushed to disk: injected flush failure", false},
		{"not removable", func(t *testing.T, s *Store) string {
			// A directory that is not empty cannot be removed, even by root.
			id := newID()
			if err := os.MkdirAll(filepath.Join(s.Dir(), id+".npz", "x"), 0o755); err != nil {
				t.Fatal(err)
			}
			return id
		}, service.DeleteFailed, "directory not empty", true},
		{"invalid id", func(t *testing.T, s *Store) string {
			return "../" + newID()
		}, service.DeleteFailed, "not a canonical lowercase UUID", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			id := tc.setup(t, s)
			got, err := s.Delete(t.Context(), id)
			if got != tc.want {
				t.Errorf("Delete: %v, want %v", got, tc.want)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Delete: error %v, want %q", err, tc.wantErr)
			}
			_, statErr := os.Lstat(filepath.Join(s.Dir(), id+".npz"))
			there := statErr == nil
			if there != tc.stillThere {
				t.Errorf("after Delete the file is there: %v, want %v", there, tc.stillThere)
			}
			if got.Gone() && there {
				t.Errorf("Delete says %v, Gone, but the file is there", got)
			}
			if !tc.stillThere {
				if _, _, err := s.Load(t.Context(), id); !errors.Is(err, service.ErrModelNotFound) && !errors.Is(err, modelfile.ErrInvalidID) {
					t.Errorf("Load after Delete: %v, want service.ErrModelNotFound", err)
				}
			}
		})
	}
}

// saveFixture saves the fixture network under a new id and returns the id.
func saveFixture(t *testing.T, s *Store) string {
	t.Helper()
	m, n := fixture(t)
	m.ID = newID()
	if err := s.Save(t.Context(), m, n); err != nil {
		t.Fatal(err)
	}
	return m.ID
}

func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "models")
	s := openStore(t, dir+"/")
	if s.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", s.Dir(), dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o700 != 0o700 {
		t.Errorf("created %v", fi.Mode())
	}
	if es, errs := s.List(t.Context()); len(es) != 0 || len(errs) != 0 {
		t.Errorf("List of a new directory: %v, %v", es, errs)
	}

	file := filepath.Join(t.TempDir(), "file")
	putFile(t, file, nil)
	if _, err := Open(file, modelfile.Limits{}); err == nil {
		t.Error("Open of a regular file succeeded")
	}
}

// TestConcurrent runs Saves, Loads, Lists and Deletes of many ids at once,
// and concurrent Saves and Loads of one id, for the race detector and to
// check that a Load never sees half a Save.
func TestConcurrent(t *testing.T) {
	s := openStore(t, t.TempDir())
	const workers, rounds = 6, 5
	sizes := []int{20, 5, 3}
	// Made here: t.Fatal must not be called from the workers' goroutines.
	nets := make([]*network.Network, workers*rounds)
	for i := range nets {
		nets[i] = newNet(t, sizes, uint64(i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				m := newMeta(newID(), sizes)
				n := nets[w*rounds+r]
				if err := s.Save(t.Context(), m, n); err != nil {
					errs <- err
					return
				}
				if _, got, err := s.Load(t.Context(), m.ID); err != nil {
					errs <- err
				} else if !slices.Equal(got.(*network.Network).Weights(0).RawMatrix().Data, n.Weights(0).RawMatrix().Data) {
					errs <- fmt.Errorf("%s: loaded other weights", m.ID)
				}
				if _, lerrs := s.List(t.Context()); len(lerrs) != 0 {
					errs <- errors.Join(lerrs...)
				}
				if r%2 == 0 {
					if got, err := s.Delete(t.Context(), m.ID); got != service.DeleteRemoved || err != nil {
						errs <- fmt.Errorf("Delete %s: %v, %v", m.ID, got, err)
					}
				}
			}
		})
	}

	// One id, saved with alternating contents while others load it.
	shared := newMeta(newID(), sizes)
	versions := []*network.Network{newNet(t, sizes, 1000), newNet(t, sizes, 1001)}
	if err := s.Save(t.Context(), shared, versions[0]); err != nil {
		t.Fatal(err)
	}
	for w := range 2 {
		wg.Go(func() {
			for r := range rounds {
				if err := s.Save(t.Context(), shared, versions[(w+r)%2]); err != nil {
					errs <- err
				}
			}
		})
		wg.Go(func() {
			for range rounds {
				_, got, err := s.Load(t.Context(), shared.ID)
				if err != nil {
					errs <- err
					continue
				}
				w := got.(*network.Network).Weights(0).RawMatrix().Data
				if !slices.Equal(w, versions[0].Weights(0).RawMatrix().Data) && !slices.Equal(w, versions[1].Weights(0).RawMatrix().Data) {
					errs <- errors.New("Load returned a mix of two Saves")
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	es, lerrs := s.List(t.Context())
	if want := 1 + workers*(rounds/2); len(es) != want || len(lerrs) != 0 {
		t.Errorf("List: %d entries, errors %v; want %d entries", len(es), lerrs, want)
	}
	for _, name := range dirNames(t, s.Dir()) {
		if strings.HasPrefix(name, tempPrefix) {
			t.Errorf("temporary file %s left behind", name)
		}
	}
}

// TestOpenDownload checks what Open hands out for a download: the file's
// bytes as they were when opened, even if a Save replaces the file while it
// is read, through a reader that can also seek and read at offsets.
func TestOpenDownload(t *testing.T) {
	s := openStore(t, t.TempDir())
	m, n := fixture(t)
	if err := s.Save(t.Context(), m, n); err != nil {
		t.Fatal(err)
	}
	before := getFile(t, filepath.Join(s.Dir(), m.ID+".npz"))
	rc, size, err := s.Open(t.Context(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if size != int64(len(before)) {
		t.Errorf("size %d, want %d", size, len(before))
	}
	m.EpochsTrained++
	m.History = append(m.History, m.History[2])
	m.History[3].Epoch = 4
	if err := s.Save(t.Context(), m, newNet(t, m.Sizes, 77)); err != nil {
		t.Fatal(err)
	}
	rs, ok := rc.(io.ReadSeeker)
	if !ok {
		t.Fatalf("%T is not an io.ReadSeeker", rc)
	}
	if _, err := rs.Seek(10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, before) {
		t.Error("Open read other bytes than the file's when opened")
	}
	if ra, ok := rc.(io.ReaderAt); !ok {
		t.Errorf("%T is not an io.ReaderAt", rc)
	} else if _, _, err := modelfile.Decode(ra, size, modelfile.Limits{}); err != nil {
		t.Errorf("Decode through the reader: %v", err)
	}
}

// BenchmarkList lists a directory of 100 networks of 784-30-10, each with
// a history of 30 epochs, as the service does at start-up.
func BenchmarkList(b *testing.B) {
	s := openStore(b, b.TempDir())
	n := newNet(b, []int{784, 30, 10}, 1)
	for range 100 {
		m := newMeta(newID(), []int{784, 30, 10})
		m.EpochsTrained, m.History = 30, history(30, m.CreatedAt)
		if err := s.Save(b.Context(), m, n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if es, errs := s.List(b.Context()); len(es) != 100 || len(errs) != 0 {
			b.Fatalf("List: %d entries, errors %v", len(es), errs)
		}
	}
}

// writeRefused reports whether dir refuses a new file.
func writeRefused(dir string) bool {
	probe := filepath.Join(dir, "probe")
	if err := os.WriteFile(probe, nil, 0o644); err == nil {
		os.Remove(probe)
		return false
	}
	return true
}

func TestOpenLimits(t *testing.T) {
	for _, tc := range []struct {
		lim     modelfile.Limits
		want    modelfile.Limits
		wantErr string
	}{
		{modelfile.Limits{}, modelfile.Limits{MaxLayers: modelfile.DefaultMaxLayers, MaxParams: modelfile.DefaultMaxParams, MaxMACs: modelfile.DefaultMaxMACs, MaxActivations: modelfile.DefaultMaxActivations}, ""},
		{modelfile.Limits{MaxLayers: 3}, modelfile.Limits{MaxLayers: 3, MaxParams: modelfile.DefaultMaxParams, MaxMACs: modelfile.DefaultMaxMACs, MaxActivations: modelfile.DefaultMaxActivations}, ""},
		{modelfile.Limits{MaxParams: 7}, modelfile.Limits{MaxLayers: modelfile.DefaultMaxLayers, MaxParams: 7, MaxMACs: modelfile.DefaultMaxMACs, MaxActivations: modelfile.DefaultMaxActivations}, ""},
		{modelfile.Limits{MaxLayers: modelfile.MaxLayers, MaxParams: modelfile.MaxParams}, modelfile.Limits{MaxLayers: modelfile.MaxLayers, MaxParams: modelfile.MaxParams, MaxMACs: modelfile.DefaultMaxMACs, MaxActivations: modelfile.DefaultMaxActivations}, ""},
		{modelfile.Limits{MaxLayers: modelfile.MaxLayers + 1}, modelfile.Limits{}, "MaxLayers 65"},
		{modelfile.Limits{MaxLayers: 1}, modelfile.Limits{}, "MaxLayers 1"},
		{modelfile.Limits{MaxParams: modelfile.MaxParams + 1}, modelfile.Limits{}, "MaxParams 50000001"},
		{modelfile.Limits{MaxParams: -1}, modelfile.Limits{}, "MaxParams -1"},
	} {
		t.Run(fmt.Sprintf("%+v", tc.lim), func(t *testing.T) {
			s, err := Open(t.TempDir(), tc.lim)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Limits() != tc.want {
				t.Errorf("Limits() = %+v, want %+v", s.Limits(), tc.want)
			}
		})
	}
}

func TestSaveLimits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lim     modelfile.Limits
		sizes   []int
		wantErr string // empty: Save succeeds
	}{
		{"at MaxLayers", modelfile.Limits{MaxLayers: 4}, []int{3, 2, 2, 2}, ""},
		{"over MaxLayers", modelfile.Limits{MaxLayers: 3}, []int{3, 2, 2, 2}, "4 layers, more than the limit of 3 (MaxLayers)"},
		{"at MaxParams", modelfile.Limits{MaxParams: 3*4 + 2*4}, []int{3, 3, 2}, ""},
		{"over MaxParams", modelfile.Limits{MaxParams: 3*4 + 2*4 - 1}, []int{3, 3, 2}, "need 20 weights and biases, more than the limit of 19 (MaxParams)"},
		{"a layer over MaxParams", modelfile.Limits{MaxParams: 10}, []int{11, 1}, "layer 0 has 11 neurons"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.TempDir(), tc.lim)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			m := newMeta(newID(), tc.sizes)
			err = s.Save(t.Context(), m, newNet(t, tc.sizes, 1))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := s.Load(t.Context(), m.ID); err != nil {
					t.Errorf("Load of what Save wrote: %v", err)
				}
				return
			}
			if !errors.Is(err, modelfile.ErrTooLarge) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Save: %v, want ErrTooLarge containing %q", err, tc.wantErr)
			}
			if names := dirNames(t, s.Dir()); len(names) != 0 {
				t.Errorf("Save left %v", names)
			}
		})
	}
}

// TestReadLimits checks that Load and List hold the files they read to the
// Store's limits, the operator's, not the format's caps or the defaults.
// (What a file beyond the limits costs to refuse, zip bombs included, is
// package modelfile's to test.)
func TestReadLimits(t *testing.T) {
	sixtyFour := []int{784, 6400, 10} // 5,088,010 parameters
	for _, tc := range []struct {
		name    string
		lim     modelfile.Limits
		data    []byte
		wantErr string
		tooBig  bool // the error must wrap ErrTooLarge
	}{
		{"over the operator's MaxParams, under the format's", modelfile.Limits{}, withSizes(t, sixtyFour),
			"need 5088010 weights and biases, more than the limit of 5000000 (MaxParams)", true},
		// The same file, on a server that allows it, gets past the limit and
		// fails on its (fixture's) arrays: the limit is the operator's.
		{"under a raised MaxParams", modelfile.Limits{MaxParams: 6_000_000}, withSizes(t, sixtyFour),
			"does not match the layer sizes", false},
		{"over the operator's MaxLayers", modelfile.Limits{MaxLayers: 2}, withSizes(t, []int{3, 2, 2}),
			"3 layers, more than the limit of 2 (MaxLayers)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			putFile(t, filepath.Join(dir, fixtureID+".npz"), tc.data)
			s, err := Open(dir, tc.lim)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, _, err = s.Load(t.Context(), fixtureID)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, modelfile.ErrTooLarge) != tc.tooBig {
				t.Errorf("Load: %v, want an error containing %q (wrapping ErrTooLarge: %v)", err, tc.wantErr, tc.tooBig)
			}
			es, errs := s.List(t.Context())
			if len(es) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.wantErr) {
				t.Errorf("List: %d entries, errors %v; want one error containing %q", len(es), errs, tc.wantErr)
			}
		})
	}
}
