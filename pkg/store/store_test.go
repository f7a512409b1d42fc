package store

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/mnist-go/nnserver/internal/testutil"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mnist-go/nnserver/pkg/network"
)

func TestRoundTrip(t *testing.T) {
	untrained := newMeta(newID(), []int{784, 30, 10})
	untrained.Trained, untrained.Accuracy, untrained.EpochsTrained, untrained.History = false, nil, 0, nil
	unknown := newMeta(newID(), []int{784, 30, 10})
	unknown.Init, unknown.Seed = "", nil
	scaled := newMeta(newID(), []int{784, 30, 10})
	scaled.Init = InitScaled
	for _, tc := range []struct {
		name string
		meta Meta
	}{
		{"784-30-10", newMeta(newID(), []int{784, 30, 10})},
		{"784-17-5-10", newMeta(newID(), []int{784, 17, 5, 10})},
		{"untrained, no accuracy, no history", untrained},
		{"unknown init and seed", unknown},
		{"scaled init", scaled},
		{"smallest", newMeta(newID(), []int{1, 1})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			n := newNet(t, tc.meta.Sizes, 7)
			if err := s.Save(t.Context(), tc.meta, n); err != nil {
				t.Fatal(err)
			}
			m, got, err := s.Load(t.Context(), tc.meta.ID)
			if err != nil {
				t.Fatal(err)
			}
			sameMeta(t, m, tc.meta)
			sameNetwork(t, got, n)
		})
	}
}

// TestGolden pins the file format: a change to what Save writes shows up as
// a diff of testdata/golden_v2.npz. Run with -update to accept it (and to
// regenerate the fuzz seeds).
func TestGolden(t *testing.T) {
	m, n := fixture(t)
	got := encode(t, m, n)
	if *update {
		putFile(t, fixturePath("golden_v2.npz"), got)
		writeFuzzSeeds(t)
	}
	if want := getFile(t, fixturePath("golden_v2.npz")); !bytes.Equal(got, want) {
		t.Fatalf("Save wrote %d bytes that differ from testdata/golden_v2.npz (%d bytes); run go test -update if the change is intended", len(got), len(want))
	}
}

// TestGoldenV1 loads testdata/golden_v1.npz, the fixture as format version
// 1 wrote it (before init, seed and the history): it reads as made with
// InitNormal, of unknown seed, with an empty history.
func TestGoldenV1(t *testing.T) {
	dir := t.TempDir()
	putFile(t, filepath.Join(dir, fixtureID+".npz"), getFile(t, fixturePath("golden_v1.npz")))
	s := openStore(t, dir)
	want, n := fixture(t)
	want.Seed, want.History = nil, nil
	m, got, err := s.Load(t.Context(), fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, m, want)
	sameNetwork(t, got, n)
	es, errs := s.List(t.Context())
	if len(es) != 1 || len(errs) != 0 {
		t.Fatalf("List: %v, %v", es, errs)
	}
	sameMeta(t, es[0].Meta, want)

	// Saved again, it becomes a version 2 file with the same contents.
	if err := s.Save(t.Context(), m, got); err != nil {
		t.Fatal(err)
	}
	m2, _, err := s.Load(t.Context(), fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, m2, want)
}

