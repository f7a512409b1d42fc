package deep

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mnist-go/nnserver/pkg/network"
)

// gradCase is a small network that exercises some layer types, and the
// cost of its sigmoid output (if it has one).
type gradCase struct {
	name   string
	layers []Layer
	cost   network.Cost
}

// gradCases cover every layer type: conv and dense with each activation,
// pool (after conv and after pool), dropout on dense and softmax inputs,
// flattening (several channels and one), softmax with the log-likelihood,
// and a sigmoid output with both costs.
var gradCases = []gradCase{
	{"conv-sigmoid,pool,conv-tanh,pool,dense-relu-dropout,softmax-dropout", []Layer{
		{Kind: Conv, Filters: 2, Size: 5, Activation: Sigmoid},
		{Kind: Pool, Size: 2},
		{Kind: Conv, Filters: 3, Size: 3, Activation: Tanh},
		{Kind: Pool, Size: 2},
		{Kind: Dense, Size: 8, Activation: ReLU, Dropout: 0.5},
		{Kind: Softmax, Size: 10, Dropout: 0.3},
	}, network.Quadratic},
	{"conv-relu,pool,pool,dense-tanh,sigmoid-crossentropy", []Layer{
		{Kind: Conv, Filters: 3, Size: 5, Activation: ReLU},
		{Kind: Pool, Size: 2},
		{Kind: Pool, Size: 3},
		{Kind: Dense, Size: 6, Activation: Tanh},
		{Kind: Dense, Size: 10, Activation: Sigmoid},
	}, network.CrossEntropy},
	{"conv-tanh,pool,conv-relu,dense-sigmoid,sigmoid-quadratic", []Layer{
		{Kind: Conv, Filters: 2, Size: 3, Activation: Tanh},
		{Kind: Pool, Size: 2},
		{Kind: Conv, Filters: 2, Size: 4, Activation: ReLU},
		{Kind: Dense, Size: 7, Activation: Sigmoid, Dropout: 0.2},
		{Kind: Dense, Size: 10, Activation: Sigmoid},
	}, network.Quadratic},
	{"dense-sigmoid-dropout(image),dense-relu,softmax", []Layer{
		{Kind: Dense, Size: 9, Activation: Sigmoid, Dropout: 0.25},
		{Kind: Dense, Size: 5, Activation: ReLU},
		{Kind: Softmax, Size: 10},
	}, network.Quadratic},
	{"conv1-sigmoid(one channel flattened),softmax", []Layer{
		{Kind: Conv, Filters: 1, Size: 7, Activation: Sigmoid},
		{Kind: Pool, Size: 2},
		{Kind: Softmax, Size: 10, Dropout: 0.1},
	}, network.Quadratic},
}

// randomImage returns 784 values in [0, 1]. None is 0: blank patches
// would give equal maxima, where max-pooling has no derivative.
func randomImage(rng *rand.Rand) []float64 {
	x := make([]float64, inputShape.Len())
	for i := range x {
		x[i] = rng.Float64()
	}
	return x
}

// randomMasks draws a 0/1 mask for the inputs of every layer with dropout.
func randomMasks(n *Network, rng *rand.Rand) [][]float64 {
	masks := make([][]float64, len(n.layers))
	for i, l := range n.layers {
		if l.Dropout > 0 {
			masks[i] = make([]float64, inShape(n.shapes, i).Len())
			for q := range masks[i] {
				if rng.Float64() >= l.Dropout {
					masks[i][q] = 1
				}
			}
		}
	}
	return masks
}

