package modelfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/network"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	untrained := newMeta(newID(), []int{784, 30, 10})
	untrained.Trained, untrained.Accuracy, untrained.EpochsTrained, untrained.History = false, nil, 0, nil
	unknown := newMeta(newID(), []int{784, 30, 10})
	unknown.Init, unknown.Seed = "", nil
	scaled := newMeta(newID(), []int{784, 30, 10})
	scaled.Init = InitScaled
	owned := newMeta(newID(), []int{784, 30, 10})
	owned.OwnerHash = ownerHash
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
		{"an owner", owned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, tc.meta.Sizes, 7)
			m, got, err := decodeAs(saved(t, tc.meta, n), Limits{}, tc.meta.ID)
			if err != nil {
				t.Fatal(err)
			}
			sameMeta(t, m, tc.meta)
			sameNetwork(t, got, n)
		})
	}
}

// TestGolden pins the file format: a change to what Encode writes shows up as
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
		t.Fatalf("Encode wrote %d bytes that differ from testdata/golden_v2.npz (%d bytes); run go test -update if the change is intended", len(got), len(want))
	}
}

// TestGoldenV1 loads testdata/golden_v1.npz, the fixture as format version
// 1 wrote it (before init, seed and the history): it reads as made with
// InitNormal, of unknown seed, with an empty history.
func TestGoldenV1(t *testing.T) {
	file := getFile(t, fixturePath("golden_v1.npz"))
	want, n := fixture(t)
	want.Seed, want.History = nil, nil
	m, got, err := decodeAs(file, Limits{}, fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, m, want)
	sameNetwork(t, got, n)
	e, err := decodeEntryAs(file, Limits{}, fixtureID)
	if err != nil {
		t.Fatalf("DecodeEntryAs: %v", err)
	}
	sameMeta(t, e.Meta, want)

	// Saved again, it becomes a version 2 file with the same contents.
	again := saved(t, m, got)
	if v := unmarshalNumbers[map[string]any](t, entry(t, again, metaEntry))["format_version"]; v != json.Number("2") {
		t.Errorf("saved again: format_version %v, want 2", v)
	}
	m2, _, err := decodeAs(again, Limits{}, fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, m2, want)
}

// writeFuzzSeeds writes valid and corrupt files as the seed corpora of
// FuzzDecode and FuzzImport.
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

	seed := corpus("FuzzDecode")
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
	m := newMeta(newID(), []int{784, 30, 10})
	es := unzip(t, saved(t, m, newNet(t, m.Sizes, 1)))
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
	file := getFile(t, fixturePath("numpy.npz"))
	m, nm, err := decodeAs(file, Limits{}, fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	n := nm.(*network.Network)
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
	if e, err := decodeEntryAs(file, Limits{}, fixtureID); err != nil {
		t.Errorf("DecodeEntryAs: %v", err)
	} else {
		sameMeta(t, e.Meta, EntryOf(m).Meta)
	}
}

// TestReadsVariants decodes files that differ from what Encode writes in ways
// any honest writer may choose.
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
			got, gn, err := decodeAs(tc.data, Limits{}, fixtureID)
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
	wantErr string // in DecodeAs's error
	// listOK is set when only the weights are bad: DecodeEntry (a store's
	// List) reads no more than the headers, so it accepts the file, and only
	// Decode finds the fault.
	listOK bool
}

