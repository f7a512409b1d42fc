package modelfile

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/model"
	"github.com/mnist-go/nnserver/pkg/network"
)

// Meta describes a saved network; it is stored in the archive's meta.json
// and, for History, history.json.
type Meta struct {
	// ID is the network's id, a canonical lowercase UUID (see CheckID); an
	// adapter names the file <ID>.npz.
	ID string
	// Sizes is the number of neurons in each layer, inputs first; for a
	// layers network, the flattened size of the input and of every
	// layer's output.
	Sizes []int
	// Layers is a layers network's list (format version 3); nil for a
	// layer_sizes network (versions 1 and 2).
	Layers []deep.Layer
	// Init is how the network's weights were first drawn: InitNormal or
	// InitScaled, or "" if unknown (a network imported from elsewhere).
	// Files of format version 1 read as InitNormal, the only way networks
	// were made then.
	Init string
	// Seed is the seed the network was created with; nil if unknown (files
	// of format version 1, imported networks).
	Seed *uint64
	// Trained is whether the network has finished at least one epoch of
	// training (it is saved after every epoch).
	Trained bool
	// Accuracy is the test-set accuracy (0 to 1), nil until evaluated.
	Accuracy *float64
	// EpochsTrained counts the epochs trained, over all jobs.
	EpochsTrained int
	// History records every epoch the network trained, oldest first, across
	// jobs: at most MaxHistory records, epochs increasing and at most
	// EpochsTrained. Epochs trained before format version 2 have no record:
	// version 1 files read with an empty history. DecodeEntry (a store's
	// List) does not read the history: its entries' History is nil.
	History []EpochRecord
	// CreatedAt is when the network was created, UpdatedAt when it last
	// changed. They are stored in UTC to the nanosecond.
	CreatedAt, UpdatedAt time.Time
	// OwnerHash is the SHA-256 of the network's owner token, 64 lowercase
	// hex digits, or "" when it has none. It is meta.json's optional key
	// owner_token_sha256, absent from older files (and from those of a
	// network without an owner). Import ignores it: an imported network
	// gets an owner of its own.
	OwnerHash string
	// Name and Notes are what people call the network and what they note
	// of it: at most MaxNameLength and MaxNotesLength characters of UTF-8
	// (CheckName, CheckNotes), "" when none. They are meta.json's optional
	// keys name and notes, absent when empty and from older files.
	Name, Notes string
}

// The ways a network's weights are first drawn (Meta.Init).
const (
	// InitNormal draws weights and biases from N(0, 1), as network.py does.
	InitNormal = "normal"
	// InitScaled draws weights from N(0, 1/n_in) and biases from N(0, 1),
	// as network2.py does.
	InitScaled = "scaled"
)

// Entry describes one saved network, as DecodeEntry reads it and a store's
// List reports it.
type Entry struct {
	// Meta is the network's description, without History (nil).
	Meta
	// WeightShapes holds [rows, cols] of each layer's weight matrix:
	// [Sizes[l+1], Sizes[l]]; nil for a layers network.
	WeightShapes [][2]int
	// BiasShapes holds [Sizes[l+1], 1] for each layer: the Python service
	// kept biases as column vectors and reported them so.
	BiasShapes [][2]int
}

// EntryOf returns the Entry that DecodeEntry reads from a network saved with m:
// m without its History, and the shapes of its arrays.
func EntryOf(m Meta) Entry {
	m.History = nil
	e := Entry{Meta: m}
	if m.Layers != nil {
		return e
	}
	for l := 1; l < len(m.Sizes); l++ {
		e.WeightShapes = append(e.WeightShapes, [2]int{m.Sizes[l], m.Sizes[l-1]})
		e.BiasShapes = append(e.BiasShapes, [2]int{m.Sizes[l], 1})
	}
	return e
}

