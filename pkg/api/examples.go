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

// An example's output_weights is the output layer's whole weight matrix:
// up to 10 × MaxOutputFanIn numbers (about 24 bytes each in JSON, 4.8 MB
// with the default limits). It is the same for every example of one network
// version, so it is encoded once per version and kept in weightsCache;
// every response writes those shared bytes instead of encoding its own copy,
// and clients that read slowly hold references to them, not copies.

// weightsCacheBytes bounds the encoded matrices kept.
const weightsCacheBytes = 64 << 20

type weightsKey struct {
	networkID string
	version   uint64
}

// weightsCache is an LRU of encoded output_weights, bounded in bytes, with
// one encoding per key at a time.
type weightsCache struct {
	mu      sync.Mutex
	entries map[weightsKey]*list.Element // of *weightsEntry
	order   list.List                    // most recently used first
	bytes   int
}

type weightsEntry struct {
	key  weightsKey
	once sync.Once
	json []byte
}

func newWeightsCache() *weightsCache {
	return &weightsCache{entries: map[weightsKey]*list.Element{}}
}

// get returns w encoded as a JSON array of rows, encoding it only if this
// version of this network has not been encoded since it was last evicted.
func (c *weightsCache) get(networkID string, version uint64, w *mat.Dense) []byte {
	key := weightsKey{networkID, version}
	c.mu.Lock()
	el, ok := c.entries[key]
	if ok {
		c.order.MoveToFront(el)
	} else {
		el = c.order.PushFront(&weightsEntry{key: key})
		c.entries[key] = el
	}
	e := el.Value.(*weightsEntry)
	c.mu.Unlock()

	e.once.Do(func() {
		e.json = encodeRows(w)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.bytes += len(e.json)
		for c.bytes > weightsCacheBytes && c.order.Len() > 1 {
			old := c.order.Back()
			oe := old.Value.(*weightsEntry)
			c.order.Remove(old)
			delete(c.entries, oe.key)
			c.bytes -= len(oe.json) // 0 if still encoding: it counts itself when done, then may be evicted
		}
	})
	return e.json
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
		weights := h.weights.get(ex.NetworkID, ex.Version, ex.OutputWeights)
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
