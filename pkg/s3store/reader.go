package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/mnist-go/nnserver/pkg/service"
)

// errChanged reports that the object was replaced or removed during a read.
var errChanged = errors.New("the object changed while it was read")

// The ranged reads' windows. The first read takes probeWindow bytes from
// the start: meta.json, history.json and the first array's header, or a
// small network whole. Reads that follow each other double the window up
// to maxWindow, so that Load streams the weights in a few large requests;
// a jump (to a header, to the zip directory) starts again at jumpWindow, so
// that List fetches little more than the headers.
const (
	probeWindow = 64 << 10
	jumpWindow  = 16 << 10
	maxWindow   = 4 << 20
)

// objectReader reads one version of an object through ranged GETs: an
// io.ReaderAt for modelfile.Decode and modelfile.DecodeEntry. Every
// response must carry the version's ETag; otherwise reads fail with
// errChanged. It keeps the last window fetched. It is not safe for
// concurrent use, which the decoders do not need.
type objectReader struct {
	ctx  context.Context
	s    *Store
	key  string
	size int64
	etag string

	off    int64  // buf holds the object's bytes from off
	buf    []byte //
	window int    // the next fetch's size
	gets   int    // requests made, for tests
}

// probe starts reading the object under key: it fetches its first window,
// which gives the object's size and ETag too, and returns a reader pinned
// to that version holding that window. An object no larger than a window
// is thus read in one request, which S3 serves from one version. Its error
// wraps service.ErrModelNotFound if there is no such object.
func (s *Store) probe(ctx context.Context, key string) (*objectReader, error) {
	r := &objectReader{ctx: ctx, s: s, key: key, window: probeWindow}
	r.gets++
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(0, probeWindow-1); err != nil {
		return nil, err
	}
	w := s.watch(ctx)
	defer w.stop()
	obj, info, hdr, err := minio.Core{Client: s.client}.GetObject(w.ctx, s.bucket, r.key, opts)
	if notFound(err) {
		return nil, service.ErrModelNotFound
	}
	if minio.ToErrorResponse(err).StatusCode == http.StatusRequestedRangeNotSatisfiable {
		// An empty object has no byte 0: it is not an archive, but List
		// reports it like any other.
		var st minio.ObjectInfo
		err := s.call(ctx, func(ctx context.Context) (err error) {
			st, err = s.client.StatObject(ctx, s.bucket, r.key, minio.StatObjectOptions{})
			return err
		})
		if notFound(err) {
			return nil, service.ErrModelNotFound
		}
		if err != nil {
			return nil, err
		}
		r.size, r.etag = st.Size, trimETag(st.ETag)
		return r, nil
	}
	if err != nil {
		return nil, w.err(err)
	}
	body := watchBody(obj, w)
	defer body.Close()
	r.size, r.etag = info.Size, trimETag(info.ETag)
	// A 206 answer's Content-Range holds the object's size; a server that
	// ignores Range sends it all, and Content-Length is the size.
	if cr := hdr.Get("Content-Range"); cr != "" {
		i := strings.LastIndexByte(cr, '/')
		size, err := strconv.ParseInt(cr[i+1:], 10, 64)
		if i < 0 || err != nil || size < 0 {
			return nil, fmt.Errorf("a response with Content-Range %q", cr)
		}
		r.size = size
	}
	r.buf = make([]byte, min(r.size, probeWindow))
	if _, err := io.ReadFull(body, r.buf); err != nil {
		return nil, fmt.Errorf("reading the first %d bytes: %w", len(r.buf), err)
	}
	return r, nil
}

func trimETag(e string) string { return strings.Trim(e, `"`) }

func (r *objectReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("s3store: read of %s at negative offset %d", r.key, off)
	}
	n := 0
	for n < len(p) && off < r.size {
		if off >= r.off && off < r.off+int64(len(r.buf)) {
			c := copy(p[n:], r.buf[off-r.off:])
			n += c
			off += int64(c)
			continue
		}
		want := min(int64(len(p)-n), r.size-off)
		if want >= maxWindow {
			// A large read goes straight into p.
			if err := r.get(p[n:n+int(want)], off); err != nil {
				return n, err
			}
			n += int(want)
			off += want
			continue
		}
		if err := r.fill(off, want); err != nil {
			return n, err
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fill fetches a window holding at least want bytes from off.
func (r *objectReader) fill(off, want int64) error {
	if len(r.buf) > 0 && off == r.off+int64(len(r.buf)) {
		r.window = min(2*r.window, maxWindow)
	} else {
		r.window = jumpWindow
	}
	start, end := off, min(r.size, off+max(want, int64(r.window)))
	if cap(r.buf) < int(end-start) {
		r.buf = make([]byte, end-start)
	}
	r.buf = r.buf[:end-start]
	if err := r.get(r.buf, start); err != nil {
		r.buf = r.buf[:0]
		return err
	}
	r.off = start
	return nil
}

// get reads len(p) bytes at off with one ranged GET of the pinned version.
func (r *objectReader) get(p []byte, off int64) error {
	r.gets++
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(off, off+int64(len(p))-1); err != nil {
		return err
	}
	body, err := r.open(opts)
	if err != nil {
		return err
	}
	defer body.Close()
	if _, err := io.ReadFull(body, p); err != nil {
		return fmt.Errorf("reading %d bytes at %d: %w", len(p), off, err)
	}
	return nil
}

// stream returns the whole of the pinned version: from memory if the probe
// fetched it all, else as one response's body.
func (r *objectReader) stream() (io.ReadCloser, error) {
	if r.off == 0 && int64(len(r.buf)) == r.size {
		return io.NopCloser(bytes.NewReader(r.buf)), nil
	}
	r.gets++
	return r.open(minio.GetObjectOptions{})
}

// open sends a GET of the pinned version, under a watch of its own: If-Match
// asks the server to refuse another version, and the response's ETag is
// checked as well, for servers that ignore If-Match. Closing the body ends
// the watch.
func (r *objectReader) open(opts minio.GetObjectOptions) (io.ReadCloser, error) {
	if err := opts.SetMatchETag(r.etag); err != nil {
		return nil, err
	}
	w := r.s.watch(r.ctx)
	core := minio.Core{Client: r.s.client}
	body, info, _, err := core.GetObject(w.ctx, r.s.bucket, r.key, opts)
	if err != nil {
		resp := minio.ToErrorResponse(err)
		changed := resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed" || notFound(err)
		err = w.err(err)
		w.stop()
		if changed {
			return nil, errChanged
		}
		return nil, err
	}
	if trimETag(info.ETag) != r.etag {
		body.Close()
		w.stop()
		return nil, errChanged
	}
	return watchBody(body, w), nil
}
