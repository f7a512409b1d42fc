package s3store

import (
	"github.com/mnist-go/nnserver/pkg/model"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/network"
)

// TestSnapshotIsACopyInTheBucket: a snapshot is one request that sends no
// bytes (S3 copies the object itself), under snapshots/<id>/, and is not
// listed as a network.
func TestSnapshotIsACopyInTheBucket(t *testing.T) {
	f := newFake(t)
	s := f.open(t)
	m, n := testModel(t, []int{784, 30, 10}, 1)
	m.Trained, m.EpochsTrained = true, 1
	if err := s.Save(t.Context(), m, n); err != nil {
		t.Fatal(err)
	}
	puts, sent := f.puts.Load(), f.putBytes.Load()
	if err := s.Snapshot(t.Context(), m.ID, 1); err != nil {
		t.Fatal(err)
	}
	if got, want := f.puts.Load()-puts, int64(1); got != want {
		t.Errorf("%d requests for a snapshot, want %d", got, want)
	}
	if got := f.putBytes.Load() - sent; got != 0 {
		t.Errorf("a snapshot sent %d bytes, want none", got)
	}
	if _, err := f.backend.HeadObject(bucket, "nets/snapshots/"+m.ID+"/1.npz"); err != nil {
		t.Errorf("no object under snapshots/<id>/1.npz: %v", err)
	}
	if got, err := s.Snapshots(t.Context(), m.ID); err != nil || !slices.Equal(got, []int{1}) {
		t.Errorf("Snapshots: %v, %v", got, err)
	}
	if _, gn, err := s.LoadSnapshot(t.Context(), m.ID, 1); err != nil || !sameParams(gn, n) {
		t.Errorf("LoadSnapshot: %v; the same parameters: %v", err, err == nil && sameParams(gn, n))
	}
	if es, errs := s.List(t.Context()); len(es) != 1 || len(errs) != 0 {
		t.Errorf("List: %d entries, %v; want the network alone", len(es), errs)
	}
}

func sameParams(am, bm model.Model) bool {
	a, b := am.(*network.Network), bm.(*network.Network)
	if !slices.Equal(a.Sizes(), b.Sizes()) {
		return false
	}
	for l := range a.NumLayers() {
		if !mat.Equal(a.Weights(l), b.Weights(l)) || !mat.Equal(a.Biases(l), b.Biases(l)) {
			return false
		}
	}
	return true
}
