package modelfile

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/model"
	"github.com/mnist-go/nnserver/pkg/network"
)

var update = flag.Bool("update", false, "rewrite testdata/golden_v2.npz and the fuzz seed corpora")

// fixtureID is the id of testdata/golden_v*.npz and testdata/numpy.npz, and
// the id under which the tests decode the files they make (FuzzDecode's
// input too), as a store reads the file it keeps under that id.
const fixtureID = "6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f"

func newNet(t testing.TB, sizes []int, seed uint64) *network.Network {
	t.Helper()
	n, err := network.New(sizes, network.InitNormal, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newMeta(id string, sizes []int) Meta {
	acc := 0.9123
	seed := uint64(1<<63 + 12345) // above 2^53: JSON readers must keep it exact
	created := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	return Meta{
		ID:            id,
		Sizes:         slices.Clone(sizes),
		Init:          InitNormal,
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
func history(n int, start time.Time) []EpochRecord {
	h := make([]EpochRecord, n)
	for i := range h {
		job := i / 2
		h[i] = EpochRecord{
			Epoch: i + 1, JobID: fmt.Sprintf("9b2f64e1-0c1d-4e5f-8a7b-%012d", job),
			Accuracy: float64(9000+i%1000) / 10000, Correct: 9000 + i%1000, Total: 10000,
			ElapsedTime: 1.25 + float64(i)/8, LearningRate: 3, MiniBatchSize: 10,
			Cost: "quadratic", Lambda: float64(job) / 10, Seed: 7 + uint64(job),
			FinishedAt: start.Add(time.Duration(i+1) * time.Minute).In(time.FixedZone("CEST", 2*3600)),
		}
	}
	return h
}

// fixture is the small network of testdata/golden_v2.npz.
func fixture(t testing.TB) (Meta, *network.Network) {
	sizes := []int{3, 2, 2}
	return newMeta(fixtureID, sizes), newNet(t, sizes, 42)
}

// encode returns the bytes Encode writes for m and n.
func encode(t testing.TB, m Meta, n *network.Network) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Encode(&b, m, n); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// saved returns the bytes a store with the default limits saves for m and
// n: what EncodeWithin writes.
func saved(t testing.TB, m Meta, n model.Model) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := EncodeWithin(&b, m, n, Limits{}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// decodeAs reads data as a store reads the file it keeps under id.
func decodeAs(data []byte, lim Limits, id string) (Meta, model.Model, error) {
	r := bytes.NewReader(data)
	return DecodeAs(r, r.Size(), lim, id)
}

// decodeEntryAs reads data as a store's List reads the file it keeps under
// id.
func decodeEntryAs(data []byte, lim Limits, id string) (Entry, error) {
	r := bytes.NewReader(data)
	return DecodeEntryAs(r, r.Size(), lim, id)
}

// zipEntry is one member of an archive that tests build by hand.
type zipEntry struct {
	name   string
	data   []byte
	method uint16 // zip.Store unless set
}

// entry returns the contents of the archive b's entry name.
func entry(t testing.TB, b []byte, name string) []byte {
	t.Helper()
	for _, e := range unzip(t, b) {
		if e.name == name {
			return e.data
		}
	}
	t.Fatalf("no entry %s", name)
	return nil
}

func unzip(t testing.TB, b []byte) []zipEntry {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var es []zipEntry
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, zipEntry{name: f.Name, data: data})
	}
	return es
}

func rezip(t testing.TB, es []zipEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range es {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// rezipNoCRC is rezip with stored entries whose CRC-32 is recorded as 0,
// which archive/zip takes as "not recorded" and does not check. Fuzzing such
// files reaches the parsing of meta.json and NPY headers, which a checksum
// would otherwise guard against nearly every mutation.
func rezipNoCRC(t testing.TB, es []zipEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range es {
		size := uint64(len(e.data))
		w, err := zw.CreateRaw(&zip.FileHeader{Name: e.name, Method: zip.Store, CompressedSize64: size, UncompressedSize64: size})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// edit returns the fixture's archive with entry name replaced by data, or
// removed if data is nil.
func edit(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	m, n := fixture(t)
	var es []zipEntry
	for _, e := range unzip(t, encode(t, m, n)) {
		if e.name == name {
			if data == nil {
				continue
			}
			e.data = data
		}
		es = append(es, e)
	}
	return rezip(t, es)
}

// editMeta returns the fixture's archive with meta.json's key set to value,
// or removed if value is nil.
func editMeta(t testing.TB, key string, value any) []byte {
	t.Helper()
	m, n := fixture(t)
	var meta map[string]any
	for _, e := range unzip(t, encode(t, m, n)) {
		if e.name == metaEntry {
			meta = unmarshalNumbers[map[string]any](t, e.data)
		}
	}
	if value == nil {
		delete(meta, key)
	} else {
		meta[key] = value
	}
	b, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	return edit(t, metaEntry, b)
}

// unmarshalNumbers decodes JSON keeping numbers as json.Number: a float64
// would round the seeds, which exceed 2^53.
func unmarshalNumbers[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// editHistory returns the fixture's archive with history.json's records
// (as JSON objects) replaced by what f makes of them.
func editHistory(t testing.TB, f func([]map[string]any) []map[string]any) []byte {
	t.Helper()
	m, n := fixture(t)
	var h []map[string]any
	for _, e := range unzip(t, encode(t, m, n)) {
		if e.name == historyEntry {
			h = unmarshalNumbers[[]map[string]any](t, e.data)
		}
	}
	b, err := json.Marshal(f(h))
	if err != nil {
		t.Fatal(err)
	}
	return edit(t, historyEntry, b)
}

// npy returns an NPY v1.0 file with the given header dict (padded and ended
// with a newline) and data.
func npy(header string, data []float64) []byte {
	header += "\n"
	b := []byte(npyMagic + "\x01\x00")
	b = append(b, byte(len(header)), byte(len(header)>>8))
	b = append(b, header...)
	for _, x := range data {
		b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
		putFloat(b[len(b)-8:], x)
	}
	return b
}

func putFloat(b []byte, x float64) {
	u := math.Float64bits(x)
	for i := range 8 {
		b[i] = byte(u >> (8 * i))
	}
}

// floats returns n distinct small values.
func floats(n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = float64(i) / 4
	}
	return xs
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

// sameNetwork fails t unless a and b have the same sizes and bit-identical
// parameters.
func sameNetwork(t testing.TB, am, bm model.Model) {
	t.Helper()
	if !slices.Equal(am.Sizes(), bm.Sizes()) {
		t.Fatalf("sizes %v, want %v", am.Sizes(), bm.Sizes())
	}
	if da, ok := am.(*deep.Network); ok {
		db, ok := bm.(*deep.Network)
		if !ok || !slices.Equal(da.Layers(), db.Layers()) {
			t.Fatalf("layers %v, want %v", model.Layers(am), model.Layers(bm))
		}
		wa, ba, _ := da.Params()
		wb, bb, _ := db.Params()
		for i := range wa {
			if !slices.Equal(wa[i], wb[i]) || !slices.Equal(ba[i], bb[i]) {
				t.Fatalf("parameters of layer %d differ", i)
			}
		}
		return
	}
	a, b := am.(*network.Network), bm.(*network.Network)
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
func sameMeta(t testing.TB, got, want Meta) {
	t.Helper()
	if got.ID != want.ID || !slices.Equal(got.Sizes, want.Sizes) || got.Init != want.Init ||
		!samePtr(got.Seed, want.Seed) || got.Trained != want.Trained ||
		got.EpochsTrained != want.EpochsTrained || !got.CreatedAt.Equal(want.CreatedAt) ||
		!got.UpdatedAt.Equal(want.UpdatedAt) || !samePtr(got.Accuracy, want.Accuracy) ||
		!slices.EqualFunc(got.History, want.History, sameRecord) || got.OwnerHash != want.OwnerHash ||
		got.Name != want.Name || got.Notes != want.Notes {
		t.Fatalf("meta\n got %+v (accuracy %v, seed %v)\nwant %+v (accuracy %v, seed %v)",
			got, deref(got.Accuracy), deref(got.Seed), want, deref(want.Accuracy), deref(want.Seed))
	}
}

func samePtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func sameRecord(a, b EpochRecord) bool {
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

func fixturePath(name string) string { return filepath.Join("testdata", name) }
