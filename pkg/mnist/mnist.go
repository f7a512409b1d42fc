// Package mnist reads the MNIST handwritten-digit data set from its IDX files
// and holds it compactly in memory.
//
// Images are kept sparse: for every image only the positions and 8-bit
// intensities of its non-zero pixels (about 19% of MNIST's pixels). The whole
// 70,000-image set takes about 27 MB this way, instead of 55 MB as dense bytes
// or 440 MB as float64. Training code reads the non-zero pixels directly, which
// is also what makes the first layer of a network cheap to compute.
package mnist

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/klauspost/compress/gzip"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/mnist-go/nnserver/data"
)

// Image geometry and class count of MNIST.
const (
	Rows    = 28
	Cols    = 28
	Pixels  = Rows * Cols
	Classes = 10
)

// The split used by the service (Nielsen's): the first 50,000 training images
// train, the last 10,000 validate, and the 10,000 test images measure accuracy.
const (
	TrainSize      = 50000
	ValidationSize = 10000
	TestSize       = 10000
)

// File names of the canonical distribution.
const (
	TrainImagesFile = "train-images-idx3-ubyte.gz"
	TrainLabelsFile = "train-labels-idx1-ubyte.gz"
	TestImagesFile  = "t10k-images-idx3-ubyte.gz"
	TestLabelsFile  = "t10k-labels-idx1-ubyte.gz"
)

const (
	imagesMagic = 0x00000803
	labelsMagic = 0x00000801
	// maxCount bounds the item count read from a header, so a corrupt header
	// cannot make us allocate gigabytes before noticing the file is short.
	maxCount = 1 << 20
)

// Set is a set of labelled 28×28 images stored as their non-zero pixels.
// A Set is immutable once built and safe for concurrent use.
type Set struct {
	labels []uint8
	off    []int32  // image i's pixels are idx[off[i]:off[i+1]], val[off[i]:off[i+1]]
	idx    []uint16 // pixel positions, row-major, 0..783
	val    []uint8  // intensities 1..255
}

// Len returns the number of images.
func (s *Set) Len() int { return len(s.labels) }

// Inputs returns the number of pixels of an image, 784.
func (s *Set) Inputs() int { return Pixels }

// Label returns the digit (0–9) shown by image i.
func (s *Set) Label(i int) int { return int(s.labels[i]) }

// Nonzero returns the positions (row-major, 0–783) and intensities (1–255) of
// image i's non-zero pixels. The slices are shared: do not modify them.
func (s *Set) Nonzero(i int) (idx []uint16, val []uint8) {
	a, b := s.off[i], s.off[i+1]
	return s.idx[a:b:b], s.val[a:b:b]
}

// Image writes image i as 784 row-major grey levels (0 = background) into dst,
// which is grown if needed, and returns it.
func (s *Set) Image(i int, dst []byte) []byte {
	if cap(dst) < Pixels {
		dst = make([]byte, Pixels)
	}
	dst = dst[:Pixels]
	clear(dst)
	idx, val := s.Nonzero(i)
	for j, p := range idx {
		dst[p] = val[j]
	}
	return dst
}

// Slice returns the images [from, to) as a Set sharing s's storage.
func (s *Set) Slice(from, to int) *Set {
	if from < 0 || to > s.Len() || from > to {
		panic(fmt.Sprintf("mnist: Slice(%d, %d) out of range [0, %d]", from, to, s.Len()))
	}
	return &Set{labels: s.labels[from:to], off: s.off[from : to+1], idx: s.idx, val: s.val}
}

// Dataset is MNIST split the way the service uses it.
type Dataset struct {
	Training   *Set // first 50,000 training images
	Validation *Set // last 10,000 training images
	Test       *Set // the 10,000 test images
}

// LoadEmbedded loads the copy of MNIST built into the binary.
func LoadEmbedded() (*Dataset, error) { return Load(data.MNIST) }

// LoadDir loads the four IDX files (gzip-compressed or not, under their
// canonical .gz names) from a directory.
func LoadDir(dir string) (*Dataset, error) {
	ds, err := Load(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("mnist dir %s: %w", dir, err)
	}
	return ds, nil
}

// Load reads the four IDX files from fsys and splits them 50,000 / 10,000 /
// 10,000. The files are read concurrently.
func Load(fsys fs.FS) (*Dataset, error) {
	var train, test *Set
	var trainErr, testErr error
	var wg sync.WaitGroup
	wg.Go(func() { train, trainErr = readSet(fsys, TrainImagesFile, TrainLabelsFile) })
	wg.Go(func() { test, testErr = readSet(fsys, TestImagesFile, TestLabelsFile) })
	wg.Wait()
	if err := errors.Join(trainErr, testErr); err != nil {
		return nil, err
	}
	if n := train.Len(); n != TrainSize+ValidationSize {
		return nil, fmt.Errorf("mnist: %s holds %d images, want %d", TrainImagesFile, n, TrainSize+ValidationSize)
	}
	if n := test.Len(); n != TestSize {
		return nil, fmt.Errorf("mnist: %s holds %d images, want %d", TestImagesFile, n, TestSize)
	}
	return &Dataset{
		Training:   train.Slice(0, TrainSize),
		Validation: train.Slice(TrainSize, TrainSize+ValidationSize),
		Test:       test,
	}, nil
}

