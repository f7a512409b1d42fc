package modelfile

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/model"
	"github.com/mnist-go/nnserver/pkg/network"
)

// MaxImportSize is the largest file Import reads: 64 MiB, room for 8M
// float64 parameters, more than the default MaxParams allows.
const MaxImportSize = 64 << 20

// An ImportError is why a file cannot be imported. Its Reason is for the
// person who sent the file; it wraps the cause (ErrTooLarge among others).
type ImportError struct{ Err error }

// Reason says what is wrong with the file, without the package's prefix.
func (e *ImportError) Reason() string { return e.Err.Error() }

func (e *ImportError) Error() string { return "modelfile: import: " + e.Err.Error() }

func (e *ImportError) Unwrap() error { return e.Err }

// ImportFormat names the layout of an imported file.
type ImportFormat string

const (
	// FormatNNServer is this server's own layout: meta.json, w<l>.npy and
	// b<l>.npy (see the package documentation).
	FormatNNServer ImportFormat = "nnserver"
	// FormatNielsen is the layout of a network.py network saved with
	// np.savez or np.savez_compressed: weights_0 ... weights_{L-1} shaped
	// (n_out, n_in) and biases_0 ... biases_{L-1} shaped (n_out, 1) or
	// (n_out,), or the same numbered from 1.
	FormatNielsen ImportFormat = "nielsen"
)

// Imported is a network read by Import.
type Imported struct {
	// Format is the layout the file had.
	Format ImportFormat
	// Network holds the imported weights and biases: a *network.Network,
	// or a *deep.Network for a layers network of ours (format version 3).
	Network model.Model
	// Meta is the file's description if Format is FormatNNServer, with an
	// empty ID: the id the file names is ignored, the importer assigns a
	// new one. It is nil for FormatNielsen, whose files describe nothing
	// but the arrays.
	Meta *Meta
}

// Import reads a network made elsewhere from the size bytes of r, an .npz
// archive of at most MaxImportSize bytes in either layout of ImportFormat:
// ours if it holds meta.json, Nielsen's otherwise. Arrays may be stored or
// deflated (np.savez or np.savez_compressed) and, in Nielsen's layout, of
// dtype '<f4' as well as '<f8' (converted exactly). Like Decode it treats
// every byte as hostile: the layer sizes the arrays declare are checked
// against lim (a zero field means the default) before any array is read,
// no entry is read past its recorded size, every CRC-32 is checked, and
// every value must be finite. Errors wrap ErrTooLarge where the network or
// the file is beyond the limits.
func Import(r io.ReaderAt, size int64, lim Limits) (Imported, error) {
	imp, err := importNPZ(r, size, lim)
	if err != nil {
		return Imported{}, &ImportError{Err: err}
	}
	return imp, nil
}

// ImportShape is what an import file declares, read from its headers only:
// the layer sizes (checked against the limits) and, in our layout, how many
// history records it holds.
type ImportShape struct {
	Sizes          []int
	Layers         []deep.Layer // a layers network's list (checked), nil otherwise
	HistoryRecords int
}

// Params is the number of weights and biases the file declares.
func (s ImportShape) Params() int { return model.Arch{Sizes: s.Sizes, Layers: s.Layers}.ParamCount() }

// PeekImport reads what Import would make of a file from its headers alone
// (the zip directory, meta.json, the NPY headers): a caller can tell the
// memory an Import will need before it starts. It refuses what Import
// would refuse for its sizes; Import checks everything else.
func PeekImport(r io.ReaderAt, size int64, lim Limits) (ImportShape, error) {
	shape, err := peekImport(r, size, lim)
	if err != nil {
		return ImportShape{}, &ImportError{Err: err}
	}
	return shape, nil
}