// writeFuzzSeeds writes valid and corrupt files as the seed corpora of
// FuzzLoad and FuzzImport.
func writeFuzzSeeds(t *testing.T) {
	corpus := func(target string) func(name string, b []byte, trueCRCs bool) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return func(name string, b []byte, trueCRCs bool) {
			// Large seeds slow every fuzzing iteration that mutates them.
			if len(b) > 8<<10 {
				return
			}
			name = strings.NewReplacer(" ", "-", "'", "", ",", "").Replace(name)
			if trueCRCs {
				name += "-true-CRCs"
			}
			putFile(t, filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\nbool(%v)\n", b, trueCRCs))
		}
	}
	m, n := fixture(t)
	valid := encode(t, m, n)
	numpyFile := getFile(t, fixturePath("numpy.npz"))

	seed := corpus("FuzzLoad")
	for _, trueCRCs := range []bool{false, true} {
		seed("valid", valid, trueCRCs)
		seed("valid-numpy", numpyFile, trueCRCs)
	}
	for _, tc := range corruptCases(t) {
		seed(tc.name, tc.data, false)
	}

	seed = corpus("FuzzImport")
	for _, trueCRCs := range []bool{false, true} {
		seed("ours", valid, trueCRCs)
		seed("ours-numpy", numpyFile, trueCRCs)
		des, err := os.ReadDir(fixturePath("import"))
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			seed("numpy-"+de.Name(), getFile(t, fixturePath(filepath.Join("import", de.Name()))), trueCRCs)
		}
	}
	for _, tc := range importCases(t) {
		seed(tc.name, tc.data, false)
	}
}

// TestNPYLayout checks the bytes of a saved entry against the NPY format
// specification (numpy.lib.format), so np.load can read it.
func TestNPYLayout(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	m := newMeta(newID(), []int{784, 30, 10})
	if err := s.Save(t.Context(), m, newNet(t, m.Sizes, 1)); err != nil {
		t.Fatal(err)
	}
	es := unzip(t, getFile(t, filepath.Join(dir, m.ID+".npz")))
	var names []string
	for _, e := range es {
		names = append(names, e.name)
	}
	if want := []string{"meta.json", "history.json", "w0.npy", "b0.npy", "w1.npy", "b1.npy"}; !slices.Equal(names, want) {
		t.Fatalf("entries %v, want %v", names, want)
	}
	for _, tc := range []struct {
		entry string
		shape string
		count int
	}{
		{"w0.npy", "'shape': (30, 784)", 30 * 784},
		{"b0.npy", "'shape': (30,)", 30},
		{"w1.npy", "'shape': (10, 30)", 10 * 30},
		{"b1.npy", "'shape': (10,)", 10},
	} {
		t.Run(tc.entry, func(t *testing.T) {
			i := slices.IndexFunc(es, func(e zipEntry) bool { return e.name == tc.entry })
			b := es[i].data
			if !bytes.HasPrefix(b, []byte("\x93NUMPY\x01\x00")) {
				t.Fatalf("starts with %q, want the NPY 1.0 magic", b[:8])
			}
			hlen := int(binary.LittleEndian.Uint16(b[8:10]))
			start := 10 + hlen
			if start%64 != 0 {
				t.Errorf("data starts at byte %d, not a multiple of 64", start)
			}
			h := string(b[10:start])
			for _, want := range []string{"'descr': '<f8'", "'fortran_order': False", tc.shape} {
				if !strings.Contains(h, want) {
					t.Errorf("header %q lacks %q", h, want)
				}
			}
			if !strings.HasSuffix(h, "\n") {
				t.Errorf("header %q does not end with a newline", h)
			}
			if got := len(b) - start; got != 8*tc.count {
				t.Errorf("%d data bytes, want %d", got, 8*tc.count)
			}
		})
	}
}

