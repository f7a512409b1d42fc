package deep

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/network"
)

var (
	dsOnce sync.Once
	dsVal  *mnist.Dataset
	dsErr  error
)

func dataset(t testing.TB) *mnist.Dataset {
	t.Helper()
	dsOnce.Do(func() { dsVal, dsErr = mnist.LoadEmbedded() })
	if dsErr != nil {
		t.Fatal(dsErr)
	}
	return dsVal
}

// smallLayers is a quick network with every kind of layer and dropout.
var smallLayers = []Layer{
	{Kind: Conv, Filters: 4, Size: 5, Activation: ReLU},
	{Kind: Pool, Size: 2},
	{Kind: Dense, Size: 16, Activation: ReLU, Dropout: 0.3},
	{Kind: Softmax, Size: 10},
}

// trainSmall trains smallLayers from seed on the first n training images
// and returns the snapshots after every epoch.
func trainSmall(t *testing.T, n int, p Params, start *Network, seed uint64) []*Network {
	t.Helper()
	ds := dataset(t)
	if start == nil {
		start = newTestNet(t, smallLayers, seed)
	}
	var snaps []*Network
	_, err := SGD(context.Background(), start, ds.Training.Slice(0, n), ds.Test.Slice(0, 100), p,
		rand.New(rand.NewPCG(seed, 99)), func(e Epoch) error {
			snaps = append(snaps, e.Network)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return snaps
}

func sameBits(a, b *Network) bool {
	for i := range a.w {
		if !slices.Equal(a.w[i], b.w[i]) || !slices.Equal(a.b[i], b.b[i]) {
			return false
		}
	}
	return true
}

// maxDiff returns the largest difference between two networks' parameters.
func maxDiff(a, b *Network) float64 {
	d := 0.0
	for i := range a.w {
		for j := range a.w[i] {
			d = math.Max(d, math.Abs(a.w[i][j]-b.w[i][j]))
		}
		for j := range a.b[i] {
			d = math.Max(d, math.Abs(a.b[i][j]-b.b[i][j]))
		}
	}
	return d
}

var smallParams = Params{Epochs: 3, BatchSize: 10, Eta: 0.03, Lambda: 0.1}

// TestDeterministic: the same seed gives the same weights bit for bit, with
// one goroutine or several.
func TestDeterministic(t *testing.T) {
	a := trainSmall(t, 300, smallParams, nil, 1)
	b := trainSmall(t, 300, smallParams, nil, 1)
	for e := range a {
		if !sameBits(a[e], b[e]) {
			t.Fatalf("epoch %d: two runs with seed 1 differ", e+1)
		}
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	c := trainSmall(t, 300, smallParams, nil, 1)
	if !sameBits(a[2], c[2]) {
		t.Fatal("GOMAXPROCS 1 gives other weights than GOMAXPROCS > 1")
	}
	if d := trainSmall(t, 300, smallParams, nil, 2); sameBits(a[2], d[2]) {
		t.Fatal("seeds 1 and 2 give the same weights")
	}
}

// TestResume: training epochs 2–3 with Done = 1 from the network epoch 1
// left, and the generator in the state the first run started with, gives
// the uninterrupted run's weights bit for bit (with dropout, L2 and
// Expand).
func TestResume(t *testing.T) {
	for _, expand := range []bool{false, true} {
		p := smallParams
		p.Expand = expand
		n := 300
		if expand {
			n = 60
		}
		full := trainSmall(t, n, p, nil, 3)
		p1 := p
		p1.Epochs = 1
		first := trainSmall(t, n, p1, nil, 3)
		if !sameBits(first[0], full[0]) {
			t.Fatalf("expand %v: the first epoch differs between a 1-epoch and a 3-epoch run", expand)
		}
		p2 := p
		p2.Epochs, p2.Done = 2, 1
		rest := trainSmall(t, n, p2, first[0], 3)
		for e := range rest {
			if !sameBits(rest[e], full[e+1]) {
				t.Fatalf("expand %v: resumed epoch %d differs from the uninterrupted run's (by %g)", expand, e+2, maxDiff(rest[e], full[e+1]))
			}
		}
	}
}

// TestChunksSameMaths: a scratch bound that cuts every mini-batch of 10 into
// chunks gives the unbounded run's weights, to rounding.
func TestChunksSameMaths(t *testing.T) {
	p := smallParams
	p.Epochs = 1
	want := trainSmall(t, 200, p, nil, 4)[0]
	e := newEngine(want)
	for _, perShard := range []int{1, 2, 3} {
		q := p
		q.ScratchBytes = shards * perShard * e.workBytes(1, true)
		if r := rowsPerShard(e, q); r != perShard {
			t.Fatalf("ScratchBytes %d: %d rows per shard, want %d", q.ScratchBytes, r, perShard)
		}
		got := trainSmall(t, 200, q, nil, 4)[0]
		if d := maxDiff(got, want); d > 1e-5 {
			t.Errorf("%d rows per shard: weights differ from the unbounded run's by %g", perShard, d)
		}
	}
}

// TestKernelsAgreeInTraining: an epoch with the Go loops gives the
// assembly's weights to float32 rounding.
func TestKernelsAgreeInTraining(t *testing.T) {
	if !hasAVX {
		t.Skip("no AVX2/FMA: the Go loops are all there is")
	}
	p := smallParams
	p.Epochs = 1
	avx := trainSmall(t, 200, p, nil, 5)[0]
	defer func() { useAVX = true }()
	useAVX = false
	generic := trainSmall(t, 200, p, nil, 5)[0]
	if d := maxDiff(avx, generic); d > 1e-4 {
		t.Errorf("weights differ by %g between the kernels", d)
	}
}

// TestCancel: a cancelled context stops SGD with its error.
func TestCancel(t *testing.T) {
	ds := dataset(t)
	ctx, cancel := context.WithCancel(context.Background())
	p := smallParams
	batches := 0
	p.OnBatch = func(b, _ int) {
		batches = b
		if b == 3 {
			cancel()
		}
	}
	_, err := SGD(ctx, newTestNet(t, smallLayers, 1), ds.Training.Slice(0, 500), ds.Test.Slice(0, 10), p,
		rand.New(rand.NewPCG(1, 1)), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if batches != 3 {
		t.Fatalf("%d mini-batches ran, want 3", batches)
	}
}

// TestStepAllocates nothing: a mini-batch step, chunked or not.
func TestStepAllocatesNothing(t *testing.T) {
	ds := dataset(t)
	n := newTestNet(t, smallLayers, 1)
	for _, scratch := range []int{0, 3 * 4 << 10} {
		p := smallParams
		p.ScratchBytes = scratch
		tr, err := newTrainer(n, p, [2]uint64{1, 2}, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		src := source{data: ds.Training.Slice(0, 100), expand: true}
		batch := []int32{1, 5, 99, 250, 7, 3, 8, 400, 11, 12}
		allocs := testing.AllocsPerRun(20, func() { tr.step(src, batch, nil) })
		tr.close()
		if allocs != 0 {
			t.Errorf("ScratchBytes %d: a step allocates %v times", scratch, allocs)
		}
	}
}

// TestTrainerBytes: the estimate bounds the heap a trainer's construction
// takes, and is not wildly above it.
func TestTrainerBytes(t *testing.T) {
	example := []Layer{
		{Kind: Conv, Filters: 20, Size: 5, Activation: ReLU},
		{Kind: Pool, Size: 2},
		{Kind: Conv, Filters: 40, Size: 5, Activation: ReLU},
		{Kind: Pool, Size: 2},
		{Kind: Dense, Size: 100, Activation: ReLU, Dropout: 0.5},
		{Kind: Softmax, Size: 10},
	}
	for _, c := range []struct {
		layers []Layer
		p      Params
	}{
		{example, Params{BatchSize: 10, Eta: 0.1}},
		{example, Params{BatchSize: 500, Eta: 0.1}},
		{example, Params{BatchSize: 50000, Eta: 0.1, ScratchBytes: 32 << 20}},
		{smallLayers, Params{BatchSize: 1, Eta: 0.1}},
	} {
		n := newTestNet(t, c.layers, 1)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tr, err := newTrainer(n, c.p, [2]uint64{1, 2}, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		// The evaluation scratch, made on the first evaluation.
		if _, err := tr.eval.evaluate(dataset(t).Test.Slice(0, 200)); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		used := int(after.TotalAlloc - before.TotalAlloc)
		est := TrainerBytes(c.layers, c.p)
		tr.close()
		t.Logf("batch %d, scratch %d: allocated %d, estimate %d", c.p.BatchSize, c.p.ScratchBytes, used, est)
		if used > est {
			t.Errorf("batch %d: allocated %d bytes, more than the estimate %d", c.p.BatchSize, used, est)
		}
		if est > 2*used+(1<<20) {
			t.Errorf("batch %d: estimate %d is far above the %d allocated", c.p.BatchSize, est, used)
		}
		if c.p.ScratchBytes > 0 {
			if s := shards * tr.e.workBytes(tr.perShd, true); s > c.p.ScratchBytes {
				t.Errorf("scratch %d exceeds ScratchBytes %d", s, c.p.ScratchBytes)
			}
		}
	}
}

// TestExpandShifts: example v of an expanded set is image v mod n shifted
// down, up, right or left by one pixel, the row or column shifted in blank,
// as expand_mnist.py's np.roll and zeroing make them.
func TestExpandShifts(t *testing.T) {
	// A 28×28 image with a few pixels, on the edges too.
	img := make([]byte, 784)
	set := func(r, c int, v byte) { img[r*28+c] = v }
	set(0, 0, 10)
	set(0, 27, 20)
	set(27, 5, 30)
	set(13, 14, 40)
	set(14, 27, 50)
	data := sparseSet{images: [][]byte{img, make([]byte, 784)}, labels: []int{7, 1}}
	src := source{data: data, expand: true}
	if src.Len() != 10 {
		t.Fatalf("expanded length %d, want 10", src.Len())
	}
	want := func(dr, dc int) []float32 {
		out := make([]float32, 784)
		for r := range 28 {
			for c := range 28 {
				if v := img[r*28+c]; v != 0 && r+dr >= 0 && r+dr < 28 && c+dc >= 0 && c+dc < 28 {
					out[(r+dr)*28+c+dc] = float32(v) / 255
				}
			}
		}
		return out
	}
	x := make([]float32, 784)
	for v, shift := range [][2]int{{0, 0}, {1, 0}, {-1, 0}, {0, 1}, {0, -1}} {
		if y := src.load(2*v, x); y != 7 {
			t.Fatalf("variant %d: label %d, want 7", v, y)
		}
		if w := want(shift[0], shift[1]); !slices.Equal(x, w) {
			t.Errorf("variant %d (rows %+d, columns %+d): wrong pixels", v, shift[0], shift[1])
		}
	}
	// Down moves the pixel of row 13 to row 14; the bottom row falls off.
	src.load(2, x)
	if x[14*28+14] != 40.0/255 || x[13*28+14] != 0 || x[5] != 0 {
		t.Error("the shift down is not a shift down")
	}
	if y := src.load(3, x); y != 1 || slices.ContainsFunc(x, func(v float32) bool { return v != 0 }) {
		t.Error("a blank image shifted is not blank")
	}
}

// sparseSet is network.Examples over dense byte images.
type sparseSet struct {
	images [][]byte
	labels []int
}

func (s sparseSet) Len() int        { return len(s.images) }
func (s sparseSet) Inputs() int     { return 784 }
func (s sparseSet) Label(i int) int { return s.labels[i] }
func (s sparseSet) Nonzero(i int) (idx []uint16, val []uint8) {
	for p, v := range s.images[i] {
		if v != 0 {
			idx = append(idx, uint16(p))
			val = append(val, v)
		}
	}
	return idx, val
}

// TestSGDErrors: bad parameters and data are errors, not panics.
func TestSGDErrors(t *testing.T) {
	ds := dataset(t)
	n := newTestNet(t, smallLayers, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	good := Params{Epochs: 1, BatchSize: 10, Eta: 0.1}
	for _, c := range []struct {
		name string
		p    Params
	}{
		{"epochs", Params{BatchSize: 10, Eta: 0.1}},
		{"batch", Params{Epochs: 1, Eta: 0.1}},
		{"eta", Params{Epochs: 1, BatchSize: 10}},
		{"eta NaN", Params{Epochs: 1, BatchSize: 10, Eta: math.NaN()}},
		{"lambda", Params{Epochs: 1, BatchSize: 10, Eta: 0.1, Lambda: -1}},
		{"cost", Params{Epochs: 1, BatchSize: 10, Eta: 0.1, Cost: 7}},
		{"scratch", Params{Epochs: 1, BatchSize: 10, Eta: 0.1, ScratchBytes: -1}},
		{"done", Params{Epochs: 1, BatchSize: 10, Eta: 0.1, Done: -1}},
	} {
		if _, err := SGD(context.Background(), n, ds.Training.Slice(0, 10), ds.Test.Slice(0, 10), c.p, rng, nil); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if _, err := SGD(context.Background(), n, ds.Training.Slice(0, 0), ds.Test, good, rng, nil); err == nil {
		t.Error("no training data: no error")
	}
	if _, err := SGD(context.Background(), nil, ds.Training, ds.Test, good, rng, nil); err == nil {
		t.Error("no network: no error")
	}
	if _, err := SGD(context.Background(), n, ds.Training, nil, good, rng, nil); err == nil {
		t.Error("no test data: no error")
	}
	if _, err := n.Evaluate(wrongInputs{}); err == nil {
		t.Error("Evaluate: examples of 5 inputs: no error")
	}
	if _, err := n.Outputs(wrongInputs{}); err == nil {
		t.Error("Outputs: examples of 5 inputs: no error")
	}
	if _, err := n.FeedForward(make([]float64, 10)); err == nil {
		t.Error("FeedForward: 10 inputs: no error")
	}
	x := make([]float64, 784)
	x[3] = math.NaN()
	if _, err := n.FeedForward(x); err == nil {
		t.Error("FeedForward: NaN input: no error")
	}
	// A mini-batch larger than the training set needs scratch for the set
	// only (here 240 GB would not be allocated).
	huge := Params{Epochs: 1, BatchSize: 1_000_000, Eta: 0.1}
	if _, err := SGD(context.Background(), n, ds.Training.Slice(0, 30), ds.Test.Slice(0, 10), huge, rng, nil); err != nil {
		t.Errorf("a mini-batch of 1,000,000 over 30 examples: %v", err)
	}
	// Diverging training is an error wrapping ErrNotFinite.
	big := Params{Epochs: 1, BatchSize: 10, Eta: 1e30}
	if _, err := SGD(context.Background(), n, ds.Training.Slice(0, 50), ds.Test.Slice(0, 10), big, rng, nil); !errors.Is(err, ErrNotFinite) {
		t.Errorf("η = 1e30: got %v, want ErrNotFinite", err)
	}
}

// wrongInputs is a data set of 5-input examples.
type wrongInputs struct{}

var _ network.Examples = wrongInputs{}

func (wrongInputs) Len() int                        { return 1 }
func (wrongInputs) Inputs() int                     { return 5 }
func (wrongInputs) Label(int) int                   { return 0 }
func (wrongInputs) Nonzero(int) ([]uint16, []uint8) { return nil, nil }

// TestStepMatchesReference: one mini-batch step, in one chunk (dense layers
// updated straight from δ and X) and in chunks (gradient sums), gives
// w ← (1 − η·λ·BatchSize/n)·w − (η/m)·Σ∇w with the reference's gradients
// and the masks the trainer drew, within 2e-6 (float32 parameters).
func TestStepMatchesReference(t *testing.T) {
	ds := dataset(t)
	data := ds.Training.Slice(0, 50)
	batch := []int32{3, 1, 4, 15, 9, 26, 5}
	for _, c := range gradCases {
		for _, chunked := range []bool{false, true} {
			before := newTestNet(t, c.layers, 11)
			p := Params{BatchSize: len(batch), Eta: 0.5, Lambda: 2, Cost: c.cost}
			if chunked {
				p.ScratchBytes = 2 * shards * newEngine(before).workBytes(1, true)
			}
			tr, err := newTrainer(before, p, [2]uint64{5, 6}, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			// The reference starts from the float32 parameters the trainer has.
			start := tr.network()
			src := source{data: data}
			var masks [][][]float64
			if !chunked {
				tr.step(src, batch, nil)
				// The masks, recovered from the shards in example order.
				for s, wk := range tr.works {
					for r := range tr.count[s] {
						m := make([][]float64, len(c.layers))
						for i, mi := range wk.mask {
							if mi == nil {
								continue
							}
							nin := tr.e.in[i].Len()
							for _, v := range mi[r*nin : (r+1)*nin] {
								m[i] = append(m[i], float64(v))
							}
						}
						masks = append(masks, m)
					}
				}
			} else {
				// Chunks overwrite the masks: draw them as the trainer
				// will, from a twin generator, then step.
				twin, _ := newTrainer(before, Params{BatchSize: len(batch), Eta: 0.5, Cost: c.cost}, [2]uint64{5, 6}, 1<<30)
				twin.step(src, batch, nil)
				for s, wk := range twin.works {
					for r := range twin.count[s] {
						m := make([][]float64, len(c.layers))
						for i, mi := range wk.mask {
							if mi == nil {
								continue
							}
							nin := twin.e.in[i].Len()
							for _, v := range mi[r*nin : (r+1)*nin] {
								m[i] = append(m[i], float64(v))
							}
						}
						masks = append(masks, m)
					}
				}
				twin.close()
				tr.step(src, batch, nil)
			}
			after := tr.network()
			tr.close()
			decay := 1 - p.Eta*p.Lambda*float64(p.BatchSize)/float64(data.Len())
			cm := p.Eta / float64(len(batch))
			want := &Network{layers: start.layers, shapes: start.shapes, w: make([][]float64, len(start.w)), b: make([][]float64, len(start.b))}
			for i := range start.w {
				if start.w[i] != nil {
					want.w[i] = slices.Clone(start.w[i])
					want.b[i] = slices.Clone(start.b[i])
					for j := range want.w[i] {
						want.w[i][j] *= decay
					}
				}
			}
			x32 := make([]float32, 784)
			for e, v := range batch {
				y := int(src.load(int(v), x32))
				x := make([]float64, 784)
				for q, f := range x32 {
					x[q] = float64(f)
				}
				gw, gb := refGradient(start, x, y, c.cost, masks[e])
				for i := range gw {
					for j, g := range gw[i] {
						want.w[i][j] -= cm * g
					}
					for j, g := range gb[i] {
						want.b[i][j] -= cm * g
					}
				}
			}
			if d := maxDiff(after, want); d > 2e-6 {
				t.Errorf("%s, chunked %v: the step differs from the reference's by %g", c.name, chunked, d)
			}
		}
	}
}

// TestEpochCostAndValidation: with one mini-batch per epoch and no
// dropout, Epoch.TrainingCost is the start network's mean cost over the
// training examples (log-likelihood for softmax, Params.Cost for a sigmoid
// output) plus the L2 term with the epoch's weights; ValidationCorrect is
// the snapshot's score on Params.Validation.
func TestEpochCostAndValidation(t *testing.T) {
	ds := dataset(t)
	train := ds.Training.Slice(0, 40)
	val := ds.Training.Slice(1000, 1100)
	conv := []Layer{{Kind: Conv, Filters: 3, Size: 5, Activation: ReLU}, {Kind: Pool, Size: 4}}
	cases := []struct {
		name   string
		out    Layer
		cost   network.Cost
		lambda float64
	}{
		{"softmax", Layer{Kind: Softmax, Size: 10}, network.Quadratic, 0},
		{"softmax L2", Layer{Kind: Softmax, Size: 10}, network.Quadratic, 0.5},
		{"sigmoid quadratic", Layer{Kind: Dense, Size: 10, Activation: Sigmoid}, network.Quadratic, 0},
		{"sigmoid cross-entropy L2", Layer{Kind: Dense, Size: 10, Activation: Sigmoid}, network.CrossEntropy, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			layers := append(append([]Layer(nil), conv...), c.out)
			start := newTestNet(t, layers, 5)
			out, err := start.Outputs(train)
			if err != nil {
				t.Fatal(err)
			}
			want := 0.0
			for i := range train.Len() {
				y := train.Label(i)
				for j, a := range out[i*Classes : (i+1)*Classes] {
					one := j == y
					switch {
					case c.out.Kind == Softmax:
						if one {
							want += -math.Log(a)
						}
					case c.cost == network.Quadratic:
						tv := 0.0
						if one {
							tv = 1
						}
						want += 0.5 * (a - tv) * (a - tv)
					default:
						want += logCost(a, one)
					}
				}
			}
			want /= float64(train.Len())
			p := Params{Epochs: 2, BatchSize: train.Len(), Eta: 0.01, Lambda: c.lambda, Cost: c.cost, Validation: val}
			var eps []Epoch
			_, err = SGD(context.Background(), start, train, ds.Test.Slice(0, 50), p, rand.New(rand.NewPCG(1, 2)),
				func(e Epoch) error { eps = append(eps, e); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if c.lambda > 0 {
				sq := 0.0
				for _, w := range eps[0].Network.w {
					for _, v := range w {
						sq += v * v
					}
				}
				want += 0.5 * c.lambda * sq * float64(p.BatchSize) / float64(train.Len())
			}
			if got := eps[0].TrainingCost; math.Abs(got-want) > 1e-4*math.Abs(want) {
				t.Errorf("training cost %v, want %v", got, want)
			}
			if eps[1].TrainingCost == eps[0].TrainingCost || !(eps[1].TrainingCost > 0) {
				t.Errorf("epoch 2's training cost %v (epoch 1's %v)", eps[1].TrainingCost, eps[0].TrainingCost)
			}
			for _, e := range eps {
				right, err := e.Network.Evaluate(val)
				if err != nil {
					t.Fatal(err)
				}
				if e.ValidationTotal != val.Len() || e.ValidationCorrect != right {
					t.Errorf("epoch %d: validation %d/%d, want %d/%d", e.Epoch, e.ValidationCorrect, e.ValidationTotal, right, val.Len())
				}
			}
		})
	}
	// Without Validation: zeros.
	p := Params{Epochs: 1, BatchSize: 10, Eta: 0.01}
	_, err := SGD(context.Background(), newTestNet(t, smallLayers, 1), train, ds.Test.Slice(0, 20), p, rand.New(rand.NewPCG(1, 2)),
		func(e Epoch) error {
			if e.ValidationTotal != 0 || e.ValidationCorrect != 0 || !(e.TrainingCost > 0) {
				t.Errorf("no validation: %d/%d, cost %v", e.ValidationCorrect, e.ValidationTotal, e.TrainingCost)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	// Validation data of the wrong width is an error.
	p.Validation = wrongInputs{}
	if _, err := SGD(context.Background(), newTestNet(t, smallLayers, 1), train, ds.Test.Slice(0, 20), p, rand.New(rand.NewPCG(1, 2)), nil); err == nil {
		t.Error("validation examples of 10 inputs: no error")
	}
}