// readSet reads an images file and its labels file concurrently.
func readSet(fsys fs.FS, imagesName, labelsName string) (*Set, error) {
	var set *Set
	var labels []uint8
	var imgErr, lblErr error
	var wg sync.WaitGroup
	wg.Go(func() { set, imgErr = readFile(fsys, imagesName, ReadImages) })
	wg.Go(func() { labels, lblErr = readFile(fsys, labelsName, ReadLabels) })
	wg.Wait()
	if err := errors.Join(imgErr, lblErr); err != nil {
		return nil, err
	}
	if set.Len() != len(labels) {
		return nil, fmt.Errorf("mnist: %s holds %d images but %s holds %d labels", imagesName, set.Len(), labelsName, len(labels))
	}
	set.labels = labels
	return set, nil
}

func readFile[T any](fsys fs.FS, name string, read func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := fsys.Open(name)
	if err != nil {
		return zero, fmt.Errorf("mnist: %w", err)
	}
	defer f.Close()
	v, err := read(f)
	if err != nil {
		return zero, fmt.Errorf("mnist: read %s: %w", name, err)
	}
	return v, nil
}

// decompressed returns a buffered reader of r's content, gunzipped if r starts
// with the gzip magic bytes.
func decompressed(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return bufio.NewReaderSize(zr, 64<<10), nil
	}
	return br, nil
}

// readHeader reads n big-endian uint32s.
func readHeader(r io.Reader, n int) ([]uint32, error) {
	buf := make([]byte, 4*n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("header: %w", truncated(err))
	}
	h := make([]uint32, n)
	for i := range h {
		h[i] = binary.BigEndian.Uint32(buf[4*i:])
	}
	return h, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("file is truncated: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// expectEOF reports an error if r holds anything more.
func expectEOF(r io.Reader) error {
	var b [1]byte
	n, err := io.ReadFull(r, b[:])
	if n > 0 {
		return errors.New("unexpected data after the last item")
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// ReadImages reads an IDX3 images file (gzip-compressed or not) of 28×28
// images. The returned Set has all labels 0 until paired with a labels file;
// use Load for the whole data set.
func ReadImages(r io.Reader) (*Set, error) {
	r, err := decompressed(r)
	if err != nil {
		return nil, err
	}
	h, err := readHeader(r, 4)
	if err != nil {
		return nil, err
	}
	if h[0] != imagesMagic {
		return nil, fmt.Errorf("bad magic number %#08x, want %#08x (IDX3 images)", h[0], imagesMagic)
	}
	count, rows, cols := h[1], h[2], h[3]
	if rows != Rows || cols != Cols {
		return nil, fmt.Errorf("images are %d×%d, want %d×%d", rows, cols, Rows, Cols)
	}
	if count > maxCount {
		return nil, fmt.Errorf("header claims %d images, more than %d", count, maxCount)
	}
	n := int(count)
	// About 19% of MNIST's pixels are non-zero; reserve a little more so the
	// slices are rarely regrown (unused capacity is never touched).
	est := n * Pixels / 4
	s := &Set{
		labels: make([]uint8, n),
		off:    make([]int32, n+1),
		idx:    make([]uint16, 0, est),
		val:    make([]uint8, 0, est),
	}
	img := make([]byte, Pixels)
	for i := range n {
		if _, err := io.ReadFull(r, img); err != nil {
			return nil, fmt.Errorf("image %d of %d: %w", i, n, truncated(err))
		}
		// Most 8-byte runs of an MNIST image are background: skip them whole.
		for w := 0; w < Pixels; w += 8 {
			if binary.LittleEndian.Uint64(img[w:]) == 0 {
				continue
			}
			for p, v := range img[w : w+8] {
				if v != 0 {
					s.idx = append(s.idx, uint16(w+p))
					s.val = append(s.val, v)
				}
			}
		}
		s.off[i+1] = int32(len(s.idx))
	}
	if err := expectEOF(r); err != nil {
		return nil, err
	}
	return s, nil
}

// ReadLabels reads an IDX1 labels file (gzip-compressed or not) of digits 0–9.
func ReadLabels(r io.Reader) ([]uint8, error) {
	r, err := decompressed(r)
	if err != nil {
		return nil, err
	}
	h, err := readHeader(r, 2)
	if err != nil {
		return nil, err
	}
	if h[0] != labelsMagic {
		return nil, fmt.Errorf("bad magic number %#08x, want %#08x (IDX1 labels)", h[0], labelsMagic)
	}
	if h[1] > maxCount {
		return nil, fmt.Errorf("header claims %d labels, more than %d", h[1], maxCount)
	}
	labels := make([]uint8, h[1])
	if _, err := io.ReadFull(r, labels); err != nil {
		return nil, fmt.Errorf("labels: %w", truncated(err))
	}
	for i, l := range labels {
		if l >= Classes {
			return nil, fmt.Errorf("label %d is %d, want 0–9", i, l)
		}
	}
	if err := expectEOF(r); err != nil {
		return nil, err
	}
	return labels, nil
}