func peekImport(r io.ReaderAt, size int64, lim Limits) (ImportShape, error) {
	lim, err := lim.Resolve()
	if err != nil {
		return ImportShape{}, err
	}
	if size > MaxImportSize {
		return ImportShape{}, fmt.Errorf("%w: file of %d bytes, more than the %d an import may have (MaxImportSize)", ErrTooLarge, size, MaxImportSize)
	}
	a, err := openArchive(r, size, MaxImportSize)
	if err != nil {
		return ImportShape{}, err
	}
	if _, ok := a.entries[metaEntry]; ok {
		d := &decoder{a: a, lim: lim, ignoreID: true}
		m, _, records, err := d.metaJSON("")
		if err != nil {
			return ImportShape{}, err
		}
		return ImportShape{Sizes: m.Sizes, Layers: m.Layers, HistoryRecords: records}, nil
	}
	layers, base, err := nielsenLayers(a)
	if err != nil {
		return ImportShape{}, err
	}
	sizes := make([]int, layers+1)
	for l := range layers {
		name := "weights_" + strconv.Itoa(base+l) + ".npy"
		h, err := peekNPY(a, name)
		if err != nil {
			return ImportShape{}, err
		}
		if sh := h.shape; len(sh) != 2 || (l > 0 && sh[1] != sizes[l]) {
			return ImportShape{}, fmt.Errorf("%s: shape %v does not chain with the layers before it", name, sh)
		}
		sizes[0], sizes[l+1] = cmp.Or(sizes[0], h.shape[1]), h.shape[0]
	}
	if err := checkSizes(sizes, lim); err != nil {
		return ImportShape{}, err
	}
	return ImportShape{Sizes: sizes}, nil
}

func importNPZ(r io.ReaderAt, size int64, lim Limits) (Imported, error) {
	lim, err := lim.Resolve()
	if err != nil {
		return Imported{}, err
	}
	if size > MaxImportSize {
		return Imported{}, fmt.Errorf("%w: file of %d bytes, more than the %d an import may have (MaxImportSize)", ErrTooLarge, size, MaxImportSize)
	}
	a, err := openArchive(r, size, MaxImportSize)
	if err != nil {
		return Imported{}, err
	}
	if _, ok := a.entries[metaEntry]; ok {
		d := &decoder{a: a, lim: lim, ignoreID: true}
		m, err := d.meta("", true)
		if err != nil {
			return Imported{}, err
		}
		n, err := d.network(m)
		if err != nil {
			return Imported{}, err
		}
		return Imported{Format: FormatNNServer, Network: n, Meta: &m}, nil
	}
	n, err := importNielsen(a, lim)
	if err != nil {
		return Imported{}, err
	}
	return Imported{Format: FormatNielsen, Network: n}, nil
}

// importNielsen reads Nielsen's layout in passes: the weights' NPY headers
// first, from which the layer sizes are derived and checked against lim,
// then the biases' headers, then the values.
func importNielsen(a *archive, lim Limits) (*network.Network, error) {
	layers, base, err := nielsenLayers(a)
	if err != nil {
		return nil, err
	}
	wName := func(l int) string { return "weights_" + strconv.Itoa(base+l) + ".npy" }
	bName := func(l int) string { return "biases_" + strconv.Itoa(base+l) + ".npy" }

	// Headers only, at most npyMaxPreamble bytes inflated each.
	sizes := make([]int, layers+1)
	wHdrs := make([]npyArray, layers)
	bHdrs := make([]npyArray, layers)
	for l := range layers {
		if wHdrs[l], err = peekNPY(a, wName(l)); err != nil {
			return nil, err
		}
		sh := wHdrs[l].shape
		if len(sh) != 2 {
			return nil, fmt.Errorf("%s: shape %v; weights must be 2-D, (n_out, n_in)", wName(l), sh)
		}
		if l == 0 {
			sizes[0] = sh[1]
		} else if sh[1] != sizes[l] {
			return nil, fmt.Errorf("%s: shape %v: its %d inputs do not match the %d outputs of %s", wName(l), sh, sh[1], sizes[l], wName(l-1))
		}
		sizes[l+1] = sh[0]
	}
	if err := checkSizes(sizes, lim); err != nil {
		return nil, err
	}
	for l := range layers {
		if bHdrs[l], err = peekNPY(a, bName(l)); err != nil {
			return nil, err
		}
		n := sizes[l+1]
		if bs := bHdrs[l].shape; !slices.Equal(bs, []int{n}) && !slices.Equal(bs, []int{n, 1}) {
			return nil, fmt.Errorf("%s: shape %v; want (%d, 1) or (%d,) for the %d outputs of %s", bName(l), bs, n, n, n, wName(l))
		}
	}

	// The values. The shapes are bounded now, so are the entries' sizes.
	buf := make([]byte, bufSize)
	ws := make([]*mat.Dense, layers)
	bs := make([]*mat.VecDense, layers)
	for l := range layers {
		w, err := readNPY(a, wName(l), wHdrs[l], buf)
		if err != nil {
			return nil, err
		}
		b, err := readNPY(a, bName(l), bHdrs[l], buf)
		if err != nil {
			return nil, err
		}
		ws[l] = mat.NewDense(sizes[l+1], sizes[l], w)
		bs[l] = mat.NewVecDense(sizes[l+1], b)
	}
	return network.FromParams(sizes, ws, bs)
}

