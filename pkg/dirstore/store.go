// Package dirstore keeps networks as files in one directory, so that they
// survive a restart, and loads them back: the directory adapter of the
// service's Store. The bytes of each file are the model file format's
// (package modelfile), which also reads them back; this package keeps them.
//
// Each network is one file, <id>.npz, and its snapshots are files of the
// directory snapshots/<id>/, named <epoch>.npz: hard links to the model
// file as it was saved after that epoch (a copy where the file system has
// no hard links). Files are written atomically, so a
// crash or a full disk never leaves a half-written network behind, and
// every file read is treated as hostile: all access goes through an
// os.Root, nothing but regular files is opened, and modelfile checks what
// they hold against the operator's limits before anything is allocated.
package dirstore

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/model"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

// DefaultDir is the directory networks are kept in unless configured
// otherwise ($MODELS_DIR).
const DefaultDir = "models"

// Store keeps networks in one directory. All access goes through an os.Root,
// so no file outside that directory can be read or written, whatever a name
// or a symbolic link in it says.
//
// A Store is safe for concurrent use. It needs no lock: each Save writes a
// file of its own and renames it into place, and a rename is atomic, so a
// concurrent Load or List sees the old file or the new one, never a mix. Of
// two concurrent Saves of one id, the later rename wins.
//
// Only one Store should use a directory at a time: the function Open removes
// temporary files it takes for leftovers of a crash.
type Store struct {
	dir  string
	root *os.Root
	lim  modelfile.Limits // resolved
	// flush flushes an open directory to disk: (*os.File).Sync, unless a
	// test of this package makes it fail.
	flush func(*os.File) error
}

const (
	fileExt = ".npz"
	// tempPrefix starts the names of files being written. The leading dot
	// hides them from ls, and their names never match <uuid>.npz, so List
	// ignores them.
	tempPrefix = ".nnstore-tmp-"
	// bufSize is the buffer a Save writes through.
	bufSize = 64 << 10
)

