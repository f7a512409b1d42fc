package modelfile

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mnist-go/nnserver/pkg/network"
)

// importFixture is the 4-3-2 network of testdata/import_fixture.py.
var importFixture = [][]float64{
	{0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1, 1.125, 1.25, 1.375}, // weights 0
	{0.5, -1, 2},                      // biases 0
	{-2.5, -1.5, -0.5, 0.5, 1.5, 2.5}, // weights 1
	{0.25, math.Copysign(0, -1)},      // biases 1
}

// params returns n's parameters in importFixture's order.
func params(n *network.Network) [][]float64 {
	var ps [][]float64
	for l := range n.NumLayers() {
		ps = append(ps, n.Weights(l).RawMatrix().Data, n.Biases(l).RawVector().Data)
	}
	return ps
}

func importBytes(data []byte, lim Limits) (Imported, error) {
	return Import(bytes.NewReader(data), int64(len(data)), lim)
}

// TestImportNumPyFiles imports the files testdata/import_fixture.py wrote
// with NumPy.
func TestImportNumPyFiles(t *testing.T) {
	for _, tc := range []struct {
		file    string
		wantErr string // empty: imports importFixture
		tooBig  bool
	}{
		{"nielsen.npz", "", false},
		{"nielsen_compressed.npz", "", false},
		{"nielsen_float32.npz", "", false},
		{"nielsen_from_1_flat_biases.npz", "", false},
		{"wrong_chain.npz", "weights_1.npy: shape [2 4]: its 4 inputs do not match the 3 outputs of weights_0.npy", false},
		{"nan.npz", "biases_0.npy: value 1 is NaN", false},
		{"not_npz.npy", "not a readable zip archive", false},
		{"bomb.npz", "layer sizes [784 7000 10] need 5565010 weights and biases, more than the limit of 5000000 (MaxParams)", true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			imp, err := importBytes(getFile(t, fixturePath(filepath.Join("import", tc.file))), Limits{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, ErrTooLarge) != tc.tooBig {
					t.Fatalf("Import: %v, want an error containing %q (ErrTooLarge: %v)", err, tc.wantErr, tc.tooBig)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if imp.Format != FormatNielsen || imp.Meta != nil {
				t.Errorf("format %q, meta %v; want %q, nil", imp.Format, imp.Meta, FormatNielsen)
			}
			if got := imp.Network.Sizes(); !slices.Equal(got, []int{4, 3, 2}) {
				t.Fatalf("sizes %v, want [4 3 2]", got)
			}
			got := params(imp.Network.(*network.Network))
			for i := range importFixture {
				for j, want := range importFixture[i] {
					if math.Float64bits(got[i][j]) != math.Float64bits(want) {
						t.Errorf("array %d value %d is %v, want %v", i, j, got[i][j], want)
					}
				}
			}
		})
	}
}

// TestImportOurFormat imports files of this server's format: the id they
// name is ignored, everything else is kept.
func TestImportOurFormat(t *testing.T) {
	m, n := fixture(t)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"as saved", encode(t, m, n)},
		{"an id that is not a UUID", editMeta(t, "id", "exported from elsewhere")},
		{"deflated", func() []byte {
			es := unzip(t, encode(t, m, n))
			for i := range es {
				es[i].method = 8
			}
			return rezip(t, es)
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			imp, err := importBytes(tc.data, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if imp.Format != FormatNNServer || imp.Meta == nil {
				t.Fatalf("format %q, meta %v; want %q and a meta", imp.Format, imp.Meta, FormatNNServer)
			}
			want := m
			want.ID = ""
			sameMeta(t, *imp.Meta, want)
			sameNetwork(t, imp.Network, n)
		})
	}

	imp, err := importBytes(getFile(t, fixturePath("numpy.npz")), Limits{})
	if err != nil {
		t.Fatalf("Import of testdata/numpy.npz: %v", err)
	}
	if imp.Format != FormatNNServer || !slices.Equal(imp.Network.Sizes(), []int{4, 3, 2}) {
		t.Errorf("Import of testdata/numpy.npz: %q, sizes %v", imp.Format, imp.Network.Sizes())
	}

	// What Decode refuses, Import refuses.
	if _, err := importBytes(editMeta(t, "epochs_trained", -1), Limits{}); err == nil || !strings.Contains(err.Error(), "epochs_trained") {
		t.Errorf("Import of a bad meta.json: %v", err)
	}
}

// nielsenCase builds a Nielsen-layout archive from (name, NPY header dict,
// values) triples.
func nielsenCase(t testing.TB, arrays ...any) []byte {
	var es []zipEntry
	for i := 0; i < len(arrays); i += 3 {
		name, header, data := arrays[i].(string), arrays[i+1].(string), arrays[i+2].([]float64)
		es = append(es, zipEntry{name: name, data: npy(header, data)})
	}
	return rezip(t, es)
}

// f8 returns the NPY header dict of a C-order float64 array of the given
// shape, written as a Python tuple.
func f8(shape string) string {
	return "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }"
}

type importCase struct {
	name    string
	data    []byte
	wantErr string // empty: Import succeeds
	tooBig  bool
}

