package deep

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mnist-go/nnserver/pkg/network"
)

// exampleLayers is the example network of docs/DEEP.md (Nielsen's chapter
// 6 network with ReLU and dropout).
var exampleLayers = []Layer{
	{Kind: Conv, Filters: 20, Size: 5, Activation: ReLU},
	{Kind: Pool, Size: 2},
	{Kind: Conv, Filters: 40, Size: 5, Activation: ReLU},
	{Kind: Pool, Size: 2},
	{Kind: Dense, Size: 100, Activation: ReLU, Dropout: 0.5},
	{Kind: Softmax, Size: 10},
}

func TestPlanExample(t *testing.T) {
	shapes, err := Plan(exampleLayers, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Shape{{20, 24, 24}, {20, 12, 12}, {40, 8, 8}, {40, 4, 4}, {100, 1, 1}, {10, 1, 1}}
	if !slices.Equal(shapes, want) {
		t.Fatalf("shapes %v, want %v", shapes, want)
	}
	n := newTestNet(t, exampleLayers, 1)
	if got := n.Sizes(); !slices.Equal(got, []int{784, 11520, 2880, 2560, 640, 100, 10}) {
		t.Errorf("Sizes %v", got)
	}
	params := 20*26 + 40*501 + 100*641 + 10*101
	if n.ParamCount() != params {
		t.Errorf("ParamCount %d, want %d", n.ParamCount(), params)
	}
	s, err := Count(exampleLayers)
	if err != nil || s.Params != params || s.MACs != 20*25*576+40*500*64+640*100+1000 || s.Activations != 11520+2880+2560+640+110 {
		t.Errorf("Count = %+v, %v", s, err)
	}
	// Each limit: exactly at the count passes, one below fails.
	for _, lim := range []Limits{{MaxParams: s.Params}, {MaxMACs: s.MACs}, {MaxActivations: s.Activations}} {
		if _, err := Plan(exampleLayers, lim); err != nil {
			t.Errorf("%+v: %v", lim, err)
		}
	}
}

// TestPlanErrors: each broken rule is a *LayerError naming the layer and
// the shapes.
func TestPlanErrors(t *testing.T) {
	conv := func(f, k int) Layer { return Layer{Kind: Conv, Filters: f, Size: k, Activation: ReLU} }
	pool := func(k int) Layer { return Layer{Kind: Pool, Size: k} }
	dense := func(n int) Layer { return Layer{Kind: Dense, Size: n, Activation: Sigmoid} }
	soft := Layer{Kind: Softmax, Size: 10}
	for _, c := range []struct {
		name   string
		layers []Layer
		lim    Limits
		index  int
		msg    string
	}{
		{"empty", nil, Limits{}, -1, "at least one layer"},
		{"kernel larger than its input", []Layer{conv(20, 5), pool(2), conv(40, 5), pool(2), conv(40, 5), soft}, Limits{}, 4,
			"layers[4] (conv 5×5) needs an input of at least 5×5, got 4×4×40"},
		{"kernel larger than the image", []Layer{conv(2, 29), soft}, Limits{}, 0, "got 28×28×1"},
		{"pool does not divide", []Layer{conv(20, 5), pool(5), soft}, Limits{}, 1,
			"layers[1] (pool 5×5) needs an input whose height and width 5 divides, got 24×24×20"},
		{"dense before conv", []Layer{dense(30), conv(2, 1), soft}, Limits{}, 1, "comes after a dense layer"},
		{"dense before pool", []Layer{dense(30), pool(1), soft}, Limits{}, 1, "comes after a dense layer"},
		{"last dense 10 relu", []Layer{conv(2, 5), {Kind: Dense, Size: 10, Activation: ReLU}}, Limits{}, 1, "must be softmax 10"},
		{"last softmax 9", []Layer{conv(2, 5), {Kind: Softmax, Size: 9}}, Limits{}, 1, "must be softmax 10"},
		{"last pool", []Layer{conv(2, 5), pool(2)}, Limits{}, 1, "must be softmax 10"},
		{"softmax not last", []Layer{soft, dense(10)}, Limits{}, 0, "not the last layer"},
		{"unknown kind", []Layer{{Kind: "lstm", Size: 3}, soft}, Limits{}, 0, "unknown kind"},
		{"no activation", []Layer{{Kind: Conv, Filters: 2, Size: 3}, soft}, Limits{}, 0, "activation"},
		{"bad activation", []Layer{{Kind: Dense, Size: 3, Activation: "swish"}, soft}, Limits{}, 0, "activation"},
		{"pool with activation", []Layer{conv(2, 5), {Kind: Pool, Size: 2, Activation: ReLU}, soft}, Limits{}, 1, "takes no activation"},
		{"no filters", []Layer{{Kind: Conv, Size: 3, Activation: ReLU}, soft}, Limits{}, 0, "at least 1 filter"},
		{"filters on dense", []Layer{{Kind: Dense, Filters: 3, Size: 3, Activation: ReLU}, soft}, Limits{}, 0, "only a conv layer"},
		{"size 0", []Layer{conv(2, 0), soft}, Limits{}, 0, "size of at least 1"},
		{"dropout too large", []Layer{{Kind: Dense, Size: 3, Activation: ReLU, Dropout: 0.95}, soft}, Limits{}, 0, "dropout"},
		{"dropout NaN", []Layer{{Kind: Dense, Size: 3, Activation: ReLU, Dropout: math.NaN()}, soft}, Limits{}, 0, "dropout"},
		{"dropout on conv", []Layer{{Kind: Conv, Filters: 2, Size: 3, Activation: ReLU, Dropout: 0.5}, soft}, Limits{}, 0, "only dense and softmax"},
		{"huge filters", []Layer{conv(math.MaxInt, 3), soft}, Limits{}, 0, "too many"},
		{"huge dense", []Layer{dense(math.MaxInt / 2), soft}, Limits{}, 0, "too many"},
		{"params", exampleLayers, Limits{MaxParams: 1000}, 2, "weights and biases to 20560, more than the limit of 1000"},
		{"macs", exampleLayers, Limits{MaxMACs: 1000000}, 2, "multiply-adds"},
		{"activations", exampleLayers, Limits{MaxActivations: 12000}, 1, "activations per image to 14400"},
	} {
		_, err := Plan(c.layers, c.lim)
		var le *LayerError
		if !errors.As(err, &le) {
			t.Errorf("%s: got %v, want a *LayerError", c.name, err)
			continue
		}
		if le.Index != c.index || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %q (index %d), want index %d and %q", c.name, err, le.Index, c.index, c.msg)
		}
		if _, err := New(c.layers, network.InitScaled, rand.New(rand.NewPCG(1, 1))); c.lim == (Limits{}) && err == nil {
			t.Errorf("%s: New accepts the layers", c.name)
		}
	}
}

