package modelfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/network"
)

// convLayers is a small layers network with every kind of layer.
var convLayers = []deep.Layer{
	{Kind: deep.Conv, Filters: 3, Size: 5, Activation: deep.ReLU},
	{Kind: deep.Pool, Size: 2},
	{Kind: deep.Dense, Size: 8, Activation: deep.Sigmoid, Dropout: 0.25},
	{Kind: deep.Softmax, Size: 10, Dropout: 0.1},
}

func newDeep(t testing.TB, layers []deep.Layer, seed uint64) *deep.Network {
	t.Helper()
	n, err := deep.New(layers, network.InitScaled, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func deepMeta(n *deep.Network) Meta {
	m := newMeta(fixtureID, n.Sizes())
	m.Layers = n.Layers()
	m.Init = InitScaled
	return m
}

// TestLayersRoundTrip: a layers network is written as format version 3
// (meta.json's layers, arrays named by layer index, conv weights
// [filters, channels, k, k]) and Decode, DecodeEntry, Import and PeekImport
// read it back exactly.
func TestLayersRoundTrip(t *testing.T) {
	n := newDeep(t, convLayers, 3)
	m := deepMeta(n)
	file := saved(t, m, n)

	var meta map[string]any
	if err := json.Unmarshal(entry(t, file, metaEntry), &meta); err != nil {
		t.Fatal(err)
	}
	if meta["format_version"] != 3.0 {
		t.Errorf("format_version %v, want 3", meta["format_version"])
	}
	layersJSON, _ := json.Marshal(meta["layers"])
	want := `[{"activation":"relu","filters":3,"size":5,"type":"conv"},{"size":2,"type":"pool"},` +
		`{"activation":"sigmoid","dropout":0.25,"size":8,"type":"dense"},{"dropout":0.1,"size":10,"type":"softmax"}]`
	if string(layersJSON) != want {
		t.Errorf("layers %s\nwant %s", layersJSON, want)
	}
	if s, _ := json.Marshal(meta["layer_sizes"]); string(s) != "[784,1728,432,8,10]" {
		t.Errorf("layer_sizes %s", s)
	}
	var names []string
	for _, e := range unzip(t, file) {
		names = append(names, e.name)
	}
	if want := []string{"meta.json", "history.json", "w0.npy", "b0.npy", "w2.npy", "b2.npy", "w3.npy", "b3.npy"}; !slices.Equal(names, want) {
		t.Errorf("entries %v, want %v", names, want)
	}
	if h := string(entry(t, file, "w0.npy")[:80]); !strings.Contains(h, "'shape': (3, 1, 5, 5)") {
		t.Errorf("w0.npy header %q", h)
	}
	if h := string(entry(t, file, "w2.npy")[:80]); !strings.Contains(h, "'shape': (8, 432)") {
		t.Errorf("w2.npy header %q", h)
	}

	gm, gn, err := decodeAs(file, Limits{}, fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	sameMeta(t, gm, m)
	if !slices.Equal(gm.Layers, convLayers) {
		t.Errorf("layers %v", gm.Layers)
	}
	sameNetwork(t, gn, n)
	e, err := decodeEntryAs(file, Limits{}, fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.Layers, convLayers) || e.WeightShapes != nil {
		t.Errorf("entry %+v", e)
	}
	shape, err := PeekImport(bytes.NewReader(file), int64(len(file)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shape.Layers, convLayers) || shape.Params() != n.ParamCount() {
		t.Errorf("peek %+v, params %d want %d", shape, shape.Params(), n.ParamCount())
	}
	imp, err := Import(bytes.NewReader(file), int64(len(file)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if imp.Format != FormatNNServer || !slices.Equal(imp.Meta.Layers, convLayers) {
		t.Errorf("import %+v", imp)
	}
	sameNetwork(t, imp.Network, n)
	// Writing what was read gives the same bytes.
	if again := saved(t, gm, gn); !bytes.Equal(again, file) {
		t.Error("a decoded layers network does not encode to the same bytes")
	}
}

// TestLayersRefused: a hostile or inconsistent version 3 file is refused
// before its arrays are read; limits give ErrTooLarge.
func TestLayersRefused(t *testing.T) {
	n := newDeep(t, convLayers, 3)
	file := saved(t, deepMeta(n), n)
	big := []map[string]any{{"type": "conv", "filters": 100000, "size": 1, "activation": "relu"},
		{"type": "softmax", "size": 10}}
	for _, tc := range []struct {
		name     string
		data     []byte
		lim      Limits
		tooLarge bool
		msg      string
	}{
		{"MaxLayers", file, Limits{MaxLayers: 3}, true, "4 layers"},
		{"MaxParams", file, Limits{MaxParams: 100}, true, "weights and biases"},
		{"MaxMACs", file, Limits{MaxMACs: 1000}, true, "multiply-adds"},
		{"MaxActivations", file, Limits{MaxActivations: 100}, true, "activations"},
		{"huge activations", editFile(t, file, "layers", big), Limits{}, true, "activations"},
		{"no layers", editFile(t, file, "layers", []any{}), Limits{}, false, "layers is empty"},
		{"layers missing", dropKey(t, file, "layers"), Limits{}, false, `"layers" is missing`},
		{"does not chain", editFile(t, file, "layers", []map[string]any{{"type": "dense", "size": 10, "activation": "sigmoid"},
			{"type": "conv", "filters": 1, "size": 1, "activation": "relu"}}), Limits{}, false, "layers[1]"},
		{"sizes disagree", editFile(t, file, "layer_sizes", []int{784, 1728, 432, 9, 10}), Limits{}, false, "layer_sizes"},
		{"wrong shape", replaceEntry(t, file, "w0.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 25), }", floats(75))), Limits{}, false, "w0.npy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeAs(tc.data, tc.lim, fixtureID)
			if err == nil || !strings.Contains(err.Error(), tc.msg) || errors.Is(err, ErrTooLarge) != tc.tooLarge {
				t.Errorf("Decode: %v; want %q, too large %v", err, tc.msg, tc.tooLarge)
			}
			if _, err := PeekImport(bytes.NewReader(tc.data), int64(len(tc.data)), tc.lim); err == nil && tc.name != "wrong shape" {
				t.Error("PeekImport accepted it")
			}
		})
	}
}

// editFile returns file with meta.json's key set to value.
func editFile(t *testing.T, file []byte, key string, value any) []byte {
	t.Helper()
	es := unzip(t, file)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(es[0].data, &m); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(value)
	if err != nil {
		t.Fatal(err)
	}
	m[key] = raw
	if es[0].data, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return rezip(t, es)
}

func dropKey(t *testing.T, file []byte, key string) []byte {
	t.Helper()
	es := unzip(t, file)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(es[0].data, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, key)
	var err error
	if es[0].data, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return rezip(t, es)
}

func replaceEntry(t *testing.T, file []byte, name string, data []byte) []byte {
	t.Helper()
	es := unzip(t, file)
	for i := range es {
		if es[i].name == name {
			es[i].data = data
		}
	}
	return rezip(t, es)
}
