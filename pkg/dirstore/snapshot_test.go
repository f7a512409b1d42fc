package dirstore

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSnapshotIsAHardLink: a snapshot shares the model file's bytes (no
// byte is copied) until the next Save renames a new file over the model,
// after which the snapshot still holds the epoch it was taken after.
func TestSnapshotIsAHardLink(t *testing.T) {
	s := openStore(t, t.TempDir())
	m, n := fixture(t)
	if err := s.Save(t.Context(), m, n); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(t.Context(), m.ID, m.EpochsTrained); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(s.Dir(), m.ID+".npz")
	snap := filepath.Join(s.Dir(), "snapshots", m.ID, "3.npz")
	a, err := os.Stat(model)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.Stat(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(a, b) {
		t.Fatal("the snapshot is not a hard link to the model file")
	}
	before := getFile(t, model)
	m2 := m
	m2.EpochsTrained++
	if err := s.Save(t.Context(), m2, newNet(t, m.Sizes, 99)); err != nil {
		t.Fatal(err)
	}
	if a, _ = os.Stat(model); os.SameFile(a, b) {
		t.Error("a Save wrote into the snapshot's file")
	}
	if !bytes.Equal(getFile(t, snap), before) {
		t.Error("the snapshot changed with the Save after it")
	}
	if names := dirNames(t, filepath.Join(s.Dir(), "snapshots", m.ID)); !slices.Equal(names, []string{"3.npz"}) {
		t.Errorf("snapshot directory holds %v", names)
	}
}

// TestSnapshotOfALinkedModelIsACopy: a model that is a symbolic link (to a
// file in the directory) is copied, not linked: a hard link to the link
// would follow the model, not keep it.
func TestSnapshotOfALinkedModelIsACopy(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	m, n := fixture(t)
	data := encode(t, m, n)
	putFile(t, filepath.Join(dir, "elsewhere.bin"), data)
	if err := os.Symlink("elsewhere.bin", filepath.Join(dir, m.ID+".npz")); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	if err := s.Snapshot(t.Context(), m.ID, m.EpochsTrained); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, "snapshots", m.ID, "3.npz")
	fi, err := os.Lstat(snap)
	if err != nil || !fi.Mode().IsRegular() || !bytes.Equal(getFile(t, snap), data) {
		t.Fatalf("snapshot %v, %v: want a regular file with the model's bytes", fi, err)
	}
	putFile(t, filepath.Join(dir, "elsewhere.bin"), []byte("changed"))
	if _, _, err := s.LoadSnapshot(t.Context(), m.ID, 3); err != nil {
		t.Errorf("the snapshot follows the link: %v", err)
	}
}

// TestSnapshotsSurviveReopen: snapshots stay across a restart (a new Store
// on the directory); Open removes the temporary files of interrupted
// snapshots and the snapshots of a network whose model is gone.
func TestSnapshotsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	m, n := fixture(t)
	if err := s.Save(t.Context(), m, n); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(t.Context(), m.ID, 3); err != nil {
		t.Fatal(err)
	}
	orphan := newID()
	if err := os.MkdirAll(filepath.Join(dir, "snapshots", orphan), 0o755); err != nil {
		t.Fatal(err)
	}
	putFile(t, filepath.Join(dir, "snapshots", orphan, "1.npz"), encode(t, m, n))
	leftover := filepath.Join(dir, "snapshots", m.ID, tempPrefix+"x")
	putFile(t, leftover, []byte("half a snapshot"))
	s.Close()

	s = openStore(t, dir)
	if got, err := s.Snapshots(t.Context(), m.ID); err != nil || !slices.Equal(got, []int{3}) {
		t.Errorf("Snapshots after a restart: %v, %v; want [3]", got, err)
	}
	if _, gn, err := s.LoadSnapshot(t.Context(), m.ID, 3); err != nil {
		t.Error(err)
	} else {
		sameNetwork(t, gn, n)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("the temporary file of an interrupted snapshot is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", orphan)); !os.IsNotExist(err) {
		t.Errorf("the snapshots of a network without a model are still there: %v", err)
	}
	if es, errs := s.List(t.Context()); len(es) != 1 || len(errs) != 0 {
		t.Errorf("List: %d entries, %v; want the one network", len(es), errs)
	}
}
