// Package storetest is the contract every implementation of service.Store
// passes: the directory store of single mode (pkg/dirstore) and the
// S3-compatible one of scaled mode (pkg/s3store) run Run, so that the
// service can rely on the same behaviour from all of them.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/model"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"

	"github.com/google/uuid"
	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
	"github.com/mnist-go/nnserver/pkg/service"
)

// Run tests the store newStore returns against the contract. Each call of
// newStore must return a new, empty store that uses the default limits (the
// zero modelfile.Limits); it should register its own cleanup with
// t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) service.Store) {
	tests := []struct {
		name string
		test func(t *testing.T, s service.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"OpenReturnsEncodedBytes", testOpen},
		{"ListOrderAndShapes", testList},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"InvalidIDs", testInvalidIDs},
		{"Limits", testLimits},
		{"CancelledContext", testCancelled},
		{"ConcurrentSaveAndLoad", testConcurrent},
		{"Snapshots", testSnapshots},
		{"SnapshotErrors", testSnapshotErrors},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.test(t, newStore(t))
		})
	}
}

// net returns a network of the given sizes with parameters drawn from a
// generator seeded with seed: the same arguments give the same network. It
// uses FromParams, so that the suite does not depend on how network.New
// initialises.
func net(t *testing.T, sizes []int, seed uint64) *network.Network {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var ws []*mat.Dense
	var bs []*mat.VecDense
	for l := 1; l < len(sizes); l++ {
		w := make([]float64, sizes[l]*sizes[l-1])
		for i := range w {
			w[i] = rng.NormFloat64()
		}
		b := make([]float64, sizes[l])
		for i := range b {
			b[i] = rng.NormFloat64()
		}
		ws = append(ws, mat.NewDense(sizes[l], sizes[l-1], w))
		bs = append(bs, mat.NewVecDense(sizes[l], b))
	}
	n, err := network.FromParams(sizes, ws, bs)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// meta returns a full description of a network of the given sizes, created
// at created.
func meta(sizes []int, created time.Time) modelfile.Meta {
	acc := 0.8765
	seed := uint64(1<<64 - 3) // beyond 2^53: must survive exactly
	job := uuid.NewString()
	var history []modelfile.EpochRecord
	for e := 1; e <= 2; e++ {
		history = append(history, modelfile.EpochRecord{
			Epoch: e, JobID: job, Accuracy: 0.8 + float64(e)/100, Correct: 8000 + 100*e, Total: 10000,
			ElapsedTime: 0.5 * float64(e), LearningRate: 0.5, MiniBatchSize: 32, Cost: "cross_entropy",
			Lambda: 5, Seed: uint64(e) << 60, FinishedAt: created.Add(time.Duration(e) * time.Second),
		})
	}
	return modelfile.Meta{
		Name:          "ch. 3 — η 0.5",
		Notes:         "scaled init\ncross-entropy",
		ID:            uuid.NewString(),
		Sizes:         slices.Clone(sizes),
		Init:          modelfile.InitScaled,
		Seed:          &seed,
		Trained:       true,
		Accuracy:      &acc,
		EpochsTrained: 2,
		History:       history,
		CreatedAt:     created,
		UpdatedAt:     created.Add(time.Minute + 123456789),
	}
}

var epoch = time.Date(2024, 5, 1, 12, 0, 0, 987654321, time.UTC)

// sameNetwork fails t unless got has want's sizes and bit-identical
// parameters.
func sameNetwork(t *testing.T, got, want model.Model) {
	t.Helper()
	if err := diffNetwork(got, want); err != nil {
		t.Fatal(err)
	}
}

func diffNetwork(gotM, wantM model.Model) error {
	if !slices.Equal(gotM.Sizes(), wantM.Sizes()) {
		return fmt.Errorf("sizes %v, want %v", gotM.Sizes(), wantM.Sizes())
	}
	if !slices.Equal(model.Layers(gotM), model.Layers(wantM)) {
		return fmt.Errorf("layers %v, want %v", model.Layers(gotM), model.Layers(wantM))
	}
	if gd, ok := gotM.(*deep.Network); ok {
		gw, gb, _ := gd.Params()
		ww, wb, _ := wantM.(*deep.Network).Params()
		for i := range ww {
			if !slices.Equal(gw[i], ww[i]) || !slices.Equal(gb[i], wb[i]) {
				return fmt.Errorf("parameters of layer %d differ", i)
			}
		}
		return nil
	}
	got, want := gotM.(*network.Network), wantM.(*network.Network)
	for l := range want.NumLayers() {
		gw, ww := got.Weights(l), want.Weights(l)
		r, c := ww.Dims()
		for i := range r {
			for j := range c {
				if math.Float64bits(gw.At(i, j)) != math.Float64bits(ww.At(i, j)) {
					return fmt.Errorf("layer %d weight (%d, %d) is %v, want %v", l, i, j, gw.At(i, j), ww.At(i, j))
				}
			}
		}
		gb, wb := got.Biases(l), want.Biases(l)
		for i := range wb.Len() {
			if math.Float64bits(gb.AtVec(i)) != math.Float64bits(wb.AtVec(i)) {
				return fmt.Errorf("layer %d bias %d is %v, want %v", l, i, gb.AtVec(i), wb.AtVec(i))
			}
		}
	}
	return nil
}

// sameMeta fails t unless got describes what want does; times are compared
// as instants.
func sameMeta(t *testing.T, got, want modelfile.Meta) {
	t.Helper()
	if got.ID != want.ID || !slices.Equal(got.Sizes, want.Sizes) || got.Init != want.Init ||
		!samePtr(got.Seed, want.Seed) || got.Trained != want.Trained ||
		got.EpochsTrained != want.EpochsTrained || !got.CreatedAt.Equal(want.CreatedAt) ||
		!got.UpdatedAt.Equal(want.UpdatedAt) || !samePtr(got.Accuracy, want.Accuracy) ||
		!slices.EqualFunc(got.History, want.History, sameRecord) || got.Name != want.Name || got.Notes != want.Notes {
		t.Fatalf("meta\n got %+v\nwant %+v", got, want)
	}
}

func samePtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// sameRecord compares records, their times as instants.
func sameRecord(a, b modelfile.EpochRecord) bool {
	at, bt := a.FinishedAt, b.FinishedAt
	a.FinishedAt, b.FinishedAt = time.Time{}, time.Time{}
	return a == b && at.Equal(bt)
}

func ids(es []modelfile.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func testRoundTrip(t *testing.T, s service.Store) {
	ctx := t.Context()
	untrained := meta([]int{784, 30, 10}, epoch)
	untrained.Trained, untrained.Accuracy, untrained.EpochsTrained, untrained.History = false, nil, 0, nil
	imported := meta([]int{784, 30, 10}, epoch)
	imported.Init, imported.Seed = "", nil
	for i, m := range []modelfile.Meta{
		meta([]int{784, 30, 10}, epoch),
		meta([]int{784, 17, 5, 10}, epoch),
		untrained,
		imported,
		meta([]int{1, 1}, epoch),
		meta(slices.Repeat([]int{2}, modelfile.DefaultMaxLayers), epoch), // at the layer limit
	} {
		n := net(t, m.Sizes, uint64(i))
		if err := s.Save(ctx, m, n); err != nil {
			t.Fatalf("Save %v: %v", m.Sizes, err)
		}
		gm, gn, err := s.Load(ctx, m.ID)
		if err != nil {
			t.Fatalf("Load %v: %v", m.Sizes, err)
		}
		sameMeta(t, gm, m)
		sameNetwork(t, gn, n)
	}
}

func testOpen(t *testing.T, s service.Store) {
	ctx := t.Context()
	m := meta([]int{784, 16, 10}, epoch)
	n := net(t, m.Sizes, 7)
	if err := s.Save(ctx, m, n); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := modelfile.Encode(&want, m, n); err != nil {
		t.Fatal(err)
	}
	rc, size, err := s.Open(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(got)) {
		t.Errorf("Open says %d bytes, reads %d", size, len(got))
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("Open returns %d bytes that differ from modelfile.Encode's %d", len(got), want.Len())
	}
	gm, gn, err := modelfile.Decode(bytes.NewReader(got), int64(len(got)), modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, gm, m)
	sameNetwork(t, gn, n)
}

func testList(t *testing.T, s service.Store) {
	ctx := t.Context()
	if es, errs := s.List(ctx); len(es) != 0 || len(errs) != 0 {
		t.Fatalf("List of an empty store: %v, %v", es, errs)
	}
	early := meta([]int{3, 2, 2}, epoch.Add(-time.Nanosecond))
	late1, late2 := meta([]int{3, 2, 2}, epoch), meta([]int{5, 4, 3, 2}, epoch)
	// Saved out of order, to check sorting by CreatedAt, then ID.
	for i, m := range []modelfile.Meta{late1, late2, early} {
		if err := s.Save(ctx, m, net(t, m.Sizes, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	es, errs := s.List(ctx)
	if len(errs) != 0 {
		t.Fatalf("List: errors %v", errs)
	}
	if want := []string{early.ID, min(late1.ID, late2.ID), max(late1.ID, late2.ID)}; !slices.Equal(ids(es), want) {
		t.Fatalf("List: ids %v, want %v", ids(es), want)
	}
	for _, e := range es {
		if e.ID != late2.ID {
			continue
		}
		// List leaves the history out.
		sameMeta(t, e.Meta, modelfile.EntryOf(late2).Meta)
		ws, bs := [][2]int{{4, 5}, {3, 4}, {2, 3}}, [][2]int{{4, 1}, {3, 1}, {2, 1}}
		if !slices.Equal(e.WeightShapes, ws) || !slices.Equal(e.BiasShapes, bs) {
			t.Errorf("shapes %v, %v; want %v, %v", e.WeightShapes, e.BiasShapes, ws, bs)
		}
	}
}

func testOverwrite(t *testing.T, s service.Store) {
	ctx := t.Context()
	m := meta([]int{6, 4, 2}, epoch)
	if err := s.Save(ctx, m, net(t, m.Sizes, 1)); err != nil {
		t.Fatal(err)
	}
	next := m.History[1]
	next.Epoch++
	m.History = append(m.History, next)
	m.EpochsTrained++
	m.UpdatedAt = m.UpdatedAt.Add(time.Hour)
	n2 := net(t, m.Sizes, 2)
	if err := s.Save(ctx, m, n2); err != nil {
		t.Fatal(err)
	}
	gm, gn, err := s.Load(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, gm, m)
	sameNetwork(t, gn, n2)
	if es, errs := s.List(ctx); len(es) != 1 || len(errs) != 0 {
		t.Errorf("List after an overwrite: %v, %v; want one entry", ids(es), errs)
	}
}

func testDelete(t *testing.T, s service.Store) {
	ctx := t.Context()
	m, other := meta([]int{3, 2, 2}, epoch), meta([]int{3, 2, 2}, epoch)
	for _, m := range []modelfile.Meta{m, other} {
		if err := s.Save(ctx, m, net(t, m.Sizes, 3)); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []service.DeleteResult{service.DeleteRemoved, service.DeleteNotFound} {
		got, err := s.Delete(ctx, m.ID)
		if got != want || err != nil {
			t.Errorf("Delete #%d: %v, %v; want %v, nil", i+1, got, err, want)
		}
		if !got.Gone() {
			t.Errorf("Delete #%d: %v is not Gone", i+1, got)
		}
	}
	if _, _, err := s.Load(ctx, m.ID); !errors.Is(err, service.ErrModelNotFound) {
		t.Errorf("Load after Delete: %v, want ErrNotFound", err)
	}
	if _, _, err := s.Open(ctx, m.ID); !errors.Is(err, service.ErrModelNotFound) {
		t.Errorf("Open after Delete: %v, want ErrNotFound", err)
	}
	if es, errs := s.List(ctx); !slices.Equal(ids(es), []string{other.ID}) || len(errs) != 0 {
		t.Errorf("List after Delete: %v, %v; want only the other network", ids(es), errs)
	}
	if _, _, err := s.Load(ctx, other.ID); err != nil {
		t.Errorf("Load of the other network: %v", err)
	}
}

func testNotFound(t *testing.T, s service.Store) {
	ctx := t.Context()
	id := uuid.NewString()
	if _, _, err := s.Load(ctx, id); !errors.Is(err, service.ErrModelNotFound) {
		t.Errorf("Load: %v, want ErrNotFound", err)
	}
	if rc, _, err := s.Open(ctx, id); !errors.Is(err, service.ErrModelNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Open: %v, want ErrNotFound", err)
	}
	if got, err := s.Delete(ctx, id); got != service.DeleteNotFound || err != nil {
		t.Errorf("Delete: %v, %v; want not found, nil", got, err)
	}
}

func testInvalidIDs(t *testing.T, s service.Store) {
	ctx := t.Context()
	id := uuid.NewString()
	for _, bad := range []string{
		"", "ABC", "../" + id, id + "/x", strings.ToUpper(id), "{" + id + "}",
		"urn:uuid:" + id, strings.ReplaceAll(id, "-", ""), id + "\x00", id + ".npz",
	} {
		t.Run(fmt.Sprintf("%.40q", bad), func(t *testing.T) {
			m := meta([]int{3, 2, 2}, epoch)
			m.ID = bad
			if err := s.Save(ctx, m, net(t, m.Sizes, 1)); !errors.Is(err, modelfile.ErrInvalidID) {
				t.Errorf("Save: %v, want ErrInvalidID", err)
			}
			if _, _, err := s.Load(ctx, bad); !errors.Is(err, modelfile.ErrInvalidID) {
				t.Errorf("Load: %v, want ErrInvalidID", err)
			}
			if rc, _, err := s.Open(ctx, bad); !errors.Is(err, modelfile.ErrInvalidID) {
				if rc != nil {
					rc.Close()
				}
				t.Errorf("Open: %v, want ErrInvalidID", err)
			}
			if got, err := s.Delete(ctx, bad); got != service.DeleteFailed || !errors.Is(err, modelfile.ErrInvalidID) {
				t.Errorf("Delete: %v, %v; want failed, ErrInvalidID", got, err)
			}
		})
	}
	if es, errs := s.List(ctx); len(es) != 0 || len(errs) != 0 {
		t.Errorf("List: %v, %v; want nothing saved", ids(es), errs)
	}
}

// testLimits saves networks just beyond the default limits
// (modelfile.DefaultMaxLayers and DefaultMaxParams). Networks just within
// them are saved by testRoundTrip (layers) and here (params).
func testLimits(t *testing.T, s service.Store) {
	ctx := t.Context()
	for _, sizes := range [][]int{
		slices.Repeat([]int{1}, modelfile.DefaultMaxLayers+1),
		{modelfile.DefaultMaxParams, 1}, // one weight per input and a bias
	} {
		m := meta(sizes, epoch)
		n := zeros(t, sizes)
		if err := s.Save(ctx, m, n); !errors.Is(err, modelfile.ErrTooLarge) {
			t.Errorf("Save of %d layers, %d inputs: %v, want ErrTooLarge", len(sizes), sizes[0], err)
		}
		if _, _, err := s.Load(ctx, m.ID); !errors.Is(err, service.ErrModelNotFound) {
			t.Errorf("Load of what Save refused: %v, want ErrNotFound", err)
		}
	}
	if testing.Short() {
		return
	}
	// Exactly at MaxParams: 40 MB of parameters, saved and loaded back.
	sizes := []int{modelfile.DefaultMaxParams - 1, 1}
	m := meta(sizes, epoch)
	n := zeros(t, sizes)
	if err := s.Save(ctx, m, n); err != nil {
		t.Fatalf("Save at MaxParams: %v", err)
	}
	if _, got, err := s.Load(ctx, m.ID); err != nil {
		t.Errorf("Load at MaxParams: %v", err)
	} else if !slices.Equal(got.Sizes(), sizes) {
		t.Errorf("Load at MaxParams: sizes %v", got.Sizes())
	}
}

func zeros(t *testing.T, sizes []int) *network.Network { return testutil.ZeroNetwork(t, sizes) }

func testCancelled(t *testing.T, s service.Store) {
	saved := meta([]int{3, 2, 2}, epoch)
	if err := s.Save(t.Context(), saved, net(t, saved.Sizes, 1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	m := meta([]int{3, 2, 2}, epoch)
	if err := s.Save(ctx, m, net(t, m.Sizes, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Save: %v, want context.Canceled", err)
	}
	if _, _, err := s.Load(ctx, saved.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Load: %v, want context.Canceled", err)
	}
	if rc, _, err := s.Open(ctx, saved.ID); !errors.Is(err, context.Canceled) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Open: %v, want context.Canceled", err)
	}
	if es, errs := s.List(ctx); len(es) != 0 || len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Errorf("List: %v, %v; want no entries and context.Canceled", ids(es), errs)
	}
	if got, err := s.Delete(ctx, saved.ID); got != service.DeleteFailed || !errors.Is(err, context.Canceled) {
		t.Errorf("Delete: %v, %v; want failed, context.Canceled", got, err)
	}
	// Nothing was done.
	if es, errs := s.List(t.Context()); !slices.Equal(ids(es), []string{saved.ID}) || len(errs) != 0 {
		t.Errorf("List afterwards: %v, %v; want only the network saved before", ids(es), errs)
	}
}

// testConcurrent saves two versions of one network in turn while others
// load and open it: every Load must see one version whole, never a mix or
// a torn file.
func testConcurrent(t *testing.T, s service.Store) {
	ctx := t.Context()
	m := meta([]int{50, 20, 10}, epoch)
	versions := []*network.Network{net(t, m.Sizes, 100), net(t, m.Sizes, 101)}
	var encoded [2][]byte
	for i, v := range versions {
		var b bytes.Buffer
		if err := modelfile.Encode(&b, m, v); err != nil {
			t.Fatal(err)
		}
		encoded[i] = b.Bytes()
	}
	if err := s.Save(ctx, m, versions[0]); err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	errs := make(chan error, 8*rounds)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for r := range rounds {
				if err := s.Save(ctx, m, versions[(w+r)%2]); err != nil {
					errs <- err
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range rounds {
				_, got, err := s.Load(ctx, m.ID)
				if err != nil {
					errs <- err
					continue
				}
				if diffNetwork(got, versions[0]) != nil && diffNetwork(got, versions[1]) != nil {
					errs <- errors.New("load returned neither saved version whole")
				}
			}
		})
	}
	wg.Go(func() {
		for range rounds {
			rc, _, err := s.Open(ctx, m.ID)
			if err != nil {
				errs <- err
				continue
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				errs <- err
			} else if !bytes.Equal(b, encoded[0]) && !bytes.Equal(b, encoded[1]) {
				errs <- errors.New("open returned neither saved version's bytes")
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if es, lerrs := s.List(ctx); len(es) != 1 || len(lerrs) != 0 {
		t.Errorf("List afterwards: %v, %v; want the one network", ids(es), lerrs)
	}
}

// after returns m as it stands after one more epoch, numbered epochs.
func after(m modelfile.Meta, epochs int) modelfile.Meta {
	last := m.History[len(m.History)-1]
	last.Epoch, last.FinishedAt = epochs, last.FinishedAt.Add(time.Second)
	m.History = append(slices.Clone(m.History), last)
	m.EpochsTrained = epochs
	return m
}

// encoded is what modelfile.Encode writes for m and n.
func encoded(t *testing.T, m modelfile.Meta, n *network.Network) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := modelfile.Encode(&b, m, n); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readAll(t *testing.T, rc io.ReadCloser, size int64) []byte {
	t.Helper()
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(got)) {
		t.Errorf("size %d, read %d bytes", size, len(got))
	}
	return got
}

// testSnapshots: a snapshot keeps the model as it was stored when it was
// taken, whatever is saved after it; snapshots are listed by epoch, read
// and opened as models, replaced, deleted one by one and with the network,
// and never listed as networks.
func testSnapshots(t *testing.T, s service.Store) {
	ctx := t.Context()
	m2 := meta([]int{20, 7, 10}, epoch) // two epochs trained
	m3, m4 := after(m2, 3), after(after(m2, 3), 4)
	n2, n3, n4, n3b := net(t, m2.Sizes, 2), net(t, m2.Sizes, 3), net(t, m2.Sizes, 4), net(t, m2.Sizes, 5)
	other := meta([]int{3, 2, 2}, epoch)
	if err := s.Save(ctx, other, net(t, other.Sizes, 1)); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		m modelfile.Meta
		n *network.Network
	}{{m2, n2}, {m3, n3}, {m4, n4}} {
		if err := s.Save(ctx, v.m, v.n); err != nil {
			t.Fatal(err)
		}
		if v.m.EpochsTrained < 4 {
			if err := s.Snapshot(ctx, v.m.ID, v.m.EpochsTrained); err != nil {
				t.Fatalf("Snapshot after epoch %d: %v", v.m.EpochsTrained, err)
			}
		}
	}
	if got, err := s.Snapshots(ctx, m2.ID); err != nil || !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("Snapshots: %v, %v; want [2 3]", got, err)
	}
	if got, err := s.Snapshots(ctx, other.ID); err != nil || len(got) != 0 {
		t.Errorf("Snapshots of another network: %v, %v; want none", got, err)
	}
	for _, want := range []struct {
		m modelfile.Meta
		n *network.Network
	}{{m2, n2}, {m3, n3}} {
		gm, gn, err := s.LoadSnapshot(ctx, want.m.ID, want.m.EpochsTrained)
		if err != nil {
			t.Fatalf("LoadSnapshot(%d): %v", want.m.EpochsTrained, err)
		}
		sameMeta(t, gm, want.m)
		sameNetwork(t, gn, want.n)
		rc, size, err := s.OpenSnapshot(ctx, want.m.ID, want.m.EpochsTrained)
		if err != nil {
			t.Fatalf("OpenSnapshot(%d): %v", want.m.EpochsTrained, err)
		}
		if got := readAll(t, rc, size); !bytes.Equal(got, encoded(t, want.m, want.n)) {
			t.Errorf("OpenSnapshot(%d): not the bytes Encode wrote for that epoch", want.m.EpochsTrained)
		}
	}
	// The model is the latest save, snapshots or not.
	if gm, gn, err := s.Load(ctx, m2.ID); err != nil || gm.EpochsTrained != 4 || diffNetwork(gn, n4) != nil {
		t.Errorf("Load after the snapshots: epoch %d, %v; want the save of epoch 4", gm.EpochsTrained, err)
	}
	// A snapshot of an epoch kept already replaces it.
	if err := s.Save(ctx, m3, n3b); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(ctx, m3.ID, 3); err != nil {
		t.Fatal(err)
	}
	if _, gn, err := s.LoadSnapshot(ctx, m3.ID, 3); err != nil || diffNetwork(gn, n3b) != nil {
		t.Errorf("LoadSnapshot(3) after it was taken again: %v, %v", err, diffNetwork(gn, n3b))
	}
	if es, errs := s.List(ctx); len(es) != 2 || len(errs) != 0 {
		t.Errorf("List: %v, %v; want the two networks, no snapshot", ids(es), errs)
	}
	// Deleted one by one, then with the network.
	for range 2 {
		if err := s.DeleteSnapshot(ctx, m2.ID, 2); err != nil {
			t.Errorf("DeleteSnapshot(2): %v", err)
		}
	}
	if _, _, err := s.LoadSnapshot(ctx, m2.ID, 2); !errors.Is(err, service.ErrSnapshotNotFound) {
		t.Errorf("LoadSnapshot of a deleted snapshot: %v, want ErrSnapshotNotFound", err)
	}
	if rc, _, err := s.OpenSnapshot(ctx, m2.ID, 2); !errors.Is(err, service.ErrSnapshotNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("OpenSnapshot of a deleted snapshot: %v, want ErrSnapshotNotFound", err)
	}
	if got, err := s.Snapshots(ctx, m2.ID); err != nil || !slices.Equal(got, []int{3}) {
		t.Errorf("Snapshots after DeleteSnapshot(2): %v, %v; want [3]", got, err)
	}
	if got, err := s.Delete(ctx, m2.ID); got != service.DeleteRemoved || err != nil {
		t.Fatalf("Delete: %v, %v", got, err)
	}
	if got, err := s.Snapshots(ctx, m2.ID); err != nil || len(got) != 0 {
		t.Errorf("Snapshots after Delete: %v, %v; want none", got, err)
	}
	if _, _, err := s.LoadSnapshot(ctx, m2.ID, 3); !errors.Is(err, service.ErrSnapshotNotFound) {
		t.Errorf("LoadSnapshot after Delete: %v, want ErrSnapshotNotFound", err)
	}
	if es, errs := s.List(ctx); !slices.Equal(ids(es), []string{other.ID}) || len(errs) != 0 {
		t.Errorf("List after Delete: %v, %v; want only the other network", ids(es), errs)
	}
}

// testSnapshotErrors: ids and epochs are checked before anything is done,
// a snapshot needs a model, and a done ctx does nothing.
func testSnapshotErrors(t *testing.T, s service.Store) {
	ctx := t.Context()
	unknown := uuid.NewString()
	if err := s.Snapshot(ctx, unknown, 1); !errors.Is(err, service.ErrModelNotFound) {
		t.Errorf("Snapshot of an unknown network: %v, want ErrModelNotFound", err)
	}
	if got, err := s.Snapshots(ctx, unknown); err != nil || len(got) != 0 {
		t.Errorf("Snapshots of an unknown network: %v, %v; want none", got, err)
	}
	if _, _, err := s.LoadSnapshot(ctx, unknown, 1); !errors.Is(err, service.ErrSnapshotNotFound) {
		t.Errorf("LoadSnapshot of an unknown network: %v, want ErrSnapshotNotFound", err)
	}
	if err := s.DeleteSnapshot(ctx, unknown, 1); err != nil {
		t.Errorf("DeleteSnapshot of an unknown network: %v", err)
	}
	for _, bad := range []string{"", "../" + unknown, strings.ToUpper(unknown), unknown + "/1"} {
		if err := s.Snapshot(ctx, bad, 1); !errors.Is(err, modelfile.ErrInvalidID) {
			t.Errorf("Snapshot(%q): %v, want ErrInvalidID", bad, err)
		}
		if _, err := s.Snapshots(ctx, bad); !errors.Is(err, modelfile.ErrInvalidID) {
			t.Errorf("Snapshots(%q): %v, want ErrInvalidID", bad, err)
		}
		if _, _, err := s.LoadSnapshot(ctx, bad, 1); !errors.Is(err, modelfile.ErrInvalidID) {
			t.Errorf("LoadSnapshot(%q): %v, want ErrInvalidID", bad, err)
		}
		if err := s.DeleteSnapshot(ctx, bad, 1); !errors.Is(err, modelfile.ErrInvalidID) {
			t.Errorf("DeleteSnapshot(%q): %v, want ErrInvalidID", bad, err)
		}
	}
	m := meta([]int{3, 2, 2}, epoch)
	if err := s.Save(ctx, m, net(t, m.Sizes, 1)); err != nil {
		t.Fatal(err)
	}
	for _, e := range []int{0, -1, modelfile.MaxHistory + 1} {
		if err := s.Snapshot(ctx, m.ID, e); err == nil {
			t.Errorf("Snapshot after epoch %d: no error", e)
		}
		if _, _, err := s.LoadSnapshot(ctx, m.ID, e); !errors.Is(err, service.ErrSnapshotNotFound) {
			t.Errorf("LoadSnapshot after epoch %d: %v, want ErrSnapshotNotFound", e, err)
		}
	}
	// A snapshot whose model says another epoch is refused when read.
	if err := s.Snapshot(ctx, m.ID, 5); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LoadSnapshot(ctx, m.ID, 5); err == nil || errors.Is(err, service.ErrSnapshotNotFound) {
		t.Errorf("LoadSnapshot of a snapshot of epoch 2 kept as epoch 5: %v, want an error", err)
	}
	if err := s.DeleteSnapshot(ctx, m.ID, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(ctx, m.ID, 2); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Snapshot(done, m.ID, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("Snapshot with a done ctx: %v", err)
	}
	if _, err := s.Snapshots(done, m.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Snapshots with a done ctx: %v", err)
	}
	if _, _, err := s.LoadSnapshot(done, m.ID, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("LoadSnapshot with a done ctx: %v", err)
	}
	if err := s.DeleteSnapshot(done, m.ID, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("DeleteSnapshot with a done ctx: %v", err)
	}
	if got, err := s.Snapshots(ctx, m.ID); err != nil || !slices.Equal(got, []int{2}) {
		t.Errorf("Snapshots afterwards: %v, %v; want [2]", got, err)
	}
}