// TestReadsNumPyFile loads testdata/numpy.npz, written by np.savez (see
// testdata/numpy_fixture.py), and checks every value.
func TestReadsNumPyFile(t *testing.T) {
	dir := t.TempDir()
	putFile(t, filepath.Join(dir, fixtureID+".npz"), getFile(t, fixturePath("numpy.npz")))
	s := openStore(t, dir)
	m, n, err := s.Load(t.Context(), fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Sizes, []int{4, 3, 2}) || m.Trained || m.Accuracy != nil || m.EpochsTrained != 0 {
		t.Errorf("meta %+v", m)
	}
	if got := m.UpdatedAt.UTC().Format("2006-01-02T15:04:05.999Z07:00"); got != "2024-05-01T10:30:00.5Z" {
		t.Errorf("updated_at %s", got)
	}
	want := [][]float64{
		{0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1, 1.125, 1.25, 1.375}, // w0
		{0.5, -1, 2},                      // b0
		{-2.5, -1.5, -0.5, 0.5, 1.5, 2.5}, // w1
		{1e-300, math.Copysign(0, -1)},    // b1
	}
	got := [][]float64{
		n.Weights(0).RawMatrix().Data, n.Biases(0).RawVector().Data,
		n.Weights(1).RawMatrix().Data, n.Biases(1).RawVector().Data,
	}
	for i := range want {
		for j := range want[i] {
			if math.Float64bits(got[i][j]) != math.Float64bits(want[i][j]) {
				t.Errorf("array %d value %d is %v, want %v", i, j, got[i][j], want[i][j])
			}
		}
	}
	if es, errs := s.List(t.Context()); len(es) != 1 || len(errs) != 0 {
		t.Errorf("List: %d entries, errors %v", len(es), errs)
	}
}

// TestReadsVariants loads files that differ from what Save writes in ways any
// honest writer may choose.
func TestReadsVariants(t *testing.T) {
	m, n := fixture(t)
	base := unzip(t, encode(t, m, n))
	variant := func(f func(e *zipEntry)) []byte {
		es := slices.Clone(base)
		for i := range es {
			f(&es[i])
		}
		return rezip(t, es)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"deflated entries", variant(func(e *zipEntry) { e.method = zip.Deflate })},
		{"NPY version 2.0 headers", variant(func(e *zipEntry) {
			if strings.HasSuffix(e.name, ".npy") {
				hlen := binary.LittleEndian.Uint16(e.data[8:10])
				v2 := append([]byte(npyMagic+"\x02\x00"), binary.LittleEndian.AppendUint32(nil, uint32(hlen))...)
				e.data = append(v2, e.data[10:]...)
			}
		})},
		{"headers with double quotes and no padding", variant(func(e *zipEntry) {
			if strings.HasSuffix(e.name, ".npy") {
				hlen := int(binary.LittleEndian.Uint16(e.data[8:10]))
				h := strings.TrimRight(string(e.data[10:10+hlen]), " \n")
				h = strings.ReplaceAll(strings.ReplaceAll(h, "'", `"`), ", }", "}")
				e.data = append(npy(h, nil), e.data[10+hlen:]...)
			}
		})},
		{"an extra entry", rezip(t, append(slices.Clone(base), zipEntry{name: "notes.txt", data: []byte("hi")}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			putFile(t, filepath.Join(dir, fixtureID+".npz"), tc.data)
			s := openStore(t, dir)
			got, gn, err := s.Load(t.Context(), fixtureID)
			if err != nil {
				t.Fatal(err)
			}
			sameMeta(t, got, m)
			sameNetwork(t, gn, n)
		})
	}
}

type corruptCase struct {
	name    string
	data    []byte
	wantErr string // in Load's error
	// listOK is set when only the weights are bad: List reads no more than
	// the headers, so it lists the file, and only Load finds the fault.
	listOK bool
}