// Open returns a Store keeping networks in dir, creating dir (mode 0755) if
// it does not exist, and removes temporary files left behind by a Save that
// was interrupted by a crash. The Store saves and reads only networks within
// lim (see modelfile.Limits: a zero field means the default).
func Open(dir string, lim modelfile.Limits) (*Store, error) {
	lim, err := lim.Resolve()
	if err != nil {
		return nil, fmt.Errorf("dirstore: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dirstore: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("dirstore: %w", err)
	}
	s := &Store{dir: filepath.Clean(dir), root: root, lim: lim, flush: (*os.File).Sync}
	if err := s.removeTemps(); err != nil {
		root.Close()
		return nil, fmt.Errorf("dirstore: removing leftover temporary files in %s: %w", dir, err)
	}
	return s, nil
}

// removeTemps removes the temporary files of interrupted saves and
// snapshots, and the snapshots of networks whose model is gone (a crash
// while one was deleted).
func (s *Store) removeTemps() error {
	if err := s.removeTempsIn("."); err != nil {
		return err
	}
	des, err := s.readDirOf(snapshotDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, de := range des {
		id := de.Name()
		if !de.IsDir() || modelfile.CheckID(id) != nil {
			continue
		}
		if _, err := s.root.Lstat(fileName(id)); errors.Is(err, fs.ErrNotExist) {
			if err := s.root.RemoveAll(snapshotsOf(id)); err != nil {
				return err
			}
			continue
		}
		if err := s.removeTempsIn(snapshotsOf(id)); err != nil {
			return err
		}
	}
	return nil
}

// removeTempsIn removes the temporary files in dir.
func (s *Store) removeTempsIn(dir string) error {
	des, err := s.readDirOf(dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), tempPrefix) && de.Type().IsRegular() {
			if err := s.root.Remove(path.Join(dir, de.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// Limits returns the limits the Store holds networks to, defaults filled in.
func (s *Store) Limits() modelfile.Limits { return s.lim }

// Dir returns the directory the Store keeps networks in.
func (s *Store) Dir() string { return s.dir }

// Close releases the directory. The Store must not be used afterwards.
func (s *Store) Close() error { return s.root.Close() }

// Save writes n with its description m to <m.ID>.npz, replacing any network
// saved under that id. m.ID must be a canonical UUID (else the error wraps
// modelfile.ErrInvalidID), m.Sizes must equal n.Sizes() and be within the
// Store's limits (else the error wraps modelfile.ErrTooLarge). Nothing is
// written before these checks pass.
//
// Save is atomic: it writes a temporary file in the same directory, flushes
// it to disk, renames it over the old file and flushes the directory. If
// writing fails (a read-only directory, a full disk), the previous file is
// left as it was. Only an error from the final flush of the directory comes
// after the new file is in place; it may then not survive a power failure.
//
// Save checks ctx before it starts, not while it writes: a started Save
// runs to the end, so that a cancelled caller never leaves half its work.
func (s *Store) Save(ctx context.Context, m modelfile.Meta, n model.Model) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dirstore: save %.40q: %w", m.ID, err)
	}
	if err := modelfile.CheckEncodable(m, n, s.lim); err != nil {
		return fmt.Errorf("dirstore: save: %w", err)
	}

	tmp := tempPrefix + m.ID + "-" + rand.Text()
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("dirstore: save %s: %w", m.ID, err)
	}
	err = s.writeFile(f, m, n)
	if err == nil {
		err = s.root.Rename(tmp, fileName(m.ID))
	}
	if err != nil {
		// Best effort: if this fails too, the next Open removes it.
		s.root.Remove(tmp)
		return fmt.Errorf("dirstore: save %s: %w", m.ID, err)
	}
	if err := s.syncDir(); err != nil {
		return fmt.Errorf("dirstore: save %s: %w", m.ID, err)
	}
	return nil
}

// writeFile writes m and n to f as an .npz archive, flushes it to stable
// storage and closes f.
func (s *Store) writeFile(f *os.File, m modelfile.Meta, n model.Model) error {
	bw := bufio.NewWriterSize(f, bufSize)
	err := modelfile.EncodeWithin(bw, m, n, s.lim)
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

// Load reads the network saved under id. It returns an error wrapping
// modelfile.ErrInvalidID if id is not a canonical UUID, one wrapping
// service.ErrModelNotFound if no such network is saved, one wrapping
// modelfile.ErrTooLarge if the file is beyond the Store's limits, and an
// error describing the problem if the file is corrupt. See modelfile.Decode
// for what is checked.
func (s *Store) Load(ctx context.Context, id string) (modelfile.Meta, model.Model, error) {
	if err := s.begin(ctx, id); err != nil {
		return modelfile.Meta{}, nil, fmt.Errorf("dirstore: load: %w", err)
	}
	f, size, err := s.openRegular(fileName(id))
	if errors.Is(err, fs.ErrNotExist) {
		return modelfile.Meta{}, nil, fmt.Errorf("dirstore: load %s: %w", id, service.ErrModelNotFound)
	}
	if err != nil {
		return modelfile.Meta{}, nil, fmt.Errorf("dirstore: load %s: %w", fileName(id), err)
	}
	defer f.Close()
	m, n, err := modelfile.DecodeAs(f, size, s.lim, id)
	if err != nil {
		return modelfile.Meta{}, nil, fmt.Errorf("dirstore: load %s: %w", fileName(id), err)
	}
	return m, n, nil
}

// Open returns the bytes saved under id, exactly as Save wrote them (an
// .npz archive), and their length, for a download. The file is checked as
// List checks it (meta.json and every header, not the parameters) before it
// is handed out. The reader also implements io.ReaderAt and io.Seeker, and
// reads the file as it was when opened, even if a Save replaces it
// meanwhile. The caller must close it.
//
// Errors are as Load's.
func (s *Store) Open(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	if err := s.begin(ctx, id); err != nil {
		return nil, 0, fmt.Errorf("dirstore: open: %w", err)
	}
	f, size, err := s.openRegular(fileName(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("dirstore: open %s: %w", id, service.ErrModelNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("dirstore: open %s: %w", fileName(id), err)
	}
	if _, err := modelfile.DecodeEntryAs(f, size, s.lim, id); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("dirstore: open %s: %w", fileName(id), err)
	}
	return &fileReader{SectionReader: io.NewSectionReader(f, 0, size), f: f}, size, nil
}

// fileReader reads an opened file from its start, to its size when opened.
type fileReader struct {
	*io.SectionReader
	f *os.File
}

func (r *fileReader) Close() error { return r.f.Close() }

// begin checks what every call checks first: ctx, then id.
func (s *Store) begin(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%.40q: %w", id, err)
	}
	return modelfile.CheckID(id)
}

// openRegular opens name for reading without ever blocking (see openFlags)
// and returns it with its size if it is a regular file. The check is made
// on the opened descriptor, not on the name, so the file cannot be swapped
// for another between the check and the reads.
func (s *Store) openRegular(name string) (*os.File, int64, error) {
	f, err := s.root.OpenFile(name, openFlags, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = notRegular(fi.Mode())
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

func notRegular(mode fs.FileMode) error {
	what := "not a regular file"
	switch mode.Type() {
	case fs.ModeDir:
		what = "a directory"
	case fs.ModeNamedPipe:
		what = "a named pipe (FIFO)"
	case fs.ModeSocket:
		what = "a socket"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		what = "a device"
	}
	return fmt.Errorf("%s, not a regular file: not read", what)
}

// List describes every network saved in the directory, ordered by CreatedAt,
// then ID. It reads each file's meta.json and NPY headers, not its weights.
//
// Files whose names are not <canonical-uuid>.npz are ignored. A file that
// is corrupt or unreadable, or is not a regular file (a directory, a FIFO, a
// device: such files are never opened, or read), is left out and reported
// by one of the returned errors, which names it; the other files are still
// listed.
//
// If ctx is done before List has read every file, List returns no entries
// and ctx's error: a partial list would look like a list of fewer networks.
func (s *Store) List(ctx context.Context) ([]modelfile.Entry, []error) {
	if err := ctx.Err(); err != nil {
		return nil, []error{fmt.Errorf("dirstore: listing %s: %w", s.dir, err)}
	}
	des, err := s.readDir()
	if err != nil {
		return nil, []error{fmt.Errorf("dirstore: listing %s: %w", s.dir, err)}
	}
	var (
		entries []modelfile.Entry
		errs    []error
	)
	for _, de := range des {
		id, ok := strings.CutSuffix(de.Name(), fileExt)
		if !ok || modelfile.CheckID(id) != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, []error{fmt.Errorf("dirstore: listing %s: %w", s.dir, err)}
		}
		// Symbolic links are opened: Root keeps them inside the directory, and
		// openRegular checks what they lead to.
		if t := de.Type(); t != 0 && t != fs.ModeSymlink {
			errs = append(errs, fmt.Errorf("dirstore: %s: %w", de.Name(), notRegular(t)))
			continue
		}
		e, err := s.entry(id)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since we read the directory
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("dirstore: %s: %w", de.Name(), err))
			continue
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b modelfile.Entry) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return entries, errs
}

func (s *Store) entry(id string) (modelfile.Entry, error) {
	f, size, err := s.openRegular(fileName(id))
	if err != nil {
		return modelfile.Entry{}, err
	}
	defer f.Close()
	return modelfile.DecodeEntryAs(f, size, s.lim, id)
}

// Delete removes the network saved under id and says what it did (see
// service.DeleteResult): DeleteRemoved once the removal of the file is
// flushed to disk; DeleteRemovedNotFlushed if the file is gone but flushing
// the directory failed, with that error; DeleteNotFound, and no error, if
// nothing was saved under id. An invalid id gives DeleteFailed and an error
// wrapping modelfile.ErrInvalidID; so does a done ctx, with ctx's error.
func (s *Store) Delete(ctx context.Context, id string) (service.DeleteResult, error) {
	if err := s.begin(ctx, id); err != nil {
		return service.DeleteFailed, fmt.Errorf("dirstore: delete: %w", err)
	}
	// The snapshots first: a failure leaves the model, never snapshots
	// without their network.
	if err := s.root.RemoveAll(snapshotsOf(id)); err != nil {
		return service.DeleteFailed, fmt.Errorf("dirstore: delete the snapshots of %s: %w", id, err)
	}
	err := s.root.Remove(fileName(id))
	if errors.Is(err, fs.ErrNotExist) {
		return service.DeleteNotFound, nil
	}
	if err != nil {
		return service.DeleteFailed, fmt.Errorf("dirstore: delete %s: %w", id, err)
	}
	if err := s.syncDir(); err != nil {
		return service.DeleteRemovedNotFlushed, fmt.Errorf("dirstore: delete %s: removed, but not flushed to disk: %w", id, err)
	}
	return service.DeleteRemoved, nil
}

// fileName must only be called with an id that passed modelfile.CheckID.
func fileName(id string) string { return id + fileExt }

func (s *Store) readDir() ([]fs.DirEntry, error) { return s.readDirOf(".") }

func (s *Store) readDirOf(dir string) ([]fs.DirEntry, error) {
	d, err := s.root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadDir(-1)
}

// syncDir flushes the directory itself, so that a rename or removal survives
// a power failure, not only the file's contents.
func (s *Store) syncDir() error { return s.syncDirOf(".") }

// syncDirOf flushes dir, a directory under the root.
func (s *Store) syncDirOf(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	err = s.flush(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// snapshotDir holds the snapshots, a directory per network. Its name never
// matches <uuid>.npz: List does not see it.
const snapshotDir = "snapshots"

// snapshotsOf is the directory of network id's snapshots; id must have
// passed modelfile.CheckID.
func snapshotsOf(id string) string { return snapshotDir + "/" + id }

// snapshotName is the file of a snapshot; epoch must have passed
// service.CheckSnapshotEpoch.
func snapshotName(id string, epoch int) string {
	return snapshotsOf(id) + "/" + strconv.Itoa(epoch) + fileExt
}

// Snapshot keeps the file saved under id as its snapshot after epoch: a
// hard link to it, so that no byte is copied (a later Save renames a new
// file over the model and leaves the snapshot's alone), or, where the file
// system has no hard links (or the model is a symbolic link), a copy. The
// snapshot is in place atomically (a temporary name renamed) and flushed,
// with its directory, to disk. An existing snapshot of epoch is replaced.
func (s *Store) Snapshot(ctx context.Context, id string, epoch int) error {
	if err := s.begin(ctx, id); err != nil {
		return fmt.Errorf("dirstore: snapshot: %w", err)
	}
	if err := service.CheckSnapshotEpoch(epoch); err != nil {
		return fmt.Errorf("dirstore: snapshot: %w", err)
	}
	fi, err := s.root.Lstat(fileName(id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dirstore: snapshot %s: %w", id, service.ErrModelNotFound)
	}
	if err != nil {
		return fmt.Errorf("dirstore: snapshot %s: %w", id, err)
	}
	dir := snapshotsOf(id)
	_, err = s.root.Stat(dir)
	created := errors.Is(err, fs.ErrNotExist)
	if err := s.root.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dirstore: snapshot %s: %w", id, err)
	}
	tmp := dir + "/" + tempPrefix + rand.Text()
	err = errors.New("not a regular file")
	if fi.Mode().IsRegular() {
		err = s.root.Link(fileName(id), tmp)
	}
	if err != nil {
		// No hard links here (or the model is a link itself): a copy.
		err = s.copyFile(fileName(id), tmp)
	}
	if err == nil {
		err = s.root.Rename(tmp, snapshotName(id, epoch))
	}
	if err != nil {
		s.root.Remove(tmp) // best effort: the next Open removes it
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: %w", service.ErrModelNotFound, err) // deleted meanwhile
		}
		return fmt.Errorf("dirstore: snapshot %s after epoch %d: %w", id, epoch, err)
	}
	dirs := []string{dir}
	if created {
		dirs = append(dirs, snapshotDir, ".")
	}
	for _, d := range dirs {
		if err := s.syncDirOf(d); err != nil {
			return fmt.Errorf("dirstore: snapshot %s after epoch %d: %w", id, epoch, err)
		}
	}
	return nil
}

// copyFile copies the regular file src to dst, a new file, and flushes it.
func (s *Store) copyFile(src, dst string) error {
	in, _, err := s.openRegular(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := s.root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(out, in, make([]byte, bufSize))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// Snapshots returns the epochs of network id's snapshots, ascending. Files
// of its directory not named <epoch>.npz are ignored.
func (s *Store) Snapshots(ctx context.Context, id string) ([]int, error) {
	if err := s.begin(ctx, id); err != nil {
		return nil, fmt.Errorf("dirstore: snapshots: %w", err)
	}
	des, err := s.readDirOf(snapshotsOf(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dirstore: snapshots of %s: %w", id, err)
	}
	var epochs []int
	for _, de := range des {
		if e, ok := snapshotEpoch(de.Name()); ok {
			epochs = append(epochs, e)
		}
	}
	slices.Sort(epochs)
	return epochs, nil
}

// snapshotEpoch returns the epoch a snapshot's file name holds:
// <epoch>.npz, the epoch written as strconv.Itoa writes it.
func snapshotEpoch(name string) (int, bool) {
	digits, ok := strings.CutSuffix(name, fileExt)
	if !ok {
		return 0, false
	}
	e, err := strconv.Atoi(digits)
	if err != nil || strconv.Itoa(e) != digits || service.CheckSnapshotEpoch(e) != nil {
		return 0, false
	}
	return e, true
}

// openSnapshot opens a snapshot's file: an error wrapping
// service.ErrSnapshotNotFound if there is none.
func (s *Store) openSnapshot(ctx context.Context, id string, epoch int) (*os.File, int64, error) {
	if err := s.begin(ctx, id); err != nil {
		return nil, 0, err
	}
	if service.CheckSnapshotEpoch(epoch) != nil {
		return nil, 0, fmt.Errorf("%s after epoch %d: %w", id, epoch, service.ErrSnapshotNotFound)
	}
	f, size, err := s.openRegular(snapshotName(id, epoch))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%s after epoch %d: %w", id, epoch, service.ErrSnapshotNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", snapshotName(id, epoch), err)
	}
	return f, size, nil
}

// LoadSnapshot reads a snapshot as Load reads a model; the file must hold
// the network after epoch. Errors wrap service.ErrSnapshotNotFound when
// there is no such snapshot.
func (s *Store) LoadSnapshot(ctx context.Context, id string, epoch int) (modelfile.Meta, model.Model, error) {
	f, size, err := s.openSnapshot(ctx, id, epoch)
	if err != nil {
		return modelfile.Meta{}, nil, fmt.Errorf("dirstore: load snapshot: %w", err)
	}
	defer f.Close()
	m, n, err := modelfile.DecodeAs(f, size, s.lim, id)
	if err == nil && m.EpochsTrained != epoch {
		err = fmt.Errorf("the file holds the network after epoch %d", m.EpochsTrained)
	}
	if err != nil {
		return modelfile.Meta{}, nil, fmt.Errorf("dirstore: load %s: %w", snapshotName(id, epoch), err)
	}
	return m, n, nil
}

// OpenSnapshot returns a snapshot's bytes as Open returns a model's, after
// the same checks; the file must hold the network after epoch.
func (s *Store) OpenSnapshot(ctx context.Context, id string, epoch int) (io.ReadCloser, int64, error) {
	f, size, err := s.openSnapshot(ctx, id, epoch)
	if err != nil {
		return nil, 0, fmt.Errorf("dirstore: open snapshot: %w", err)
	}
	e, err := modelfile.DecodeEntryAs(f, size, s.lim, id)
	if err == nil && e.EpochsTrained != epoch {
		err = fmt.Errorf("the file holds the network after epoch %d", e.EpochsTrained)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("dirstore: open %s: %w", snapshotName(id, epoch), err)
	}
	return &fileReader{SectionReader: io.NewSectionReader(f, 0, size), f: f}, size, nil
}

// DeleteSnapshot removes a snapshot and flushes its directory; nil if
// there was none.
func (s *Store) DeleteSnapshot(ctx context.Context, id string, epoch int) error {
	if err := s.begin(ctx, id); err != nil {
		return fmt.Errorf("dirstore: delete snapshot: %w", err)
	}
	if service.CheckSnapshotEpoch(epoch) != nil {
		return nil
	}
	err := s.root.Remove(snapshotName(id, epoch))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = s.syncDirOf(snapshotsOf(id))
	}
	if err != nil {
		return fmt.Errorf("dirstore: delete %s: %w", snapshotName(id, epoch), err)
	}
	return nil
}
