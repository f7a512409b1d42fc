package dirstore

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/model"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
)

// fixtureID is the id under which the tests plant the files they make.
const fixtureID = "6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f"

func newNet(t testing.TB, sizes []int, seed uint64) *network.Network {
	t.Helper()
	n, err := network.New(sizes, network.InitNormal, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newMeta(id string, sizes []int) modelfile.Meta {
	acc := 0.9123
	seed := uint64(1<<63 + 12345)
	created := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	return modelfile.Meta{
		ID:            id,
		Sizes:         slices.Clone(sizes),
		Init:          modelfile.InitNormal,
		Seed:          &seed,
		Trained:       true,
		Accuracy:      &acc,
		EpochsTrained: 3,
		History:       history(3, created),
		CreatedAt:     created,
		UpdatedAt:     created.Add(90 * time.Minute),
	}
}

// history returns n epoch records, epochs 1 to n, of two jobs, the first
// finishing after start.
func history(n int, start time.Time) []modelfile.EpochRecord {
	h := make([]modelfile.EpochRecord, n)
	for i := range h {
		job := i / 2
		h[i] = modelfile.EpochRecord{
			Epoch: i + 1, JobID: fmt.Sprintf("9b2f64e1-0c1d-4e5f-8a7b-%012d", job),
			Accuracy: float64(9000+i%1000) / 10000, Correct: 9000 + i%1000, Total: 10000,
			ElapsedTime: 1.25 + float64(i)/8, LearningRate: 3, MiniBatchSize: 10,
			Cost: "quadratic", Lambda: float64(job) / 10, Seed: 7 + uint64(job),
			FinishedAt: start.Add(time.Duration(i+1) * time.Minute).In(time.FixedZone("CEST", 2*3600)),
		}
	}
	return h
}

// fixture is a small network saved under fixtureID.
func fixture(t testing.TB) (modelfile.Meta, *network.Network) {
	sizes := []int{3, 2, 2}
	return newMeta(fixtureID, sizes), newNet(t, sizes, 42)
}

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// encode returns the bytes of the model file of m and n, as Save writes
// them.
func encode(t testing.TB, m modelfile.Meta, n *network.Network) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := modelfile.Encode(&b, m, n); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// edit returns the archive b with entry name's contents replaced by data,
// or the entry removed if data is nil. The corrupt files the format's tests
// build in their hundreds (package modelfile) need no more than this here:
// a few, to check that the Store reports what the format refuses.
func edit(t testing.TB, b []byte, name string, data []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		contents, err := readEntry(f)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name == name {
			if data == nil {
				continue
			}
			contents = data
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(contents); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// entry returns the contents of the archive b's entry name.
func entry(t testing.TB, b []byte, name string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name == name {
			data, err := readEntry(f)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
	t.Fatalf("no entry %s", name)
	return nil
}

func readEntry(f *zip.File) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// withSizes returns the fixture's file with meta.json declaring sizes,
// whatever its arrays hold.
func withSizes(t testing.TB, sizes []int) []byte {
	t.Helper()
	m, n := fixture(t)
	file := encode(t, m, n)
	// Numbers kept as json.Number: a float64 would round the seed.
	var meta map[string]any
	dec := json.NewDecoder(bytes.NewReader(entry(t, file, "meta.json")))
	dec.UseNumber()
	if err := dec.Decode(&meta); err != nil {
		t.Fatal(err)
	}
	meta["layer_sizes"] = sizes
	b, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	return edit(t, file, "meta.json", b)
}

func putFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func getFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirNames lists the names in dir, to check what a test left behind.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// sameNetwork fails t unless a and b have the same sizes and bit-identical
// parameters.
func sameNetwork(t testing.TB, am, bm model.Model) {
	a, b := am.(*network.Network), bm.(*network.Network)
	t.Helper()
	if !slices.Equal(a.Sizes(), b.Sizes()) {
		t.Fatalf("sizes %v, want %v", a.Sizes(), b.Sizes())
	}
	for l := range a.NumLayers() {
		wa, wb := a.Weights(l), b.Weights(l)
		r, c := wa.Dims()
		for i := range r {
			for j := range c {
				if math.Float64bits(wa.At(i, j)) != math.Float64bits(wb.At(i, j)) {
					t.Fatalf("layer %d weight (%d, %d) is %v, want %v", l, i, j, wa.At(i, j), wb.At(i, j))
				}
			}
		}
		ba, bb := a.Biases(l), b.Biases(l)
		for i := range ba.Len() {
			if math.Float64bits(ba.AtVec(i)) != math.Float64bits(bb.AtVec(i)) {
				t.Fatalf("layer %d bias %d is %v, want %v", l, i, ba.AtVec(i), bb.AtVec(i))
			}
		}
	}
}

// sameMeta fails t unless a and b describe the same thing; times are
// compared as instants.
func sameMeta(t testing.TB, got, want modelfile.Meta) {
	t.Helper()
	if got.ID != want.ID || !slices.Equal(got.Sizes, want.Sizes) || got.Init != want.Init ||
		!samePtr(got.Seed, want.Seed) || got.Trained != want.Trained ||
		got.EpochsTrained != want.EpochsTrained || !got.CreatedAt.Equal(want.CreatedAt) ||
		!got.UpdatedAt.Equal(want.UpdatedAt) || !samePtr(got.Accuracy, want.Accuracy) ||
		!slices.EqualFunc(got.History, want.History, sameRecord) {
		t.Fatalf("meta\n got %+v (accuracy %v, seed %v)\nwant %+v (accuracy %v, seed %v)",
			got, deref(got.Accuracy), deref(got.Seed), want, deref(want.Accuracy), deref(want.Seed))
	}
}

func samePtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func sameRecord(a, b modelfile.EpochRecord) bool {
	at, bt := a.FinishedAt, b.FinishedAt
	a.FinishedAt, b.FinishedAt = time.Time{}, time.Time{}
	return a == b && at.Equal(bt)
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func newID() string { return uuid.NewString() }