// corruptCases are files named <fixtureID>.npz that Load must refuse.
func corruptCases(t testing.TB) []corruptCase {
	m, n := fixture(t)
	valid := encode(t, m, n)
	w0 := npyHeader([]int{2, 3})

	flipped := bytes.Clone(valid)
	flipped[bytes.Index(flipped, w0)+len(w0)+3] ^= 0x40

	nan := floats(6)
	nan[4] = math.NaN()

	hugeHeader := append([]byte(npyMagic+"\x02\x00"), binary.LittleEndian.AppendUint32(nil, 1<<31)...)

	return []corruptCase{
		{"empty file", nil, "zip", false},
		{"not a zip", []byte("hello, world"), "zip", false},
		{"truncated zip", valid[:len(valid)/2], "zip", false},
		{"zip cut before its directory ends", valid[:len(valid)-1], "zip", false},
		{"no meta.json", edit(t, "meta.json", nil), "meta.json is missing", false},
		{"no b1.npy", edit(t, "b1.npy", nil), "b1.npy is missing", false},
		{"meta sizes do not match npy shapes", editMeta(t, "layer_sizes", []int{3, 4, 2}), "shape [2 3] does not match", false},
		{idMismatch, editMeta(t, "id", "0e2d9c4b-5a6f-4e3d-8c2b-1a0f9e8d7c6b"), "does not match the file name", false},
		{"meta not JSON", edit(t, "meta.json", []byte("{")), "meta.json", false},
		{"meta not an object", edit(t, "meta.json", []byte("[1, 2]")), "meta.json", false},
		{"meta without trained", editMeta(t, "trained", nil), `key "trained" is missing`, false},
		{"meta of format version 3", editMeta(t, "format_version", 3), "format_version 3, want 1 or 2", false},
		{"meta without format version", editMeta(t, "format_version", nil), "format_version , want 1 or 2", false},
		{"meta of version 2 without init", editMeta(t, "init", nil), `key "init" is missing`, false},
		{"meta of version 2 without seed", editMeta(t, "seed", nil), `key "seed" is missing`, false},
		{"meta of version 2 without history records", editMeta(t, "history_records", nil), `key "history_records" is missing`, false},
		{"meta init unknown", editMeta(t, "init", "xavier"), `init "xavier"`, false},
		{"meta negative seed", editMeta(t, "seed", -1), "seed", false},
		{"meta history records over MaxHistory", editMeta(t, "history_records", MaxHistory+1), "history_records 100001, want 0 to 100000 (MaxHistory)", false},
		{"no history.json", edit(t, "history.json", nil), "entry history.json is missing", false},
		{"history.json larger than its records need", edit(t, "history.json", slices.Repeat([]byte(" "), int(maxHistoryJSON(3))+1)), "entry history.json holds 1559 bytes, more than the 1558", false},
		{"history not JSON", edit(t, "history.json", []byte("[{")), "history.json: record 0", true},
		{"history not an array", edit(t, "history.json", []byte(`{"epoch": 1}`)), "history.json: not a JSON array", true},
		{"history of fewer records than declared", editHistory(t, func(h []map[string]any) []map[string]any { return h[:2] }), "2 records, meta.json declares 3", true},
		{"history of more records than declared", editHistory(t, func(h []map[string]any) []map[string]any { return append(h, h[2]) }), "more than the 3 records meta.json declares", true},
		{"history record without a key", editHistory(t, func(h []map[string]any) []map[string]any { delete(h[1], "lambda"); return h }), `record 1: key "lambda" is missing`, true},
		{"history epochs out of order", editHistory(t, func(h []map[string]any) []map[string]any { h[1]["epoch"] = 1; return h }), "epoch 1 does not follow epoch 1", true},
		{"history epoch beyond epochs trained", editHistory(t, func(h []map[string]any) []map[string]any { h[2]["epoch"] = 4; return h }), "epoch 4, but the network has trained 3", true},
		{"history accuracy NaN", editHistory(t, func(h []map[string]any) []map[string]any { h[0]["accuracy"] = "NaN"; return h }), "record 0", true},
		{"history more correct than total", editHistory(t, func(h []map[string]any) []map[string]any { h[0]["correct"] = 10001; return h }), "10001 correct of 10000", true},
		{"history job id with a quote", editHistory(t, func(h []map[string]any) []map[string]any { h[0]["job_id"] = `a"b`; return h }), "job_id", true},
		{"history bad time", editHistory(t, func(h []map[string]any) []map[string]any { h[0]["finished_at"] = "noon"; return h }), "record 0", true},
		{"history with data after the array", edit(t, "history.json", []byte("[] []")), "data after the array", true},
		{"meta sizes over the format cap", editMeta(t, "layer_sizes", []int{784, 100000, 10}), "MaxParams", false},
		{"meta sizes of 65 layers", editMeta(t, "layer_sizes", slices.Repeat([]int{1}, 65)), "65 layers, more than the limit of 10 (MaxLayers)", false},
		{"meta sizes with an empty layer", editMeta(t, "layer_sizes", []int{3, 0, 2}), "0 neurons", false},
		{"meta sizes of one layer", editMeta(t, "layer_sizes", []int{3}), "1 layers", false},
		{"meta accuracy above 1", editMeta(t, "accuracy", 2), "accuracy", false},
		{"meta negative epochs", editMeta(t, "epochs_trained", -1), "epochs_trained", false},
		{"meta epochs beyond a life", editMeta(t, "epochs_trained", int64(math.MaxInt64)), "epochs_trained", false},
		{"meta bad time", editMeta(t, "created_at", "yesterday"), "meta.json", false},
		{"meta oversized", edit(t, "meta.json", slices.Repeat([]byte(" "), maxMetaSize+1)), "meta.json holds 65537 bytes", false},
		{"npy float32", edit(t, "w0.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", floats(3))), "dtype", false},
		{"npy big-endian", edit(t, "w0.npy", npy("{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }", floats(6))), "dtype", false},
		{"npy Fortran order", edit(t, "w0.npy", npy("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", floats(6))), "Fortran", false},
		{"npy bad magic", edit(t, "w0.npy", append([]byte("\x93NUMPZ"), w0[6:]...)), "magic", false},
		{"npy version 3.0", edit(t, "w0.npy", append([]byte(npyMagic+"\x03\x00"), w0[8:]...)), "version 3.0", false},
		{"npy header too long", edit(t, "w0.npy", hugeHeader), "too long", false},
		{"npy header cut short", edit(t, "w0.npy", w0[:40]), "unexpected EOF", false},
		{"npy header without newline", edit(t, "w0.npy", append(w0[:len(w0)-1:len(w0)-1], ' ')), "newline", false},
		{"npy header with an extra key", edit(t, "w0.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", floats(6))), "unexpected key", false},
		{"npy header without shape", edit(t, "w0.npy", npy("{'descr': '<f8', 'fortran_order': False}", floats(6))), "lacks", false},
		{"npy header repeats a key", edit(t, "w0.npy", npy("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}", floats(6))), "repeated", false},
		{"npy shape not a tuple", edit(t, "b0.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2), }", floats(2))), "not a tuple", false},
		{"npy shape negative", edit(t, "b0.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }", floats(2))), "integer", false},
		{"npy shape overflowing", edit(t, "b0.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }", floats(2))), "too large", false},
		{"npy shape transposed", edit(t, "w0.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", floats(6))), "does not match", false},
		{"npy data one value short", edit(t, "w0.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", floats(5))), "want", false},
		{"npy data one value long", edit(t, "w0.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", floats(7))), "want", false},
		{"duplicate entry", rezip(t, append(unzip(t, valid), zipEntry{name: "w0.npy", data: w0})), "twice", false},
		{"checksum mismatch", flipped, "checksum", true},
		// archive/zip takes a CRC-32 of 0 for "not recorded"; Python's
		// zipfile, and so NumPy, checks it like any other.
		{"CRC-32 recorded as 0", rezipNoCRC(t, unzip(t, valid)), "checksum mismatch", false},
		{"NaN weight", edit(t, "w0.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", nan)), "not finite", true},
	}
}