const (
	// formatVersion is meta.json's format_version. Raise it when the layout
	// changes in a way old readers would misread. Version 2 added init,
	// seed, history_records and history.json; version 1 files are still
	// read.
	formatVersion = 2
	// formatVersionLayers is the format_version of a layers network's
	// file: meta.json's layers, arrays named by layer index.
	formatVersionLayers = 3
	metaEntry           = "meta.json"
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
	FormatVersion  int       `json:"format_version"`
	ID             string    `json:"id"`
	LayerSizes     []int     `json:"layer_sizes"`
	Init           string    `json:"init"`
	Seed           *uint64   `json:"seed"`
	Trained        bool      `json:"trained"`
	Accuracy       *float64  `json:"accuracy"`
	EpochsTrained  int       `json:"epochs_trained"`
	HistoryRecords int       `json:"history_records"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// OwnerHash is optional in every version: older files have none.
	OwnerHash string `json:"owner_token_sha256,omitempty"`
	// Name and Notes are optional in every version.
	Name  string `json:"name,omitempty"`
	Notes string `json:"notes,omitempty"`
	// Layers is version 3's: the list as created.
	Layers []model.LayerJSON `json:"layers,omitempty"`
}

// metaKeys are the keys meta.json must have in each format version: a
// missing one would silently decode as a zero value.
var metaKeys = map[int][]string{
	1: {"format_version", "id", "layer_sizes", "trained", "accuracy", "epochs_trained", "created_at", "updated_at"},
	2: {"format_version", "id", "layer_sizes", "init", "seed", "trained", "accuracy", "epochs_trained",
		"history_records", "created_at", "updated_at"},
	3: {"format_version", "id", "layer_sizes", "layers", "init", "seed", "trained", "accuracy", "epochs_trained",
		"history_records", "created_at", "updated_at"},
}

// isOwnerHash reports whether s is a SHA-256 in lowercase hex.
func isOwnerHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validate checks what both encoding and decoding require of a Meta, so
// that Encode never writes a file Decode would refuse. lim must be resolved.
func (m *Meta) validate(lim Limits) error {
	if err := CheckID(m.ID); err != nil {
		return err
	}
	return m.validateContent(lim)
}

// validateContent is validate without the id, which an import ignores.
func (m *Meta) validateContent(lim Limits) error {
	if m.Layers != nil {
		sizes, err := checkLayers(m.Layers, lim)
		if err != nil {
			return err
		}
		if !slices.Equal(sizes, m.Sizes) {
			return fmt.Errorf("layer_sizes %v, the layers' are %v", m.Sizes, sizes)
		}
	} else if err := checkSizes(m.Sizes, lim); err != nil {
		return err
	}
	if a := m.Accuracy; a != nil && !(*a >= 0 && *a <= 1) {
		return fmt.Errorf("accuracy %v is not a number between 0 and 1", *a)
	}
	if m.EpochsTrained < 0 {
		return fmt.Errorf("epochs_trained %d is negative", m.EpochsTrained)
	}
	if m.Init != "" && m.Init != InitNormal && m.Init != InitScaled {
		return fmt.Errorf("init %.40q, want %q, %q or none", m.Init, InitNormal, InitScaled)
	}
	if m.OwnerHash != "" && !isOwnerHash(m.OwnerHash) {
		// The value is not quoted: it may be a secret put in the wrong place.
		return errors.New("owner_token_sha256 is not 64 lowercase hex digits")
	}
	if err := CheckName(m.Name); err != nil {
		return err
	}
	if err := CheckNotes(m.Notes); err != nil {
		return err
	}
	if err := validateHistory(m.History, m.EpochsTrained); err != nil {
		return err
	}
	if m.EpochsTrained > MaxHistory {
		return fmt.Errorf("%w: epochs_trained %d, more than a network trains in its life (%d, MaxHistory)", ErrTooLarge, m.EpochsTrained, MaxHistory)
	}
	return nil
}

// Encode writes n and its description m as an .npz archive: meta.json,
// history.json, then w0.npy, b0.npy, w1.npy, b1.npy, ... (see the package
// documentation).
// Every backend stores these bytes as they are.
//
// Entries are stored uncompressed, as np.savez does: trained weights hardly
// compress, and stored entries load fastest.
//
// m must be valid (a canonical UUID, sizes within the format's caps MaxLayers
// and MaxParams, ...) and m.Sizes must equal n.Sizes(); Encode checks this
// before writing anything, and refuses non-finite parameters as it meets
// them. A store holds networks to its own Limits: see EncodeWithin.
func Encode(w io.Writer, m Meta, n model.Model) error {
	if err := checkEncodable(m, n, formatLimits); err != nil {
		return fmt.Errorf("modelfile: encode: %w", err)
	}
	if err := writeNPZ(w, m, n); err != nil {
		return fmt.Errorf("modelfile: encode %s: %w", m.ID, err)
	}
	return nil
}

// EncodeWithin is Encode holding m and n to lim (a zero field means the
// default) instead of the format's caps: a network beyond lim is refused
// with an error wrapping ErrTooLarge before anything is written. What it
// writes, Decode with the same limits reads back.
func EncodeWithin(w io.Writer, m Meta, n model.Model, lim Limits) error {
	if err := CheckEncodable(m, n, lim); err != nil {
		return fmt.Errorf("modelfile: encode: %w", err)
	}
	if err := writeNPZ(w, m, n); err != nil {
		return fmt.Errorf("modelfile: encode %s: %w", m.ID, err)
	}
	return nil
}

// CheckEncodable checks what EncodeWithin checks before it writes anything:
// that m is valid within lim (a zero field means the default) and describes
// n. A store calls it before it makes room for the file (a temporary file,
// an upload), so that a network it must refuse leaves nothing behind.
// Errors wrap ErrInvalidID for an id that is not a canonical UUID, and
// ErrTooLarge for a network beyond lim.
func CheckEncodable(m Meta, n model.Model, lim Limits) error {
	lim, err := lim.Resolve()
	if err != nil {
		return err
	}
	return checkEncodable(m, n, lim)
}

// formatLimits are the format's caps as Limits.
var formatLimits = Limits{MaxLayers: MaxLayers, MaxParams: MaxParams, MaxMACs: MaxMACs, MaxActivations: MaxActivations}

// checkEncodable checks m and n against lim (resolved) before anything is
// written.
func checkEncodable(m Meta, n model.Model, lim Limits) error {
	if err := m.validate(lim); err != nil {
		return err
	}
	if n == nil || n == model.Model((*network.Network)(nil)) || n == model.Model((*deep.Network)(nil)) {
		return fmt.Errorf("%s: nil network", m.ID)
	}
	if !slices.Equal(m.Sizes, n.Sizes()) {
		return fmt.Errorf("%s: meta says layer sizes %v, network has %v", m.ID, m.Sizes, n.Sizes())
	}
	if !slices.Equal(m.Layers, model.Layers(n)) {
		return fmt.Errorf("%s: meta says layers %v, network has %v", m.ID, m.Layers, model.Layers(n))
	}
	return nil
}

// writeNPZ writes the archive of m and n, which checkEncodable has accepted.
func writeNPZ(w io.Writer, m Meta, n model.Model) error {
	zw := zip.NewWriter(w)
	create := func(name string) (io.Writer, error) {
		return zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: m.UpdatedAt.UTC()})
	}

	version := formatVersion
	var layers []model.LayerJSON
	if m.Layers != nil {
		version, layers = formatVersionLayers, model.ToJSON(m.Layers, nil)
	}
	meta, err := json.MarshalIndent(metaFile{
		FormatVersion:  version,
		ID:             m.ID,
		LayerSizes:     m.Sizes,
		Init:           m.Init,
		Seed:           m.Seed,
		Trained:        m.Trained,
		Accuracy:       m.Accuracy,
		EpochsTrained:  m.EpochsTrained,
		HistoryRecords: len(m.History),
		CreatedAt:      m.CreatedAt.UTC(),
		UpdatedAt:      m.UpdatedAt.UTC(),
		OwnerHash:      m.OwnerHash,
		Name:           m.Name,
		Notes:          m.Notes,
		Layers:         layers,
	}, "", "  ")
	if err != nil {
		return err
	}
	history, err := encodeHistory(m.History)
	if err != nil {
		return err
	}
	for _, e := range []struct {
		name string
		data []byte
	}{{metaEntry, append(meta, '\n')}, {historyEntry, history}} {
		ew, err := create(e.name)
		if err != nil {
			return err
		}
		if _, err := ew.Write(e.data); err != nil {
			return err
		}
	}

	buf := make([]byte, bufSize)
	if d, ok := n.(*deep.Network); ok {
		if err := writeLayers(create, d, buf); err != nil {
			return err
		}
		return zw.Close()
	}
	fc := n.(*network.Network) // checkEncodable: layers only for deep
	for l := range fc.NumLayers() {
		wl := fc.Weights(l)
		rows, cols := wl.Dims()
		ew, err := create(weightEntry(l))
		if err != nil {
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

		b := mat.Col(nil, 0, fc.Biases(l))
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

// writeLayers writes the arrays of a layers network: w<i>.npy and
// b<i>.npy for every layer i with parameters, conv weights shaped
// [filters, channels, k, k], dense and softmax ones [out, in].
func writeLayers(create func(string) (io.Writer, error), n *deep.Network, buf []byte) error {
	ws, bs, shapes := n.Params()
	p := 0
	for i, l := range n.Layers() {
		if l.Kind == deep.Pool {
			continue
		}
		for _, a := range []struct {
			name  string
			shape []int
			data  []float64
		}{{weightEntry(i), shapes[p], ws[p]}, {biasEntry(i), []int{len(bs[p])}, bs[p]}} {
			ew, err := create(a.name)
			if err != nil {
				return err
			}
			if _, err := ew.Write(npyHeader(a.shape)); err != nil {
				return err
			}
			if err := writeFloats(ew, a.data, buf); err != nil {
				return fmt.Errorf("%s: %w", a.name, err)
			}
		}
		p++
	}
	return nil
}

// maxFileSize bounds an archive holding a network within lim: the
// parameters, plus room for every entry's NPY and zip headers, meta.json,
// and history.json of MaxHistory records.
func maxFileSize(lim Limits) int64 {
	return 8*int64(lim.MaxParams) + 4<<20 + int64(maxHistoryJSON(MaxHistory))
}

// Decode reads a network and its description from the size bytes of r, an
// archive Encode wrote (or NumPy, following the same layout). Every byte is
// treated as hostile: the layer sizes meta.json declares are checked against
// lim (a zero field means the default) before any array is read, no entry is
// read past the size the zip directory records for it, and every entry's
// CRC-32 is checked. An error wrapping ErrTooLarge means the network or file
// is beyond lim; any other error, that the bytes are not a valid network.
func Decode(r io.ReaderAt, size int64, lim Limits) (Meta, model.Model, error) {
	m, n, err := decode(r, size, lim, "")
	if err != nil {
		return Meta{}, nil, fmt.Errorf("modelfile: decode: %w", err)
	}
	return m, n, nil
}

// DecodeAs is Decode for the file a store keeps under id: meta.json must
// name that id, which is checked before any array is read. id must be a
// canonical UUID (see CheckID).
func DecodeAs(r io.ReaderAt, size int64, lim Limits, id string) (Meta, model.Model, error) {
	if err := CheckID(id); err != nil {
		return Meta{}, nil, fmt.Errorf("modelfile: decode: %w", err)
	}
	m, n, err := decode(r, size, lim, id)
	if err != nil {
		return Meta{}, nil, fmt.Errorf("modelfile: decode: %w", err)
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
		return Entry{}, fmt.Errorf("modelfile: decode: %w", err)
	}
	return e, nil
}

// DecodeEntryAs is DecodeEntry for the file a store keeps under id:
// meta.json must name that id. id must be a canonical UUID (see CheckID).
func DecodeEntryAs(r io.ReaderAt, size int64, lim Limits, id string) (Entry, error) {
	if err := CheckID(id); err != nil {
		return Entry{}, fmt.Errorf("modelfile: decode: %w", err)
	}
	e, err := decodeEntry(r, size, lim, id)
	if err != nil {
		return Entry{}, fmt.Errorf("modelfile: decode: %w", err)
	}
	return e, nil
}

// decode is Decode; if wantID is not empty, meta.json must name that id.
func decode(r io.ReaderAt, size int64, lim Limits, wantID string) (Meta, model.Model, error) {
	d, err := newDecoder(r, size, lim)
	if err != nil {
		return Meta{}, nil, err
	}
	m, err := d.meta(wantID, true)
	if err != nil {
		return Meta{}, nil, err
	}
	n, err := d.network(m)
	if err != nil {
		return Meta{}, nil, err
	}
	return m, n, nil
}

// network reads the parameters of the network m describes.
func (d *decoder) network(m Meta) (model.Model, error) {
	if m.Layers != nil {
		ws, bs, err := d.deepLayers(m, true)
		if err != nil {
			return nil, err
		}
		return deep.FromParams(m.Layers, ws, bs)
	}
	ws, bs, err := d.layers(m, true)
	if err != nil {
		return nil, err
	}
	return network.FromParams(m.Sizes, ws, bs)
}

// decodeEntry is DecodeEntry; if wantID is not empty, meta.json must name
// that id.
func decodeEntry(r io.ReaderAt, size int64, lim Limits, wantID string) (Entry, error) {
	d, err := newDecoder(r, size, lim)
	if err != nil {
		return Entry{}, err
	}
	m, err := d.meta(wantID, false)
	if err != nil {
		return Entry{}, err
	}
	if m.Layers != nil {
		_, _, err = d.deepLayers(m, false)
	} else {
		_, _, err = d.layers(m, false)
	}
	if err != nil {
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
	lim, err := lim.Resolve()
	if err != nil {
		return nil, err
	}
	a, err := openArchive(r, size, maxFileSize(lim))
	if err != nil {
		return nil, err
	}
	return &decoder{a: a, lim: lim}, nil
}

// meta reads and checks meta.json and, with load set, history.json. If
// wantID is not empty (the id a file name carries), meta.json must agree
// with it. Without load, history.json is only checked to be there and of a
// size its declared records allow, and the Meta's History is nil.
func (d *decoder) meta(wantID string, load bool) (Meta, error) {
	m, version, records, err := d.metaJSON(wantID)
	if err != nil {
		return Meta{}, err
	}
	if version == 1 {
		return m, nil
	}
	er, err := d.a.open(historyEntry, maxHistoryJSON(records))
	if err != nil {
		return Meta{}, err
	}
	defer er.Close()
	if !load {
		return m, nil
	}
	h, err := decodeHistory(er, records)
	if err == nil {
		err = er.verify()
	}
	if err == nil {
		err = validateHistory(h, m.EpochsTrained)
	}
	if err != nil {
		return Meta{}, fmt.Errorf("%s: %w", historyEntry, err)
	}
	m.History = h
	return m, nil
}

// metaJSON reads and checks meta.json, and returns the format version and
// the number of records meta.json says history.json holds.
func (d *decoder) metaJSON(wantID string) (m Meta, version, records int, err error) {
	er, err := d.a.open(metaEntry, maxMetaSize)
	if err != nil {
		return Meta{}, 0, 0, err
	}
	defer er.Close()
	raw, err := io.ReadAll(er)
	if err == nil {
		err = er.verify()
	}
	if err != nil {
		return Meta{}, 0, 0, fmt.Errorf("reading %s: %w", metaEntry, err)
	}
	m, version, records, err = d.parseMeta(raw, wantID)
	if err != nil {
		return Meta{}, 0, 0, fmt.Errorf("%s: %w", metaEntry, err)
	}
	return m, version, records, nil
}

func (d *decoder) parseMeta(raw []byte, wantID string) (m Meta, version, records int, err error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return Meta{}, 0, 0, err
	}
	if err := json.Unmarshal(keys["format_version"], &version); err != nil || metaKeys[version] == nil {
		return Meta{}, 0, 0, fmt.Errorf("format_version %.20s, want 1, %d or %d", keys["format_version"], formatVersion, formatVersionLayers)
	}
	for _, k := range metaKeys[version] {
		if _, ok := keys[k]; !ok {
			return Meta{}, 0, 0, fmt.Errorf("key %q is missing", k)
		}
	}
	var mf metaFile
	if err := json.Unmarshal(raw, &mf); err != nil {
		return Meta{}, 0, 0, err
	}
	if version == 1 {
		// Keys of later versions mean nothing in a version 1 file.
		mf.Init, mf.Seed, mf.HistoryRecords = InitNormal, nil, 0
	}
	var layers []deep.Layer
	if version == formatVersionLayers {
		if len(mf.Layers) == 0 {
			return Meta{}, 0, 0, errors.New("layers is empty")
		}
		if len(mf.Layers) > d.lim.MaxLayers {
			return Meta{}, 0, 0, fmt.Errorf("%w: %d layers, more than the limit of %d (MaxLayers)", ErrTooLarge, len(mf.Layers), d.lim.MaxLayers)
		}
		layers = model.FromJSON(mf.Layers)
	}
	if wantID != "" && mf.ID != wantID {
		return Meta{}, 0, 0, fmt.Errorf("id %.40q does not match the file name", mf.ID)
	}
	if d.ignoreID {
		// An import is a new network, with an owner of its own.
		mf.ID, mf.OwnerHash = "", ""
	}
	if mf.HistoryRecords < 0 || mf.HistoryRecords > MaxHistory {
		return Meta{}, 0, 0, fmt.Errorf("%w: history_records %d, want 0 to %d (MaxHistory)", ErrTooLarge, mf.HistoryRecords, MaxHistory)
	}
	m = Meta{
		ID:            mf.ID,
		Sizes:         mf.LayerSizes,
		Layers:        layers,
		Init:          mf.Init,
		Seed:          mf.Seed,
		Trained:       mf.Trained,
		Accuracy:      mf.Accuracy,
		EpochsTrained: mf.EpochsTrained,
		CreatedAt:     mf.CreatedAt,
		UpdatedAt:     mf.UpdatedAt,
		OwnerHash:     mf.OwnerHash,
		Name:          mf.Name,
		Notes:         mf.Notes,
	}
	validate := m.validate
	if d.ignoreID {
		validate = m.validateContent
	}
	if err := validate(d.lim); err != nil {
		return Meta{}, 0, 0, err
	}
	return m, version, mf.HistoryRecords, nil
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

// deepLayers checks every w<i>.npy and b<i>.npy of a layers network
// against m.Layers (planned within the limits by validate before this) and,
// with load set, returns their contents, one weight and bias array per
// layer with parameters, as deep.FromParams takes them.
func (d *decoder) deepLayers(m Meta, load bool) (ws, bs [][]float64, err error) {
	var buf []byte
	if load {
		buf = make([]byte, bufSize)
	}
	shapes, err := deep.Plan(m.Layers, deep.Limits{})
	if err != nil {
		return nil, nil, err
	}
	in := deep.Shape{Channels: 1, Height: 28, Width: 28}
	for i, l := range m.Layers {
		var wshape []int
		switch l.Kind {
		case deep.Conv:
			wshape = []int{l.Filters, in.Channels, l.Size, l.Size}
		case deep.Dense, deep.Softmax:
			wshape = []int{l.Size, in.Len()}
		}
		in = shapes[i]
		if wshape == nil {
			continue
		}
		w, err := d.array(weightEntry(i), wshape, load, buf)
		if err != nil {
			return nil, nil, err
		}
		b, err := d.array(biasEntry(i), wshape[:1], load, buf)
		if err != nil {
			return nil, nil, err
		}
		if load {
			ws, bs = append(ws, w), append(bs, b)
		}
	}
	return ws, bs, nil
}
