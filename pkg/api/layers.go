package api

import (
	"encoding/json"
	"fmt"
	"github.com/gin-gonic/gin"
	"net/http"

	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/service"
)

// Layer object keys of POST /api/networks's "layers".
const (
	layerType       = "type"
	layerFilters    = "filters"
	layerSize       = "size"
	layerActivation = "activation"
	layerDropout    = "dropout"
)

// readLayers reads "layers": a list of at most l.MaxLayers layer objects,
// read token by token as layer_sizes is (a longer list is counted, not
// kept), each checked for its keys and their types here and the list for
// its shapes and bounds by l.NewLayers. A value that is no list of objects
// is the field's error; a bad layer object is answered at once (400 naming
// the layer).
func readLayers(v *valueReader, l service.Limits, f *field[[]deep.Layer]) error {
	if v.dec.PeekKind() != '[' {
		f.set(nil, l.FieldError(service.FieldLayers))
		return v.skip()
	}
	if _, err := v.dec.ReadToken(); err != nil {
		return err
	}
	var list []deep.Layer
	count := 0
	for {
		switch v.dec.PeekKind() {
		case ']':
			if _, err := v.dec.ReadToken(); err != nil {
				return err
			}
			if count > l.MaxLayers {
				f.set(nil, service.Errorf(service.Invalid, "layers may list at most %d layers, got %d", l.MaxLayers, count))
				return nil
			}
			arch, err := l.NewLayers(list)
			f.set(arch.Layers, err)
			return nil
		case 0:
			_, err := v.dec.ReadToken()
			if err == nil {
				err = errSyntax
			}
			return err
		}
		i := count
		count++
		if count > l.MaxLayers {
			if err := v.skip(); err != nil {
				return err
			}
			continue
		}
		layer, err := readLayer(v, i)
		if err != nil {
			return err
		}
		list = append(list, layer)
	}
}

// readLayer reads layers[i], which must be an object of known keys with
// values of their types.
func readLayer(v *valueReader, i int) (deep.Layer, error) {
	var layer deep.Layer
	if v.dec.PeekKind() != '{' {
		if err := v.skip(); err != nil {
			return layer, err
		}
		return layer, &clientError{fmt.Sprintf("layers[%d] must be an object such as {\"type\": \"pool\", \"size\": 2}", i)}
	}
	hasType := false
	err := v.object(func(key string, v *valueReader) error {
		bad := func(want string) error {
			return &clientError{fmt.Sprintf("layers[%d].%s must be %s", i, key, want)}
		}
		t, ok, err := v.scalar()
		if err != nil {
			return err
		}
		switch key {
		case layerType:
			s, isStr := asString(t)
			if !ok || !isStr {
				return bad(`"conv", "pool", "dense" or "softmax"`)
			}
			layer.Kind, hasType = deep.Kind(s), true
		case layerFilters, layerSize:
			n, isInt := asInt(t)
			if !ok || !isInt || n < 0 {
				return bad("a positive integer")
			}
			if key == layerFilters {
				layer.Filters = n
			} else {
				layer.Size = n
			}
		case layerActivation:
			s, isStr := asString(t)
			if !ok || !isStr {
				return bad(`"sigmoid", "tanh" or "relu"`)
			}
			layer.Activation = deep.Activation(s)
		case layerDropout:
			x, isNum := asFloat(t)
			if !ok || !isNum {
				return bad(fmt.Sprintf("a number from 0 to %g", deep.MaxDropout))
			}
			layer.Dropout = x
		default:
			return &clientError{fmt.Sprintf("layers[%d] has an unknown key %.40q (known: type, filters, size, activation, dropout)", i, key)}
		}
		return nil
	})
	if err != nil {
		return layer, err
	}
	if !hasType {
		return layer, &clientError{fmt.Sprintf("layers[%d] needs a \"type\": \"conv\", \"pool\", \"dense\" or \"softmax\"", i)}
	}
	return layer, nil
}

// kernelsBody is GET /api/networks/{id}/kernels.
type kernelsBody struct {
	NetworkID     string `json:"network_id"`
	Layer         int    `json:"layer"`
	EpochsTrained int    `json:"epochs_trained"`
	Filters       int    `json:"filters"`
	Channels      int    `json:"channels"`
	Size          int    `json:"size"`
	// Kernels are [filters][channels][size][size].
	Kernels [][][][]float64 `json:"kernels"`
}

// kernelJSON bounds one weight in JSON (a float64 and its comma).
const kernelJSON = 25

// kernels answers the first conv layer's kernels, encoded once per network
// version (and held in the answer cache, whose bytes come from the memory
// budget).
func (h *handlers) kernels(c *gin.Context) {
	id, ok := pathID(c, service.MsgNetworkNotFound)
	if !ok {
		return
	}
	k, err := h.svc.Kernels(c.Request.Context(), id)
	if err != nil {
		h.fail(c, err)
		return
	}
	key := versionKey{kind: "kernels", networkID: id, version: k.Version}
	body, done, err := h.cache.get(c.Request.Context(), key, encodeBytes(int64(len(k.Weights))*kernelJSON+256), func() []byte {
		b := kernelsBody{NetworkID: id, Layer: k.Layer, EpochsTrained: k.EpochsTrained, Filters: k.Filters,
			Channels: k.Channels, Size: k.Size, Kernels: make([][][][]float64, k.Filters)}
		per := k.Size * k.Size
		for f := range b.Kernels {
			b.Kernels[f] = make([][][]float64, k.Channels)
			for ch := range b.Kernels[f] {
				plane := k.Weights[(f*k.Channels+ch)*per : (f*k.Channels+ch+1)*per]
				rows := make([][]float64, k.Size)
				for r := range rows {
					rows[r] = plane[r*k.Size : (r+1)*k.Size]
				}
				b.Kernels[f][ch] = rows
			}
		}
		data, err := json.Marshal(b)
		if err != nil { // finite weights always encode
			return []byte(`{"error":"internal error"}`)
		}
		return data
	})
	if err != nil {
		writeBusy(c, err)
		return
	}
	defer done()
	c.Data(http.StatusOK, "application/json; charset=utf-8", body)
}