// corruptCases are files kept under fixtureID that DecodeAs must refuse.
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
		{"meta of format version 4", editMeta(t, "format_version", 4), "format_version 4, want 1, 2 or 3", false},
		{"meta of format version 3 without layers", editMeta(t, "format_version", 3), `key "layers" is missing`, false},
		{"meta without format version", editMeta(t, "format_version", nil), "format_version , want 1, 2 or 3", false},
		{"meta of version 2 without init", editMeta(t, "init", nil), `key "init" is missing`, false},
		{"meta of version 2 without seed", editMeta(t, "seed", nil), `key "seed" is missing`, false},
		{"meta of version 2 without history records", editMeta(t, "history_records", nil), `key "history_records" is missing`, false},
		{"meta init unknown", editMeta(t, "init", "xavier"), `init "xavier"`, false},
		{"meta negative seed", editMeta(t, "seed", -1), "seed", false},
		{"meta history records over MaxHistory", editMeta(t, "history_records", MaxHistory+1), "history_records 100001, want 0 to 100000 (MaxHistory)", false},
		{"no history.json", edit(t, "history.json", nil), "entry history.json is missing", false},
		{"history.json larger than its records need", edit(t, "history.json", slices.Repeat([]byte(" "), int(maxHistoryJSON(3))+1)), "entry history.json holds 1943 bytes, more than the 1942", false},
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
			r := bytes.NewReader(tc.data)
			// As a store reads the file it keeps under fixtureID.
			_, n, err := DecodeAs(r, r.Size(), Limits{}, fixtureID)
			if err == nil || n != nil {
				t.Fatalf("DecodeAs succeeded, want an error containing %q", tc.wantErr)
			}
			t.Log(err)
			if errors.Is(err, ErrInvalidID) {
				t.Errorf("DecodeAs: %v, want a corruption error", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("DecodeAs: %v, want an error containing %q", err, tc.wantErr)
			}

			// Decode alone refuses the bytes the same way; only the id's
			// match with the name the file is kept under is DecodeAs's to
			// check.
			if _, _, err := Decode(r, r.Size(), Limits{}); (err == nil) != (tc.name == idMismatch) {
				t.Errorf("Decode: %v", err)
			} else if err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Decode: %v, want an error containing %q", err, tc.wantErr)
			}
			_, decodeEntryErr := DecodeEntry(r, r.Size(), Limits{})
			_, entryAsErr := DecodeEntryAs(r, r.Size(), Limits{}, fixtureID)

			// What a store's List and Open read: the headers.
			if tc.listOK {
				if decodeEntryErr != nil || entryAsErr != nil {
					t.Errorf("DecodeEntry: %v; DecodeEntryAs: %v; want both to accept the headers", decodeEntryErr, entryAsErr)
				}
				return
			}
			if entryAsErr == nil || !strings.Contains(entryAsErr.Error(), tc.wantErr) {
				t.Errorf("DecodeEntryAs: %v, want an error containing %q", entryAsErr, tc.wantErr)
			}
			if (decodeEntryErr == nil) != (tc.name == idMismatch) {
				t.Errorf("DecodeEntry: %v; want it to refuse the file", decodeEntryErr)
			}
		})
	}
}

// idMismatch is the corrupt case that only DecodeAs and DecodeEntryAs can
// detect: Decode and DecodeEntry do not know the name the file is kept
// under.
const idMismatch = "meta id of another network"

// ownerHash is a well-formed owner_token_sha256 (that of "token").
const ownerHash = "3c469e9d6c5875d37a43f353d4f88e61fcf812c66eee3457465a40b0da4153e0"

// TestOwnerHash: meta.json's optional owner_token_sha256 is read back as
// written; a file without it (older, or a network without an owner) reads
// as none; a malformed one is refused without quoting it; an import drops
// it (the new network gets an owner of its own).
func TestOwnerHash(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value any // nil: the key is absent
		want  string
		err   bool
	}{
		{"absent", nil, "", false},
		{"a SHA-256", ownerHash, ownerHash, false},
		{"upper case", strings.ToUpper(ownerHash), "", true},
		{"too short", ownerHash[:63], "", true},
		{"the token itself", "s3cr3t-t0ken-put-in-the-wrong-place", "", true},
		{"not a string", 42, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := editMeta(t, "owner_token_sha256", tc.value)
			m, _, err := decodeAs(data, Limits{}, fixtureID)
			switch {
			case tc.err && err == nil:
				t.Fatalf("read %v, want an error", m.OwnerHash)
			case tc.err:
				if s, ok := tc.value.(string); ok && strings.Contains(err.Error(), s) {
					t.Errorf("the error quotes the value: %v", err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if m.OwnerHash != tc.want {
				t.Errorf("OwnerHash %q, want %q", m.OwnerHash, tc.want)
			}
			imp, err := importBytes(data, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if imp.Meta.OwnerHash != "" {
				t.Errorf("an import keeps the file's owner %q", imp.Meta.OwnerHash)
			}
		})
	}
	// Encode leaves the key out for a network without an owner: the file
	// is byte for byte what older releases wrote.
	m, n := fixture(t)
	if meta := entry(t, encode(t, m, n), metaEntry); strings.Contains(string(meta), "owner_token_sha256") {
		t.Errorf("meta.json of a network without an owner: %s", meta)
	}
	m.OwnerHash = "not hex"
	if err := Encode(io.Discard, m, n); err == nil {
		t.Error("Encode wrote a malformed owner hash")
	}
}
