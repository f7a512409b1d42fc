package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mnist-go/nnserver/pkg/budget"
)

// What a request body costs the memory budget (pkg/budget), per byte read,
// reserved as the bytes arrive: a client sending slowly holds only what it
// has sent, and a body is refused (503) the moment the budget cannot take
// the next part of it.
const (
	// jsonReadFactor bounds the heap a JSON body's decoding allocates per
	// byte of body: json.Decoder keeps the token being read in a buffer
	// that grows by doubling (at most about 4× the largest token, counting
	// the buffers it outgrew), and a string token is copied out once more.
	// TestBodyReservationsAreUpperBounds measures the worst bodies.
	jsonReadFactor = 6
	// rawReadFactor: a raw body (an image, a model file) is read into
	// chunks of bodyChunk bytes, then, for an image, joined once.
	rawReadFactor = 2
	// bodyChunk is how much of a body is reserved and read at a time.
	bodyChunk = 64 << 10
	// bodyBase is reserved for every body before its first byte: the
	// decoder's and reader's fixed buffers.
	bodyBase = 16 << 10
)

// BusyWait is how long a request waits for room in the memory budget (the
// server gives it to budget.New) or for a CPU slot before it is answered
// 503.
const BusyWait = 2 * time.Second

// largeBody is where a JSON body's decoding becomes heavy work: past it, the
// body's reader takes a CPU slot.
const largeBody = 64 << 10

// busyRetryAfter is the Retry-After of a 503 for a busy budget.
const busyRetryAfter = 2

// isBusy reports whether err is the budget refusing a reservation.
func isBusy(err error) bool {
	return errors.Is(err, budget.ErrBusy) || errors.Is(err, budget.ErrTooLarge)
}

// writeBusy answers a reservation the budget refused: 503 with Retry-After
// while it is held by other work, 413 when the request alone needs more
// than the whole budget.
func writeBusy(c *gin.Context, err error) {
	if errors.Is(err, budget.ErrTooLarge) {
		writeError(c, http.StatusRequestEntityTooLarge, "this request needs more memory than the server's whole budget (MEMORY_BUDGET_MB)")
		return
	}
	c.Header("Retry-After", strconv.Itoa(busyRetryAfter))
	writeError(c, http.StatusServiceUnavailable, "the server is busy: its memory is held by other requests; try again shortly")
}

// meter puts the request body behind a reader that reserves factor bytes
// of the budget for every byte before it is read (and bodyBase at once).
// The reservation lasts until release, which the handler defers: what the
// body was decoded into is held until the answer is written.
//
// A JSON body (heavy) takes a CPU slot once it is larger than largeBody,
// until it has been read.
func (h *handlers) meter(c *gin.Context, factor int64, heavy bool) (release func(), ok bool) {
	hold, err := h.budget.Reserve(c.Request.Context(), bodyBase)
	if err != nil {
		writeBusy(c, err)
		return nil, false
	}
	br := &budgetReader{r: c.Request.Body, ctx: c.Request.Context(), hold: hold, factor: factor}
	if heavy {
		br.cpu = h.cpu
	}
	c.Request.Body = br
	return func() {
		br.releaseCPU()
		hold.Release()
	}, true
}

// budgetReader reserves factor bytes per byte read, bodyChunk bytes ahead.
type budgetReader struct {
	r      io.ReadCloser
	ctx    context.Context
	hold   *budget.Hold
	factor int64
	read   int64
	cpu    *budget.CPU // nil: the body is not heavy work
	slot   func()      // the CPU slot's release, once taken
}

func (b *budgetReader) releaseCPU() {
	if b.slot != nil {
		b.slot()
	}
}

func (b *budgetReader) Read(p []byte) (n int, err error) {
	if len(p) > bodyChunk {
		p = p[:bodyChunk]
	}
	if b.cpu != nil && b.slot == nil && b.read+int64(len(p)) > largeBody {
		if b.slot, err = b.cpu.Take(b.ctx); err != nil {
			return 0, fmt.Errorf("read the request body: %w", err)
		}
	}
	defer func() {
		if err != nil { // the end of the body, or an error: the decoding is done
			b.releaseCPU()
		}
	}()
	if need := bodyBase + b.factor*(b.read+int64(len(p))); need > b.hold.Size() {
		if err := b.hold.Grow(b.ctx, max(need-b.hold.Size(), b.factor*bodyChunk)); err != nil {
			return 0, fmt.Errorf("read the request body: %w", err)
		}
	}
	n, err = b.r.Read(p)
	b.read += int64(n)
	return n, err
}

func (b *budgetReader) Close() error { return b.r.Close() }

// chunks is a body read in pieces of bodyChunk bytes: no piece is ever
// copied to grow a buffer. It reads as an io.ReaderAt.
type chunks struct {
	parts [][]byte
	size  int64
}

// readChunks reads r to its end into chunks, at most max bytes (more is
// errTooLong).
func readChunks(r io.Reader, max int64) (*chunks, error) {
	c := &chunks{}
	for {
		buf := make([]byte, bodyChunk)
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			c.parts = append(c.parts, buf[:n])
			c.size += int64(n)
			if c.size > max {
				return nil, errTooLong
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return c, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

var errTooLong = errors.New("the body is longer than allowed")

// ReadAt implements io.ReaderAt.
func (c *chunks) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("chunks: negative offset")
	}
	n := 0
	for n < len(p) {
		if off >= c.size {
			return n, io.EOF
		}
		part := c.parts[off/bodyChunk]
		k := copy(p[n:], part[off%bodyChunk:])
		n += k
		off += int64(k)
	}
	return n, nil
}

// bytes joins the chunks into one slice.
func (c *chunks) bytes() []byte {
	if len(c.parts) == 1 {
		return c.parts[0]
	}
	out := make([]byte, 0, c.size)
	for _, p := range c.parts {
		out = append(out, p...)
	}
	return out
}
