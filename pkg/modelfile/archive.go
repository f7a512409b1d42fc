package modelfile

import (
	"archive/zip"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
)

// Bounds on reading a zip archive's directory. archive/zip allocates a
// File (about 200 bytes) for every central directory record it finds, and
// it reads records until one does not parse, however many the end record
// declares: a file made of nothing but 46-byte records would make it
// allocate four times the file's size before we could look at a name.
const (
	// maxDirectoryRead bounds the bytes zip.NewReader may read: the end
	// record and comment (at most 64 KiB), then the central directory. Ours
	// takes about 60 bytes an entry, so this leaves room for thousands of
	// entries while capping what NewReader allocates at a few MiB.
	maxDirectoryRead = 1<<20 + 128<<10
	// maxEntries bounds the entries an archive may have: ours has two per
	// layer plus two, and an honest archive of another writer not many more.
	maxEntries = 1024
)

// errDirectoryTooLarge is returned by budgetReaderAt when the directory
// takes more than maxDirectoryRead bytes.
var errDirectoryTooLarge = fmt.Errorf("%w: the zip directory is larger than %d bytes", ErrTooLarge, maxDirectoryRead)

// budgetReaderAt fails reads once budget bytes have been read, until
// unlimited is set. zip.NewReader's entries keep the reader it was given,
// so the budget is lifted once the directory is read.
type budgetReaderAt struct {
	r         io.ReaderAt
	budget    int64
	unlimited bool
}

func (b *budgetReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if !b.unlimited {
		if int64(len(p)) > b.budget {
			return 0, errDirectoryTooLarge
		}
		b.budget -= int64(len(p))
	}
	return b.r.ReadAt(p, off)
}

// archive is an open, not yet trusted zip archive.
type archive struct {
	size    int64
	entries map[string]*zip.File
	names   []string // in directory order
}

// openArchive reads the zip directory of the size bytes of r, refusing
// archives larger than maxSize. Only the directory is read, and no more of
// it than maxDirectoryRead bytes.
func openArchive(r io.ReaderAt, size, maxSize int64) (*archive, error) {
	if size < 0 {
		return nil, fmt.Errorf("negative size %d", size)
	}
	if size > maxSize {
		return nil, fmt.Errorf("%w: file of %d bytes is larger than any network the limits allow (%d)", ErrTooLarge, size, maxSize)
	}
	br := &budgetReaderAt{r: r, budget: maxDirectoryRead}
	zr, err := zip.NewReader(br, size)
	if errors.Is(err, errDirectoryTooLarge) {
		return nil, errDirectoryTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("not a readable zip archive: %w", err)
	}
	br.unlimited = true
	if len(zr.File) > maxEntries {
		return nil, fmt.Errorf("%w: %d entries in the archive, more than %d", ErrTooLarge, len(zr.File), maxEntries)
	}
	a := &archive{size: size, entries: make(map[string]*zip.File, len(zr.File))}
	for _, e := range zr.File {
		if _, dup := a.entries[e.Name]; dup {
			return nil, fmt.Errorf("entry %q appears twice", e.Name)
		}
		a.entries[e.Name] = e
		a.names = append(a.names, e.Name)
	}
	return a, nil
}

// open opens the named entry for reading, after checking that the sizes the
// zip directory records are consistent with the archive and that the entry
// holds at most maxSize bytes once inflated. What the caller reads is
// bounded by the recorded size, whatever the compressed data would inflate
// to, and entryReader.verify checks the size and CRC-32 at the end.
func (a *archive) open(name string, maxSize uint64) (*entryReader, error) {
	e, ok := a.entries[name]
	if !ok {
		return nil, fmt.Errorf("entry %s is missing", name)
	}
	if e.CompressedSize64 > uint64(a.size) ||
		(e.Method == zip.Store && e.CompressedSize64 != e.UncompressedSize64) {
		return nil, fmt.Errorf("entry %s: sizes in the zip directory are inconsistent", name)
	}
	if e.UncompressedSize64 > maxSize {
		return nil, fmt.Errorf("%w: entry %s holds %d bytes, more than the %d its contents may take", ErrTooLarge, name, e.UncompressedSize64, maxSize)
	}
	if e.Method != zip.Store && e.Method != zip.Deflate {
		return nil, fmt.Errorf("entry %s: compression method %d; only stored and deflated entries are read", name, e.Method)
	}
	// OpenRaw, not Open: we inflate and check sizes and CRC ourselves, so
	// that every check is made the same way, and made always.
	raw, err := e.OpenRaw()
	if err != nil {
		return nil, fmt.Errorf("entry %s: %w", name, err)
	}
	er := &entryReader{name: name, r: raw, size: e.UncompressedSize64, left: e.UncompressedSize64, want: e.CRC32}
	if e.Method == zip.Deflate {
		er.fr = newInflater(raw)
		er.r = er.fr
	}
	return er, nil
}

// inflaters holds flate readers for reuse: each holds a 32 KiB window and
// tables, and a store's List opens a few entries per file.
var inflaters sync.Pool

func newInflater(r io.Reader) io.ReadCloser {
	if fr, ok := inflaters.Get().(io.ReadCloser); ok {
		// A Resetter never fails with a nil dictionary.
		_ = fr.(flate.Resetter).Reset(r, nil)
		return fr
	}
	return flate.NewReader(r)
}

// entryReader reads one entry, never more than the size the zip directory
// records for it, and checks the CRC-32 of what it read. archive/zip checks
// the CRC only where one is recorded as non-zero; we check it always, as
// Python's zipfile (so NumPy) does.
type entryReader struct {
	name string
	r    io.Reader     // the entry's data, inflated
	fr   io.ReadCloser // the inflater, if the entry is deflated
	size uint64        // recorded uncompressed size
	left uint64
	crc  uint32
	want uint32
}

func (r *entryReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if uint64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.left -= uint64(n)
	r.crc = crc32.Update(r.crc, crc32.IEEETable, p[:n])
	if err == io.EOF && r.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// verify checks, once everything was read, that the entry's data ends where
// its recorded size says and matches its recorded CRC-32.
func (r *entryReader) verify() error {
	if r.left != 0 {
		return fmt.Errorf("entry %s: %d of its %d bytes were not read", r.name, r.left, r.size)
	}
	// One more byte: the entry must end here.
	var b [1]byte
	switch _, err := io.ReadFull(r.r, b[:]); {
	case err == nil:
		return fmt.Errorf("entry %s: data longer than the %d bytes the zip directory records", r.name, r.size)
	case err != io.EOF:
		return fmt.Errorf("entry %s: %w", r.name, err)
	}
	if r.crc != r.want {
		return fmt.Errorf("entry %s: checksum mismatch: CRC-32 %08x, the zip directory records %08x", r.name, r.crc, r.want)
	}
	return nil
}

// Close releases the inflater, if any. The entry must not be read after.
func (r *entryReader) Close() error {
	if r.fr != nil {
		err := r.fr.Close()
		inflaters.Put(r.fr)
		r.fr, r.r = nil, nil
		return err
	}
	return nil
}