func TestCorruptFiles(t *testing.T) {
	for _, tc := range corruptCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			putFile(t, filepath.Join(dir, fixtureID+".npz"), tc.data)
			s := openStore(t, dir)

			_, n, err := s.Load(t.Context(), fixtureID)
			if err == nil || n != nil {
				t.Fatalf("Load succeeded, want an error containing %q", tc.wantErr)
			}
			t.Log(err)
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidID) {
				t.Errorf("Load: %v, want a corruption error", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), fixtureID+".npz") {
				t.Errorf("Load: %v, want an error naming the file and containing %q", err, tc.wantErr)
			}

			// The codec alone refuses the bytes the same way; only the id's
			// match with a file name is the Store's to check.
			r := bytes.NewReader(tc.data)
			if _, _, err := Decode(r, r.Size(), DefaultLimits()); (err == nil) != (tc.name == idMismatch) {
				t.Errorf("Decode: %v", err)
			} else if err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Decode: %v, want an error containing %q", err, tc.wantErr)
			}
			_, decodeEntryErr := DecodeEntry(r, r.Size(), DefaultLimits())
			rc, _, openErr := s.Open(t.Context(), fixtureID)
			if openErr == nil {
				rc.Close()
			}

			es, errs := s.List(t.Context())
			if tc.listOK {
				if len(es) != 1 || len(errs) != 0 {
					t.Errorf("List: %d entries, errors %v; want the file listed", len(es), errs)
				}
				if decodeEntryErr != nil || openErr != nil {
					t.Errorf("DecodeEntry: %v; Open: %v; want both to accept the headers", decodeEntryErr, openErr)
				}
				return
			}
			if len(es) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), fixtureID+".npz") {
				t.Errorf("List: %d entries, errors %v; want one error naming the file", len(es), errs)
			}
			if (decodeEntryErr == nil) != (tc.name == idMismatch) || openErr == nil {
				t.Errorf("DecodeEntry: %v; Open: %v; want both to refuse the file", decodeEntryErr, openErr)
			}
		})
	}
}