// nielsenLayers finds the weights_<i>.npy and biases_<i>.npy entries and
// returns how many layers they make and the index of the first: 0, or 1 if
// they are consistently numbered from 1. Other entries are ignored, as
// np.load would.
func nielsenLayers(a *archive) (layers, base int, err error) {
	var ws, bs []int
	for _, name := range a.names {
		kind, i, ok := nielsenEntry(name)
		switch {
		case !ok:
		case kind == "weights":
			ws = append(ws, i)
		default:
			bs = append(bs, i)
		}
	}
	if len(ws) == 0 {
		return 0, 0, fmt.Errorf("neither %s (this server's layout) nor weights_0.npy (Nielsen's layout, np.savez of weights_0, biases_0, ...) is in the archive", metaEntry)
	}
	slices.Sort(ws)
	slices.Sort(bs)
	base = ws[0]
	if base > 1 {
		return 0, 0, fmt.Errorf("the first weights are weights_%d.npy; want weights_0.npy (or weights_1.npy, numbering from 1)", base)
	}
	for k, i := range ws {
		if i != base+k {
			return 0, 0, fmt.Errorf("weights_%d.npy is missing: the weights are numbered %v", base+k, ws)
		}
	}
	if !slices.Equal(bs, ws) {
		return 0, 0, fmt.Errorf("biases numbered %v do not match the weights numbered %v", bs, ws)
	}
	return len(ws), base, nil
}

// nielsenEntry parses weights_<i>.npy or biases_<i>.npy. i is a decimal
// number without leading zeros and of at most 3 digits: no network within
// MaxLayers has more layers.
func nielsenEntry(name string) (kind string, i int, ok bool) {
	rest, ok := strings.CutSuffix(name, ".npy")
	if !ok {
		return "", 0, false
	}
	kind, digits, ok := strings.Cut(rest, "_")
	if !ok || (kind != "weights" && kind != "biases") || digits == "" || len(digits) > 3 ||
		(len(digits) > 1 && digits[0] == '0') || strings.Trim(digits, "0123456789") != "" {
		return "", 0, false
	}
	i, err := strconv.Atoi(digits)
	return kind, i, err == nil
}

// peekNPY reads the NPY header of entry name, and nothing after it.
func peekNPY(a *archive, name string) (npyArray, error) {
	// The recorded size is checked against the shape in readNPY; here
	// only the header is read, however large the entry says it is.
	er, err := a.open(name, MaxImportSize)
	if err != nil {
		return npyArray{}, err
	}
	defer er.Close()
	hdr, err := readNPYHeader(er)
	if err != nil {
		return npyArray{}, fmt.Errorf("%s: %w", name, err)
	}
	for _, d := range hdr.shape {
		if d < 1 {
			return npyArray{}, fmt.Errorf("%s: shape %v has an empty dimension", name, hdr.shape)
		}
	}
	return hdr, nil
}

// readNPY reads entry name, whose header peekNPY returned as hdr and whose
// shape checkSizes has bounded, and returns its values as float64. The
// entry must be exactly as long as the shape needs, and every value finite.
func readNPY(a *archive, name string, hdr npyArray, buf []byte) ([]float64, error) {
	count, item := hdr.count(), hdr.itemSize()
	want := uint64(hdr.size) + uint64(item)*uint64(count)
	er, err := a.open(name, want)
	if err != nil {
		return nil, err
	}
	defer er.Close()
	if er.size != want {
		return nil, fmt.Errorf("%s: %d bytes, want %d for shape %v of %s", name, er.size, want, hdr.shape, hdr.dtype)
	}
	again, err := readNPYHeader(er)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if again.size != hdr.size || again.dtype != hdr.dtype || !slices.Equal(again.shape, hdr.shape) {
		return nil, fmt.Errorf("%s: the header changed between two reads", name)
	}
	data := make([]float64, count)
	if item == 4 {
		err = readFloats32(er, data, buf)
	} else {
		err = readFloats(er, data, buf)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading data: %w", name, err)
	}
	if err := er.verify(); err != nil {
		return nil, err
	}
	for i, x := range data {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%s: value %d is %v: %w", name, i, x, network.ErrNotFinite)
		}
	}
	return data, nil
}