// TestParamsRoundTrip: Params gives back what FromParams took, in PyTorch's
// shapes, and the network computes the same.
func TestParamsRoundTrip(t *testing.T) {
	n := newTestNet(t, exampleLayers, 3)
	w, b, shapes := n.Params()
	want := [][]int{{20, 1, 5, 5}, {40, 20, 5, 5}, {100, 640}, {10, 100}}
	if len(shapes) != len(want) {
		t.Fatalf("shapes %v", shapes)
	}
	for i := range want {
		if !slices.Equal(shapes[i], want[i]) {
			t.Errorf("shape %d: %v, want %v", i, shapes[i], want[i])
		}
	}
	m, err := FromParams(exampleLayers, w, b)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBits(n, m) {
		t.Fatal("FromParams(Params()) differs")
	}
	w[0][0] = 99 // a copy: the network is unchanged
	if n.w[0][0] == 99 {
		t.Fatal("Params shares the network's weights")
	}
	if !slices.Equal(m.Layers(), exampleLayers) || !slices.Equal(m.Shapes(), n.Shapes()) {
		t.Fatal("Layers or Shapes differ")
	}
}

func TestFromParamsErrors(t *testing.T) {
	n := newTestNet(t, exampleLayers, 3)
	w, b, _ := n.Params()
	clone := func() ([][]float64, [][]float64) {
		cw, cb := make([][]float64, len(w)), make([][]float64, len(b))
		for i := range w {
			cw[i], cb[i] = slices.Clone(w[i]), slices.Clone(b[i])
		}
		return cw, cb
	}
	for _, c := range []struct {
		name   string
		break_ func(w, b [][]float64) ([][]float64, [][]float64)
		want   string
	}{
		{"too few", func(w, b [][]float64) ([][]float64, [][]float64) { return w[:3], b[:3] }, "need 4"},
		{"short weights", func(w, b [][]float64) ([][]float64, [][]float64) { w[1] = w[1][:10]; return w, b }, "layers[2] (conv 5×5) needs 20000 weights [40 20 5 5], got 10"},
		{"long biases", func(w, b [][]float64) ([][]float64, [][]float64) { b[3] = append(b[3], 1); return w, b }, "needs 10 biases, got 11"},
		{"NaN", func(w, b [][]float64) ([][]float64, [][]float64) { w[2][5] = math.NaN(); return w, b }, "not finite"},
		{"Inf bias", func(w, b [][]float64) ([][]float64, [][]float64) { b[0][1] = math.Inf(1); return w, b }, "not finite"},
		{"nil", func(w, b [][]float64) ([][]float64, [][]float64) { w[0] = nil; return w, b }, "needs 500 weights"},
	} {
		cw, cb := c.break_(clone())
		_, err := FromParams(exampleLayers, cw, cb)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := FromParams([]Layer{{Kind: Pool, Size: 2}}, nil, nil); err == nil {
		t.Error("bad layers: no error")
	}
	if _, err := New(exampleLayers, network.Init(9), rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Error("unknown init: no error")
	}
}

// TestInit: InitScaled's weights are InitNormal's divided by √fan_in, the
// biases the same draws.
func TestInit(t *testing.T) {
	a, _ := New(exampleLayers, network.InitNormal, rand.New(rand.NewPCG(5, 5)))
	b, _ := New(exampleLayers, network.InitScaled, rand.New(rand.NewPCG(5, 5)))
	fans := map[int]float64{0: 25, 2: 500, 4: 640, 5: 100}
	for i, fan := range fans {
		if !slices.Equal(a.b[i], b.b[i]) {
			t.Errorf("layer %d: biases differ", i)
		}
		for j := range a.w[i] {
			if a.w[i][j]/math.Sqrt(fan) != b.w[i][j] {
				t.Fatalf("layer %d: weight %d is %v, want %v/√%v", i, j, b.w[i][j], a.w[i][j], fan)
			}
		}
	}
}

// TestOutputsAgree: FeedForward, Outputs and Evaluate agree with each other
// and with the reference (inference scales dropout layers by 1−p).
func TestOutputsAgree(t *testing.T) {
	ds := dataset(t)
	n := newTestNet(t, exampleLayers, 4)
	data := ds.Test.Slice(0, 40)
	out, err := n.Outputs(data)
	if err != nil {
		t.Fatal(err)
	}
	correct := 0
	for i := range data.Len() {
		img := data.Image(i, nil)
		x := make([]float64, 784)
		for p, v := range img {
			x[p] = float64(v) / 255
		}
		ff, err := n.FeedForward(x)
		if err != nil {
			t.Fatal(err)
		}
		ref := refForward(n, x, nil)
		want := ref[len(ref)-1]
		for j := range Classes {
			if ff[j] != out[i*Classes+j] {
				t.Fatalf("example %d: FeedForward %v, Outputs %v", i, ff[j], out[i*Classes+j])
			}
			if math.Abs(ff[j]-want[j]) > 1e-5 {
				t.Fatalf("example %d: output %d is %v, reference %v", i, j, ff[j], want[j])
			}
		}
		if argmax64(want) == data.Label(i) {
			correct++
		}
	}
	got, err := n.Evaluate(data)
	if err != nil || got != correct {
		t.Fatalf("Evaluate = %d, %v; want %d", got, err, correct)
	}
}

func argmax64(xs []float64) int {
	best := 0
	for i, v := range xs {
		if v > xs[best] {
			best = i
		}
	}
	return best
}

// TestCheckBounded: a huge weight is reported.
func TestCheckBounded(t *testing.T) {
	n := newTestNet(t, exampleLayers, 4)
	if err := n.CheckBounded(); err != nil {
		t.Fatal(err)
	}
	w, b, _ := n.Params()
	w[1][7] = 1e37
	m, err := FromParams(exampleLayers, w, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckBounded(); !errors.Is(err, ErrNotFinite) {
		t.Fatalf("got %v, want ErrNotFinite", err)
	}
}