// idMismatch is the corrupt case that only a Store can detect: the codec
// does not know the file's name.
const idMismatch = "meta id of another network"

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
	put(noMeta+".npz", edit(t, "meta.json", nil))
	put(mismatch+".npz", editMeta(t, "layer_sizes", []int{3, 4, 2}))
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
	for _, m := range []Meta{late1, late2, early} {
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
		sameMeta(t, e.Meta, EntryOf(late2).Meta)
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
		{newID(), ErrNotFound},
		{"../../etc/passwd", ErrInvalidID},
		{"../passwd", ErrInvalidID},
		{"ABC", ErrInvalidID},
		{"", ErrInvalidID},
		{strings.ToUpper(id), ErrInvalidID},
		{"{" + id + "}", ErrInvalidID},
		{"urn:uuid:" + id, ErrInvalidID},
		{strings.ReplaceAll(id, "-", ""), ErrInvalidID},
		{id + "/../" + id, ErrInvalidID},
		{id + "\x00", ErrInvalidID},
	} {
		t.Run(fmt.Sprintf("%.40q", tc.id), func(t *testing.T) {
			if _, _, err := s.Load(t.Context(), tc.id); !errors.Is(err, tc.want) {
				t.Errorf("Load: %v, want %v", err, tc.want)
			}
			if tc.want == ErrInvalidID {
				if _, err := s.Delete(t.Context(), tc.id); !errors.Is(err, ErrInvalidID) {
					t.Errorf("Delete: %v, want %v", err, ErrInvalidID)
				}
				m, n := fixture(t)
				m.ID = tc.id
				if err := s.Save(t.Context(), m, n); !errors.Is(err, ErrInvalidID) {
					t.Errorf("Save: %v, want %v", err, ErrInvalidID)
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
	newDir := func(t *testing.T) (*Store, Meta, []byte) {
		dir := t.TempDir()
		s := openStore(t, dir)
		m, n := fixture(t)
		if err := s.Save(t.Context(), m, n); err != nil {
			t.Fatal(err)
		}
		return s, m, getFile(t, filepath.Join(dir, m.ID+".npz"))
	}
	check := func(t *testing.T, s *Store, m Meta, before []byte) {
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
		edit  func(m *Meta) // applied to the fixture's Meta
		sizes []int         // of the network to save
	}{
		{"sizes do not match the network", func(m *Meta) {}, []int{3, 4, 2}},
		{"meta sizes changed", func(m *Meta) { m.Sizes = []int{3, 3, 2} }, []int{3, 2, 2}},
		{"NaN accuracy", func(m *Meta) { m.Accuracy = &nan }, []int{3, 2, 2}},
		{"negative epochs", func(m *Meta) { m.EpochsTrained = -1 }, []int{3, 2, 2}},
		{"epochs beyond a life", func(m *Meta) { m.EpochsTrained = MaxHistory + 1 }, []int{3, 2, 2}},
		{"unknown init", func(m *Meta) { m.Init = "Normal" }, []int{3, 2, 2}},
		{"history beyond epochs trained", func(m *Meta) { m.EpochsTrained = 2 }, []int{3, 2, 2}},
		{"history out of order", func(m *Meta) { m.History[0], m.History[1] = m.History[1], m.History[0] }, []int{3, 2, 2}},
		{"history job id too long", func(m *Meta) { m.History[0].JobID = strings.Repeat("j", 65) }, []int{3, 2, 2}},
		{"history time beyond year 9999", func(m *Meta) { m.History[0].FinishedAt = m.History[0].FinishedAt.AddDate(10000, 0, 0) }, []int{3, 2, 2}},
		{"too many layers", func(m *Meta) { m.Sizes = slices.Repeat([]int{1}, MaxLayers+1) }, slices.Repeat([]int{1}, MaxLayers+1)},
		{"time beyond year 9999", func(m *Meta) { m.UpdatedAt = m.UpdatedAt.AddDate(10000, 0, 0) }, []int{3, 2, 2}},
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
		if got, err := s.Delete(t.Context(), m.ID); got != DeleteFailed || err == nil {
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
		want       DeleteResult
		wantErr    string // empty: no error
		stillThere bool   // the file is there after Delete
	}{
		{"saved", func(t *testing.T, s *Store) string {
			return saveFixture(t, s)
		}, DeleteRemoved, "", false},
		{"not saved", func(t *testing.T, s *Store) string {
			return newID()
		}, DeleteNotFound, "", false},
		{"deleted twice", func(t *testing.T, s *Store) string {
			id := saveFixture(t, s)
			if got, err := s.Delete(t.Context(), id); got != DeleteRemoved || err != nil {
				t.Fatalf("first Delete: %v, %v", got, err)
			}
			return id
		}, DeleteNotFound, "", false},
		{"removed, the flush fails", func(t *testing.T, s *Store) string {
			id := saveFixture(t, s)
			s.flush = func(*os.File) error { return errInjected }
			return id
		}, DeleteRemovedNotFlushed, "removed, but not flushed to disk: injected flush failure", false},
		{"not removable", func(t *testing.T, s *Store) string {
			// A directory that is not empty cannot be removed, even by root.
			id := newID()
			if err := os.MkdirAll(filepath.Join(s.Dir(), id+".npz", "x"), 0o755); err != nil {
				t.Fatal(err)
			}
			return id
		}, DeleteFailed, "directory not empty", true},
		{"invalid id", func(t *testing.T, s *Store) string {
			return "../" + newID()
		}, DeleteFailed, "not a canonical lowercase UUID", false},
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
				if _, _, err := s.Load(t.Context(), id); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidID) {
					t.Errorf("Load after Delete: %v, want ErrNotFound", err)
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
	if _, err := Open(file, DefaultLimits()); err == nil {
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
				} else if !slices.Equal(got.Weights(0).RawMatrix().Data, n.Weights(0).RawMatrix().Data) {
					errs <- fmt.Errorf("%s: loaded other weights", m.ID)
				}
				if _, lerrs := s.List(t.Context()); len(lerrs) != 0 {
					errs <- errors.Join(lerrs...)
				}
				if r%2 == 0 {
					if got, err := s.Delete(t.Context(), m.ID); got != DeleteRemoved || err != nil {
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
				w := got.Weights(0).RawMatrix().Data
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
	} else if _, _, err := Decode(ra, size, DefaultLimits()); err != nil {
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
