package store

import (
	"archive/zip"
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/network"
)

// Limits on what Save writes and Load reads. They bound the memory a file
// can make Load allocate, whatever its header claims.
const (
	// MaxLayers is the most layers (inputs and output included) a saved
	// network may have.
	MaxLayers = 64
	// MaxParams is the most weights and biases, all layers together, a saved
	// network may have: 400 MB of float64.
	MaxParams = 50_000_000
)

const (
	// formatVersion is meta.json's format_version. Raise it when the layout
	// changes in a way old readers would misread.
	formatVersion = 1
	metaEntry     = "meta.json"
	// maxMetaSize bounds meta.json; ours is a few hundred bytes even for
	// MaxLayers layers.
	maxMetaSize = 64 << 10
	// maxFileSize bounds the archive: the parameters, plus room for every
	// entry's NPY and zip headers and meta.json.
	maxFileSize = MaxParams*8 + 4<<20
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
// never writes a file Load would refuse.
func (m *Meta) validate() error {
	if err := checkID(m.ID); err != nil {
		return err
	}
	if err := checkSizes(m.Sizes); err != nil {
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

// checkSizes enforces MaxLayers and MaxParams without overflowing: each size
// is bounded before any product is taken.
func checkSizes(sizes []int) error {
	if len(sizes) < 2 || len(sizes) > MaxLayers {
		return fmt.Errorf("%d layers, want 2 to %d", len(sizes), MaxLayers)
	}
	for i, s := range sizes {
		if s < 1 || s > MaxParams {
			return fmt.Errorf("layer %d has %d neurons, want 1 to %d", i, s, MaxParams)
		}
	}
	params := 0
	for l := 1; l < len(sizes); l++ {
		params += sizes[l] * (sizes[l-1] + 1)
		if params > MaxParams {
			return fmt.Errorf("layer sizes %v need more than %d parameters", sizes, MaxParams)
		}
	}
	return nil
}

// writeNPZ writes m and n as an .npz archive: meta.json, then w0.npy, b0.npy,
// w1.npy, b1.npy, ... Entries are stored uncompressed, as np.savez does:
// trained weights hardly compress, and stored entries load fastest.
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

// npz is an open, not yet trusted .npz archive.
type npz struct {
	f       *os.File
	size    int64
	entries map[string]*zip.File
}

// openNPZ opens the archive name in root and reads its zip directory. Only
// the directory is read, so this is cheap whatever the file's size.
func openNPZ(root *os.Root, name string) (*npz, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	a, err := readDirectory(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

func readDirectory(f *os.File) (*npz, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("file of %d bytes is larger than any network we save (%d)", fi.Size(), maxFileSize)
	}
	zr, err := zip.NewReader(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("not a readable zip archive: %w", err)
	}
	a := &npz{f: f, size: fi.Size(), entries: make(map[string]*zip.File, len(zr.File))}
	for _, e := range zr.File {
		if _, dup := a.entries[e.Name]; dup {
			return nil, fmt.Errorf("entry %q appears twice", e.Name)
		}
		a.entries[e.Name] = e
	}
	return a, nil
}

func (a *npz) close() error { return a.f.Close() }

// entry opens the named entry after checking that its recorded sizes are
// consistent with the archive, so a lying directory cannot promise more data
// than the file holds.
func (a *npz) entry(name string) (*zip.File, io.ReadCloser, error) {
	e, ok := a.entries[name]
	if !ok {
		return nil, nil, fmt.Errorf("entry %s is missing", name)
	}
	if e.CompressedSize64 > uint64(a.size) ||
		(e.Method == zip.Store && e.CompressedSize64 != e.UncompressedSize64) {
		return nil, nil, fmt.Errorf("entry %s: sizes in the zip directory are inconsistent", name)
	}
	rc, err := e.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("entry %s: %w", name, err)
	}
	return e, rc, nil
}

// meta reads and checks meta.json. id is the id the file name carries;
// meta.json must agree with it.
func (a *npz) meta(id string) (Meta, error) {
	e, rc, err := a.entry(metaEntry)
	if err != nil {
		return Meta{}, err
	}
	defer rc.Close()
	if e.UncompressedSize64 > maxMetaSize {
		return Meta{}, fmt.Errorf("%s is %d bytes, more than %d", metaEntry, e.UncompressedSize64, maxMetaSize)
	}
	// Reading to EOF makes archive/zip verify the size and CRC-32.
	raw, err := io.ReadAll(io.LimitReader(rc, maxMetaSize+1))
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
	if mf.ID != id {
		return Meta{}, fmt.Errorf("%s: id %.40q does not match the file name", metaEntry, mf.ID)
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
	if err := m.validate(); err != nil {
		return Meta{}, fmt.Errorf("%s: %w", metaEntry, err)
	}
	return m, nil
}

// array checks that entry name is an NPY array of the given shape whose size
// is exactly what that shape needs. With load set it then reads the values,
// allocating only once the checks have passed; otherwise it reads no more
// than the NPY header.
func (a *npz) array(name string, shape []int, load bool, buf []byte) ([]float64, error) {
	e, rc, err := a.entry(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	got, hdrLen, err := readNPYHeader(rc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !slices.Equal(got, shape) {
		return nil, fmt.Errorf("%s: shape %v does not match the layer sizes in %s, want %v", name, got, metaEntry, shape)
	}
	count := 1
	for _, d := range shape {
		count *= d // bounded by MaxParams: shape comes from checked sizes
	}
	if want := uint64(hdrLen) + 8*uint64(count); e.UncompressedSize64 != want {
		return nil, fmt.Errorf("%s: %d bytes, want %d for shape %v", name, e.UncompressedSize64, want, shape)
	}
	if !load {
		return nil, nil
	}
	data := make([]float64, count)
	if err := readFloats(rc, data, buf); err != nil {
		return nil, fmt.Errorf("%s: reading data: %w", name, err)
	}
	// The sizes matched, so this read hits EOF, where archive/zip checks the
	// CRC-32 of the whole entry.
	if _, err := io.ReadFull(rc, buf[:1]); err != io.EOF {
		if err == nil {
			err = errors.New("data longer than its shape")
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return data, nil
}

// layers checks every w<l>.npy and b<l>.npy against m.Sizes and, with load
// set, returns their contents.
func (a *npz) layers(m Meta, load bool) ([]*mat.Dense, []*mat.VecDense, error) {
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
		w, err := a.array(weightEntry(l-1), []int{rows, cols}, load, buf)
		if err != nil {
			return nil, nil, err
		}
		b, err := a.array(biasEntry(l-1), []int{rows}, load, buf)
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

// writeFile writes m and n to f as an .npz archive, flushes it to stable
// storage and closes f.
func writeFile(f *os.File, m Meta, n *network.Network) error {
	bw := bufio.NewWriterSize(f, bufSize)
	err := writeNPZ(bw, m, n)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