// importCases are archives in Nielsen's layout, most of which Import must
// refuse.
func importCases(t testing.TB) []importCase {
	good := []any{
		"weights_0.npy", f8("(3, 4)"), floats(12), "biases_0.npy", f8("(3, 1)"), floats(3),
		"weights_1.npy", f8("(2, 3)"), floats(6), "biases_1.npy", f8("(2,)"), floats(2),
	}
	with := func(i int, v any) []any {
		a := slices.Clone(good)
		a[i] = v
		return a
	}
	f4 := func(xs ...float32) []byte {
		h := "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n"
		b := append([]byte(npyMagic+"\x01\x00"), byte(len(h)), 0)
		b = append(b, h...)
		for _, x := range xs {
			u := math.Float32bits(x)
			b = append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
		}
		return b
	}
	withF4 := func(xs ...float32) []byte {
		es := unzip(t, nielsenCase(t, good...))
		es[3].data = f4(xs...)
		return rezip(t, es)
	}
	elevenLayers := []any{}
	for l := range 10 {
		elevenLayers = append(elevenLayers,
			"weights_"+string(rune('0'+l))+".npy", f8("(1, 1)"), floats(1),
			"biases_"+string(rune('0'+l))+".npy", f8("(1,)"), floats(1))
	}
	return []importCase{
		{"valid", nielsenCase(t, good...), "", false},
		{"other entries are ignored", nielsenCase(t, append(good, "sizes.npy", f8("(3,)"), floats(3), "w0.npy", f8("(1,)"), floats(1))...), "", false},
		{"float32 values", withF4(0.5, -3), "", false},
		{"float32 infinity", withF4(0.5, float32(math.Inf(1))), "biases_1.npy: value 1 is +Inf", false},
		{"no arrays", rezip(t, []zipEntry{{name: "notes.txt", data: []byte("hi")}}), "neither meta.json", false},
		{"numbered from 2", nielsenCase(t, with(0, "weights_2.npy")[:6]...), "the first weights are weights_2.npy", false},
		{"a layer missing", nielsenCase(t, with(6, "weights_2.npy")...), "weights_1.npy is missing", false},
		{"weights from 0, biases from 1", nielsenCase(t, with(3, "biases_2.npy")...), "biases numbered [1 2] do not match the weights numbered [0 1]", false},
		{"a leading zero", nielsenCase(t, with(6, "weights_01.npy")...), "biases numbered [0 1] do not match the weights numbered [0]", false},
		{"1-D weights", nielsenCase(t, with(1, f8("(12,)"))...), "weights must be 2-D", false},
		{"biases of the wrong shape", nielsenCase(t, with(4, f8("(1, 3)"))...), "want (3, 1) or (3,)", false},
		{"an empty dimension", nielsenCase(t, with(1, f8("(0, 4)"))...), "empty dimension", false},
		{"big-endian", nielsenCase(t, with(1, "{'descr': '>f8', 'fortran_order': False, 'shape': (3, 4), }")...), "dtype", false},
		{"integers", nielsenCase(t, with(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 4), }")...), "dtype", false},
		{"Fortran order", nielsenCase(t, with(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (3, 4), }")...), "Fortran", false},
		{"data one value short", nielsenCase(t, with(2, floats(11))...), "weights_0.npy: 158 bytes, want 166", false},
		{"NaN", nielsenCase(t, with(8, []float64{1, 2, 3, 4, math.NaN(), 6})...), "weights_1.npy: value 4 is NaN", false},
		{"over MaxLayers", nielsenCase(t, elevenLayers...), "11 layers, more than the limit of 10 (MaxLayers)", true},
		{"a huge dimension", nielsenCase(t, with(1, f8("(999999999, 4)"))[:6]...), "more than the limit of 5000000", true},
		{"lying directory", func() []byte {
			es := unzip(t, nielsenCase(t, good...))
			var raw []rawEntry
			for _, e := range es {
				re := honest(e.name, e.data)
				if e.name == "weights_1.npy" {
					// The directory records the true size and CRC; the stream
					// holds 64 MB more.
					re = rawEntry{name: e.name, method: 8, data: deflated(t, e.data, 64<<20), uncompressed: uint64(len(e.data)), crc: re.crc}
				}
				raw = append(raw, re)
			}
			return rawZip(t, raw)
		}(), "weights_1.npy: data longer than the 118 bytes the zip directory records", false},
	}
}

// TestImportErrors checks what Import refuses in Nielsen's layout, and why.
func TestImportErrors(t *testing.T) {
	for _, tc := range importCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			imp, err := importBytes(tc.data, Limits{})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if imp.Format != FormatNielsen || !slices.Equal(imp.Network.Sizes(), []int{4, 3, 2}) {
					t.Errorf("format %q, sizes %v", imp.Format, imp.Network.Sizes())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, ErrTooLarge) != tc.tooBig {
				t.Errorf("Import: %v, want an error containing %q (ErrTooLarge: %v)", err, tc.wantErr, tc.tooBig)
			}
		})
	}
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}

func TestImportSizeLimit(t *testing.T) {
	// A file one byte over MaxImportSize is refused before a byte is read.
	f, err := os.Open(fixturePath("import/nielsen.npz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &countingReaderAt{r: f}
	if _, err := Import(c, MaxImportSize+1, Limits{}); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "MaxImportSize") {
		t.Errorf("Import of MaxImportSize+1 bytes: %v, want ErrTooLarge naming MaxImportSize", err)
	}
	if c.n != 0 {
		t.Errorf("%d bytes read", c.n)
	}
	if _, err := Import(c, 10, Limits{MaxLayers: MaxLayers + 1}); err == nil || !strings.Contains(err.Error(), "MaxLayers 65") {
		t.Errorf("Import with limits beyond the format's: %v", err)
	}
}
