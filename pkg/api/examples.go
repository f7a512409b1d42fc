package api

import (
	"bytes"
	"container/list"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"
	"gonum.org/v1/gonum/mat"

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
}

// versionCache is an LRU of encoded answers, bounded in bytes, with one
// encoding per key at a time.
type versionCache struct {
	mu      sync.Mutex
	entries map[versionKey]*list.Element // of *versionEntry
	order   list.List                    // most recently used first
	bytes   int
}

type versionEntry struct {
	key  versionKey
	once sync.Once
	data []byte
}

func newVersionCache() *versionCache {
	return &versionCache{entries: map[versionKey]*list.Element{}}
}

// get returns the answer of this kind for this version of the network,
// calling encode only if it has not been encoded since it was last evicted.
func (c *versionCache) get(kind, networkID string, version uint64, encode func() []byte) []byte {
	key := versionKey{kind, networkID, version}
	c.mu.Lock()
	el, ok := c.entries[key]
	if ok {
		c.order.MoveToFront(el)
	} else {
		el = c.order.PushFront(&versionEntry{key: key})
		c.entries[key] = el
	}
	e := el.Value.(*versionEntry)
	c.mu.Unlock()

	e.once.Do(func() {
		e.data = encode()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.bytes += len(e.data)
		for c.bytes > versionCacheBytes && c.order.Len() > 1 {
			old := c.order.Back()
			oe := old.Value.(*versionEntry)
			c.order.Remove(old)
			delete(c.entries, oe.key)
			c.bytes -= len(oe.data) // 0 if still encoding: it counts itself when done, then may be evicted
		}
	})
	return e.data
}

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
		weights := h.cache.get("output_weights", ex.NetworkID, ex.Version, func() []byte { return encodeRows(ex.OutputWeights) })
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
