package store

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/network"
)

const (
	// formatVersion is meta.json's format_version. Raise it when the layout
	// changes in a way old readers would misread.
	formatVersion = 1
	metaEntry     = "meta.json"
	// maxMetaSize bounds meta.json; ours is a few hundred bytes even for
	// MaxLayers layers.
	maxMetaSize = 64 << 10
	// bufSize is the I/O buffer for writing and reading parameters.
	bufSize = 64 << 10
)

func weightEntry(l int) string { return fmt.Sprintf("w%d.npy", l) }
func biasEntry(l int) string   { return fmt.Sprintf("b%d.npy", l) }

// metaFile is meta.json. Times are written in UTC with nanoseconds
// (RFC 3339), so a round trip preserves the instant exactly.
type metaFile struct {
	FormatVersion int       `json:"format_version"`
	ID            string    `json:"id"`
	LayerSizes    []int     `json:"layer_sizes"`
	Trained       bool      `json:"trained"`
	Accuracy      *float64  `json:"accuracy"`
	EpochsTrained int       `json:"epochs_trained"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// metaKeys are the keys meta.json must have: a missing one would silently
// decode as a zero value.
var metaKeys = []string{"format_version", "id", "layer_sizes", "trained", "accuracy",
	"epochs_trained", "created_at", "updated_at"}

// validate checks what both Save and Load require of a Meta, so that Save
// never writes a file Load would refuse. lim must be resolved.
func (m *Meta) validate(lim Limits) error {
	if err := checkID(m.ID); err != nil {
		return err
	}
	return m.validateContent(lim)
}

// validateContent is validate without the id, which an import ignores.
func (m *Meta) validateContent(lim Limits) error {
	if err := checkSizes(m.Sizes, lim); err != nil {
		return err
	}
	if a := m.Accuracy; a != nil && !(*a >= 0 && *a <= 1) {
		return fmt.Errorf("accuracy %v is not a number between 0 and 1", *a)
	}
	if m.EpochsTrained < 0 {
		return fmt.Errorf("epochs_trained %d is negative", m.EpochsTrained)
	}
	return nil
}

// Encode writes n and its description m as an .npz archive: meta.json,
// then w0.npy, b0.npy, w1.npy, b1.npy, ... (see the package documentation).
// Every backend stores these bytes as they are.
//
// Entries are stored uncompressed, as np.savez does: trained weights hardly
// compress, and stored entries load fastest.
//
// m must be valid (a canonical UUID, sizes within the format's caps MaxLayers
// and MaxParams, ...) and m.Sizes must equal n.Sizes(); Encode checks this
// before writing anything, and refuses non-finite parameters as it meets
// them. A store also checks its own Limits.
func Encode(w io.Writer, m Meta, n *network.Network) error {
	if err := checkEncodable(m, n, formatLimits); err != nil {
		return fmt.Errorf("store: encode: %w", err)
	}
	if err := writeNPZ(w, m, n); err != nil {
		return fmt.Errorf("store: encode %s: %w", m.ID, err)
	}
	return nil
}

// formatLimits are the format's caps as Limits.
var formatLimits = Limits{MaxLayers: MaxLayers, MaxParams: MaxParams}

// checkEncodable checks m and n against lim (resolved) before anything is
// written.
func checkEncodable(m Meta, n *network.Network, lim Limits) error {
	if err := m.validate(lim); err != nil {
		return err
	}
	if n == nil {
		return fmt.Errorf("%s: nil network", m.ID)
	}
	if !slices.Equal(m.Sizes, n.Sizes()) {
		return fmt.Errorf("%s: meta says layer sizes %v, network has %v", m.ID, m.Sizes, n.Sizes())
	}
	return nil
}

// writeNPZ writes the archive of m and n, which checkEncodable has accepted.
func writeNPZ(w io.Writer, m Meta, n *network.Network) error {
	zw := zip.NewWriter(w)
	create := func(name string) (io.Writer, error) {
		return zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: m.UpdatedAt.UTC()})
	}

	meta, err := json.MarshalIndent(metaFile{
		FormatVersion: formatVersion,
		ID:            m.ID,
		LayerSizes:    m.Sizes,
		Trained:       m.Trained,
		Accuracy:      m.Accuracy,
		EpochsTrained: m.EpochsTrained,
		CreatedAt:     m.CreatedAt.UTC(),
		UpdatedAt:     m.UpdatedAt.UTC(),
	}, "", "  ")
	if err != nil {
		return err
	}
	ew, err := create(metaEntry)
	if err != nil {
		return err
	}
	if _, err := ew.Write(append(meta, '\n')); err != nil {
		return err
	}

	buf := make([]byte, bufSize)
	for l := range n.NumLayers() {
		wl := n.Weights(l)
		rows, cols := wl.Dims()
		if ew, err = create(weightEntry(l)); err != nil {
			return err
		}
		if _, err := ew.Write(npyHeader([]int{rows, cols})); err != nil {
			return err
		}
		// RawRowView honours the stride, so views of larger matrices work too.
		for i := range rows {
			if err := writeFloats(ew, wl.RawRowView(i), buf); err != nil {
				return fmt.Errorf("%s: %w", weightEntry(l), err)
			}
		}

		b := mat.Col(nil, 0, n.Biases(l))
		if ew, err = create(biasEntry(l)); err != nil {
			return err
		}
		if _, err := ew.Write(npyHeader([]int{len(b)})); err != nil {
			return err
		}
		if err := writeFloats(ew, b, buf); err != nil {
			return fmt.Errorf("%s: %w", biasEntry(l), err)
		}
	}
	return zw.Close()
}

// maxFileSize bounds an archive holding a network within lim: the
// parameters, plus room for every entry's NPY and zip headers and meta.json.
func maxFileSize(lim Limits) int64 {
	return 8*int64(lim.MaxParams) + 4<<20
}

// Decode reads a network and its description from the size bytes of r, an
// archive Encode wrote (or NumPy, following the same layout). Every byte is
// treated as hostile: the layer sizes meta.json declares are checked against
// lim (a zero field means the default) before any array is read, no entry is
// read past the size the zip directory records for it, and every entry's
// CRC-32 is checked. An error wrapping ErrTooLarge means the network or file
// is beyond lim; any other error, that the bytes are not a valid network.
func Decode(r io.ReaderAt, size int64, lim Limits) (Meta, *network.Network, error) {
	m, n, err := decode(r, size, lim, "")
	if err != nil {
		return Meta{}, nil, fmt.Errorf("store: decode: %w", err)
	}
	return m, n, nil
}

// DecodeEntry is Decode for listing: it reads meta.json and checks the NPY
// headers of every array against it, but reads no parameters, so it is
// cheap whatever the network's size. A file it accepts may still fail
// Decode, if its parameters are damaged or not finite.
func DecodeEntry(r io.ReaderAt, size int64, lim Limits) (Entry, error) {
	e, err := decodeEntry(r, size, lim, "")
	if err != nil {
		return Entry{}, fmt.Errorf("store: decode: %w", err)
	}
	return e, nil
}

// decode is Decode; if wantID is not empty, meta.json must name that id.
func decode(r io.ReaderAt, size int64, lim Limits, wantID string) (Meta, *network.Network, error) {
	d, err := newDecoder(r, size, lim)
	if err != nil {
		return Meta{}, nil, err
	}
	m, err := d.meta(wantID)
	if err != nil {
		return Meta{}, nil, err
	}
	ws, bs, err := d.layers(m, true)
	if err != nil {
		return Meta{}, nil, err
	}
	n, err := network.FromParams(m.Sizes, ws, bs)
	if err != nil {
		return Meta{}, nil, err
	}
	return m, n, nil
}

// decodeEntry is DecodeEntry; if wantID is not empty, meta.json must name
// that id.
func decodeEntry(r io.ReaderAt, size int64, lim Limits, wantID string) (Entry, error) {
	d, err := newDecoder(r, size, lim)
	if err != nil {
		return Entry{}, err
	}
	m, err := d.meta(wantID)
	if err != nil {
		return Entry{}, err
	}
	if _, _, err := d.layers(m, false); err != nil {
		return Entry{}, err
	}
	return EntryOf(m), nil
}

// decoder reads an archive of ours, checking it against lim.
type decoder struct {
	a   *archive
	lim Limits // resolved
	// ignoreID is set by Import: meta.json's id is neither checked nor
	// returned, as the importer assigns a new one.
	ignoreID bool
}

func newDecoder(r io.ReaderAt, size int64, lim Limits) (*decoder, error) {
	lim, err := lim.resolve()
	if err != nil {
		return nil, err
	}
	a, err := openArchive(r, size, maxFileSize(lim))
	if err != nil {
		return nil, err
	}
	return &decoder{a: a, lim: lim}, nil
}

// meta reads and checks meta.json. If wantID is not empty (the id a file
// name carries), meta.json must agree with it.
func (d *decoder) meta(wantID string) (Meta, error) {
	er, err := d.a.open(metaEntry, maxMetaSize)
	if err != nil {
		return Meta{}, err
	}
	defer er.Close()
	raw, err := io.ReadAll(er)
	if err == nil {
		err = er.verify()
	}
	if err != nil {
		return Meta{}, fmt.Errorf("reading %s: %w", metaEntry, err)
	}

	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return Meta{}, fmt.Errorf("%s: %w", metaEntry, err)
	}
	for _, k := range metaKeys {
		if _, ok := keys[k]; !ok {
			return Meta{}, fmt.Errorf("%s: key %q is missing", metaEntry, k)
		}
	}
	var mf metaFile
	if err := json.Unmarshal(raw, &mf); err != nil {
		return Meta{}, fmt.Errorf("%s: %w", metaEntry, err)
	}
	if mf.FormatVersion != formatVersion {
		return Meta{}, fmt.Errorf("%s: format_version %d, want %d", metaEntry, mf.FormatVersion, formatVersion)
	}
	if wantID != "" && mf.ID != wantID {
		return Meta{}, fmt.Errorf("%s: id %.40q does not match the file name", metaEntry, mf.ID)
	}
	if d.ignoreID {
		mf.ID = ""
	}
	m := Meta{
		ID:            mf.ID,
		Sizes:         mf.LayerSizes,
		Trained:       mf.Trained,
		Accuracy:      mf.Accuracy,
		EpochsTrained: mf.EpochsTrained,
		CreatedAt:     mf.CreatedAt,
		UpdatedAt:     mf.UpdatedAt,
	}
	validate := m.validate
	if d.ignoreID {
		validate = m.validateContent
	}
	if err := validate(d.lim); err != nil {
		return Meta{}, fmt.Errorf("%s: %w", metaEntry, err)
	}
	return m, nil
}

// array checks that entry name is an NPY array of the given shape (whose
// element count lim has bounded) and that the zip directory records exactly
// the size that shape needs. With load set it then reads the values,
// allocating only once the checks have passed; otherwise it reads no more
// than the NPY header.
func (d *decoder) array(name string, shape []int, load bool, buf []byte) ([]float64, error) {
	count := 1
	for _, n := range shape {
		count *= n // bounded by lim.MaxParams: shape comes from checked sizes
	}
	// Nothing is inflated past what the shape allows: the header, then the
	// values. The exact size is checked once the header's length is known.
	er, err := d.a.open(name, uint64(npyMaxPreamble)+8*uint64(count))
	if err != nil {
		return nil, err
	}
	defer er.Close()
	hdr, err := readNPYHeader(er)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if hdr.dtype != npyFloat64 {
		return nil, fmt.Errorf("%s: dtype %q, want %q (little-endian float64)", name, hdr.dtype, npyFloat64)
	}
	if !slices.Equal(hdr.shape, shape) {
		return nil, fmt.Errorf("%s: shape %v does not match the layer sizes in %s, want %v", name, hdr.shape, metaEntry, shape)
	}
	if want := uint64(hdr.size) + 8*uint64(count); er.size != want {
		return nil, fmt.Errorf("%s: %d bytes, want %d for shape %v", name, er.size, want, shape)
	}
	if !load {
		return nil, nil
	}
	data := make([]float64, count)
	if err := readFloats(er, data, buf); err != nil {
		return nil, fmt.Errorf("%s: reading data: %w", name, err)
	}
	if err := er.verify(); err != nil {
		return nil, err
	}
	return data, nil
}

// layers checks every w<l>.npy and b<l>.npy against m.Sizes and, with load
// set, returns their contents.
func (d *decoder) layers(m Meta, load bool) ([]*mat.Dense, []*mat.VecDense, error) {
	var (
		ws  []*mat.Dense
		bs  []*mat.VecDense
		buf []byte // only needed to read data
	)
	if load {
		buf = make([]byte, bufSize)
	}
	for l := 1; l < len(m.Sizes); l++ {
		rows, cols := m.Sizes[l], m.Sizes[l-1]
		w, err := d.array(weightEntry(l-1), []int{rows, cols}, load, buf)
		if err != nil {
			return nil, nil, err
		}
		b, err := d.array(biasEntry(l-1), []int{rows}, load, buf)
		if err != nil {
			return nil, nil, err
		}
		if load {
			ws = append(ws, mat.NewDense(rows, cols, w))
			bs = append(bs, mat.NewVecDense(rows, b))
		}
	}
	return ws, bs, nil
}
