package api

import (
	"bytes"
	"container/list"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"
	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/render"
	"github.com/mnist-go/nnserver/pkg/service"
)

// Some answers are the same for every request about one version of a
// network, and can be large: an example's output_weights is the output
// layer's whole weight matrix (up to 10 × MaxOutputFanIn numbers, about 24
// bytes each in JSON: 4.8 MB with the default limits), an evaluation holds
// twelve images. They are encoded once per version and kept in a
// versionCache; every response writes those shared bytes instead of
// encoding its own copy, and clients that read slowly hold references to
// them, not copies.

// versionCacheBytes bounds the encoded answers kept.
const versionCacheBytes = 64 << 20

type versionKey struct {
	kind      string
	networkID string
	version   uint64
	page      [2]int // for paginated answers: from, limit
}

// versionCache is an LRU of encoded answers, bounded in bytes, with one
// encoding per key at a time. Every answer's bytes are reserved from the
// memory budget while it is encoded (its estimate) and for as long as it is
// kept or being written to a client (its size): an answer evicted while a
// slow client reads it is still counted until that client is done.
type versionCache struct {
	budget  *budget.Budget
	cpu     *budget.CPU // encodings take a slot
	mu      sync.Mutex
	entries map[versionKey]*list.Element // of *versionEntry
	order   list.List                    // most recently used first
	bytes   int
}

type versionEntry struct {
	key   versionKey
	once  sync.Once
	data  []byte
	err   error        // the encoding could not be reserved
	hold  *budget.Hold // the entry's bytes
	refs  int          // requests writing it; guarded by versionCache.mu
	gone  bool         // evicted; guarded by versionCache.mu
	bytes int          // counted in versionCache.bytes
}

func newVersionCache(b *budget.Budget, cpu *budget.CPU) *versionCache {
	c := &versionCache{budget: b, cpu: cpu, entries: map[versionKey]*list.Element{}}
	b.AddReclaimer(c.reclaim)
	return c
}

// get returns the answer of this kind for this key, calling encode only if
// it has not been encoded since it was last evicted, with estimate bytes
// (an upper bound of what encode allocates) reserved from the budget
// meanwhile. The caller must call done once it has written the answer. err
// is the budget's refusal.
func (c *versionCache) get(ctx context.Context, key versionKey, estimate int64, encode func() []byte) (data []byte, done func(), err error) {
	c.mu.Lock()
	el, ok := c.entries[key]
	if ok {
		c.order.MoveToFront(el)
	} else {
		el = c.order.PushFront(&versionEntry{key: key})
		c.entries[key] = el
	}
	e := el.Value.(*versionEntry)
	e.refs++
	c.mu.Unlock()

	e.once.Do(func() {
		hold, err := c.budget.Reserve(ctx, estimate)
		if err != nil {
			e.err = err
			return
		}
		release, err := c.cpu.Take(ctx)
		if err != nil {
			hold.Release()
			e.err = err
			return
		}
		e.data = encode()
		release()
		hold.Shrink(int64(len(e.data)))
		e.hold = hold
		c.mu.Lock()
		defer c.mu.Unlock()
		if e.gone {
			return // evicted while encoding: not counted
		}
		e.bytes = len(e.data)
		c.bytes += e.bytes
		for c.bytes > versionCacheBytes && c.order.Len() > 1 {
			c.evictLocked(c.order.Back())
		}
	})
	if e.err != nil {
		c.mu.Lock()
		c.releaseLocked(e)
		if !e.gone { // let the next request try again
			c.evictLocked(el)
		}
		c.mu.Unlock()
		return nil, nil, e.err
	}
	return e.data, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.releaseLocked(e)
	}, nil
}

// evictLocked drops an entry; its bytes are given back to the budget when
// the last request writing it is done.
func (c *versionCache) evictLocked(el *list.Element) {
	e := el.Value.(*versionEntry)
	c.order.Remove(el)
	delete(c.entries, e.key)
	c.bytes -= e.bytes
	e.bytes = 0
	e.gone = true
	if e.refs == 0 {
		e.hold.Release()
	}
}

func (c *versionCache) releaseLocked(e *versionEntry) {
	e.refs--
	if e.refs == 0 && e.gone {
		e.hold.Release()
	}
}

// reclaim evicts answers no request is writing, least recently used first,
// until about need bytes are given back to the budget: kept answers are a
// convenience, and give way to requests that need the memory. The budget
// calls it when a reservation does not fit.
func (c *versionCache) reclaim(need int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	freed := int64(0)
	for el := c.order.Back(); el != nil && freed < need; {
		prev := el.Prev()
		if e := el.Value.(*versionEntry); e.refs == 0 && e.bytes > 0 {
			freed += int64(e.bytes)
			c.evictLocked(el)
		}
		el = prev
	}
}

// jsonNumberBytes bounds one float64 in JSON ("-1.2345678901234567e-308"
// and a comma).
const jsonNumberBytes = 26

// encodeBytes bounds what encoding an answer of n bytes allocates:
// json.Marshal grows its buffer by doubling and copies the result out.
func encodeBytes(n int64) int64 { return 3*n + 4<<10 }

// encodeRows writes a matrix as a JSON array of rows.
func encodeRows(w *mat.Dense) []byte {
	rows, _ := w.Dims()
	views := make([][]float64, rows)
	for r := range rows {
		views[r] = w.RawRowView(r)
	}
	b, err := json.Marshal(views)
	if err != nil { // only for NaN or ±Inf, which no network here holds
		return []byte("null")
	}
	return b
}

func (h *handlers) example(correct bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := pathID(c, service.MsgNetworkNotFound)
		if !ok {
			return
		}
		ex, err := h.svc.Example(c.Request.Context(), id, correct)
		if err != nil {
			h.fail(c, err)
			return
		}
		png, err := render.DigitPNG(ex.Pixels, ex.PredictedDigit, ex.ActualDigit)
		if err != nil {
			h.fail(c, &service.Error{Code: service.Internal, Message: "could not render the image", Err: err})
			return
		}
		head, err := json.Marshal(exampleHead{
			NetworkID: ex.NetworkID, ExampleIndex: ex.Index, PredictedDigit: ex.PredictedDigit,
			ActualDigit: ex.ActualDigit, ImageData: base64.StdEncoding.EncodeToString(png), NetworkOutput: ex.NetworkOutput,
		})
		if err != nil {
			h.fail(c, &service.Error{Code: service.Internal, Message: "could not encode the example", Err: err})
			return
		}
		rows, cols := ex.OutputWeights.Dims()
		wkey := versionKey{kind: "output_weights", networkID: ex.NetworkID, version: ex.Version}
		weights, done, err := h.cache.get(c.Request.Context(), wkey, encodeBytes(int64(rows*(cols+1))*jsonNumberBytes),
			func() []byte { return encodeRows(ex.OutputWeights) })
		if err != nil {
			writeBusy(c, err)
			return
		}
		defer done()
		head = bytes.TrimSuffix(head, []byte("}"))
		const key = `,"output_weights":`
		c.Header("Content-Type", "application/json; charset=utf-8")
		c.Header("Content-Length", strconv.Itoa(len(head)+len(key)+len(weights)+1))
		c.Status(http.StatusOK)
		for _, part := range [][]byte{head, []byte(key), weights, []byte("}")} {
			if _, err := c.Writer.Write(part); err != nil {
				return // the client left; nothing to tell it
			}
		}
	}
}