func newTestNet(t testing.TB, layers []Layer, seed uint64) *Network {
	t.Helper()
	n, err := New(layers, network.InitScaled, rand.New(rand.NewPCG(seed, 7)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReferenceGradient checks the reference back-propagation against
// central finite differences of the cost, for every weight and bias of
// every case, with a fixed dropout mask: |analytic − numeric| ≤ 1e-6 +
// 1e-5·|numeric|.
func TestReferenceGradient(t *testing.T) {
	for ci, c := range gradCases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ci), 1))
			n := newTestNet(t, c.layers, uint64(ci))
			x := randomImage(rng)
			y := rng.IntN(Classes)
			masks := randomMasks(n, rng)
			gw, gb := refGradient(n, x, y, c.cost, masks)
			const h = 1e-5
			check := func(what string, p []float64, g []float64) {
				for j := range p {
					old := p[j]
					p[j] = old + h
					up := refCost(n, x, y, c.cost, masks)
					p[j] = old - h
					down := refCost(n, x, y, c.cost, masks)
					p[j] = old
					num := (up - down) / (2 * h)
					if d := math.Abs(g[j] - num); d > 1e-6+1e-5*math.Abs(num) {
						t.Fatalf("%s[%d]: back-propagation %.9g, finite differences %.9g", what, j, g[j], num)
					}
				}
			}
			for i := range n.layers {
				if n.w[i] == nil {
					continue
				}
				check(fmt.Sprintf("layers[%d].w", i), n.w[i], gw[i])
				check(fmt.Sprintf("layers[%d].b", i), n.b[i], gb[i])
			}
		})
	}
}

// TestEngineMatchesReference runs a batch of 7 examples through the float32
// engine (with the assembly kernels and with the Go loops) and compares its
// outputs and summed gradients with the float64 reference's. Tolerance:
// outputs within 2e-5; each gradient within 1e-4 of the largest magnitude
// of its layer's (float32 has 24 bits; sums of up to ~3,000 terms).
func TestEngineMatchesReference(t *testing.T) {
	defer func(u bool) { useAVX = u }(useAVX)
	for _, avx := range []bool{false, true} {
		if avx && !hasAVX {
			continue
		}
		useAVX = avx
		for ci, c := range gradCases {
			t.Run(fmt.Sprintf("avx=%v/%s", avx, c.name), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(ci), 2))
				n := newTestNet(t, c.layers, uint64(ci))
				e := newEngine(n)
				e.cost = c.cost
				const rows = 7
				wk := e.newWork(rows, true)
				var xs [][]float64
				var ys []int
				var ms [][][]float64
				for r := range rows {
					x := randomImage(rng)
					y := rng.IntN(Classes)
					m := randomMasks(n, rng)
					xs, ys, ms = append(xs, x), append(ys, y), append(ms, m)
					for q, v := range x {
						wk.x[r*len(x)+q] = float32(v)
					}
					wk.y[r] = int32(y)
					for i, mi := range m {
						for q, v := range mi {
							wk.mask[i][r*len(mi)+q] = float32(v)
						}
					}
				}
				// Inference outputs first.
				e.forward(wk, rows, false)
				last := len(n.layers) - 1
				for r := range rows {
					want := refForward(n, xs[r], nil)[last]
					for j, v := range want {
						if got := float64(wk.act[last][r*Classes+j]); math.Abs(got-v) > 2e-5 {
							t.Fatalf("example %d: output %d is %v, reference %v", r, j, got, v)
						}
					}
				}
				e.forward(wk, rows, true)
				e.backward(wk, rows, true)
				sumW, sumB := make([][]float64, len(n.layers)), make([][]float64, len(n.layers))
				for r := range rows {
					gw, gb := refGradient(n, xs[r], ys[r], c.cost, ms[r])
					for i := range gw {
						if gw[i] == nil {
							continue
						}
						if sumW[i] == nil {
							sumW[i], sumB[i] = make([]float64, len(gw[i])), make([]float64, len(gb[i]))
						}
						for j, v := range gw[i] {
							sumW[i][j] += v
						}
						for j, v := range gb[i] {
							sumB[i][j] += v
						}
					}
				}
				compare := func(what string, got []float32, want []float64) {
					scale := 0.0
					for _, v := range want {
						scale = math.Max(scale, math.Abs(v))
					}
					for j, v := range want {
						if math.Abs(float64(got[j])-v) > 1e-4*scale+1e-7 {
							t.Fatalf("%s[%d]: engine %v, reference %v (largest %v)", what, j, got[j], v, scale)
						}
					}
				}
				for i := range sumW {
					if sumW[i] != nil {
						compare(fmt.Sprintf("layers[%d].w", i), wk.gw[i], sumW[i])
						compare(fmt.Sprintf("layers[%d].b", i), wk.gb[i], sumB[i])
					}
				}
			})
		}
	}
}
