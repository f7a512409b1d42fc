package network_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/network"
)

func TestScratchRows(t *testing.T) {
	sizes := []int{784, 30, 10}
	row := network.BytesPerRow(sizes)
	if want := 16*(32+10) + 8; row != want { // the first layer padded to 32
		t.Fatalf("BytesPerRow = %d, want %d", row, want)
	}
	tests := []struct {
		name         string
		batch, bytes int
		want         int
	}{
		{"unbounded", 10, 0, 10},
		{"unbounded, huge batch", 50_000, 0, 50_000},
		{"exactly three rows", 10, 3 * row, 3},
		{"just short of four", 10, 4*row - 1, 3},
		{"less than one row", 10, row - 1, 1},
		{"one byte", 10, 1, 1},
		{"room for more than the batch", 10, 20 * row, 10},
		{"exactly the batch", 10, 10 * row, 10},
	}
	for _, tc := range tests {
		p := network.Params{Epochs: 1, BatchSize: tc.batch, Eta: 1, ScratchBytes: tc.bytes}
		if got := network.ScratchRows(sizes, p); got != tc.want {
			t.Errorf("%s: ScratchRows = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// The attack that found the problem: 50,000 examples of a network with a
// layer of 1,666,398 neurons need 666 GB of scratch. With a bound the
// estimate is modest and the trainer gets built; without one NewTrainer
// would have to allocate it all.
func TestTrainerBytesOfTheAttack(t *testing.T) {
	sizes := []int{784, 1, 1_666_398, 1, 10}
	p := network.Params{Epochs: 1, BatchSize: mnist.TrainSize, Eta: 3}
	if got := network.TrainerBytes(sizes, p); got < 600e9 {
		t.Errorf("unbounded: TrainerBytes = %d, want the 666 GB the attack asked for", got)
	}
	p.ScratchBytes = 64 << 20
	rows := network.ScratchRows(sizes, p)
	got := network.TrainerBytes(sizes, p)
	params := 8 * network.ParamCount(sizes)
	// Two copies of the parameters (weights and accumulator), the bound,
	// and small change.
	if rows != 2 || got < 2*params || got > 2*params+p.ScratchBytes+1<<20 {
		t.Errorf("bounded: %d rows, TrainerBytes = %d, want 2 rows and about %d", rows, got, 2*params+p.ScratchBytes)
	}
	if got := network.TrainerBytes([]int{1 << 40, 1 << 40}, p); got != math.MaxInt {
		t.Errorf("TrainerBytes of an impossible network = %d, want math.MaxInt", got)
	}
}

// TestChunkedEqualsUnchunked trains the same network on the same shuffles
// for three epochs with and without a scratch bound: working through a
// mini-batch in chunks must give the same weights to 1e-12 relative, and
// exactly the same when the bound holds a whole mini-batch.
func TestChunkedEqualsUnchunked(t *testing.T) {
	network.ForEachKernel(t, testChunkedEqualsUnchunked)
}

func testChunkedEqualsUnchunked(t *testing.T) {
	sizes := []int{784, 17, 5, 10}
	tests := []struct {
		name      string
		n, batch  int
		rows      int
		cost      network.Cost
		eta, lmbd float64
	}{
		{"batch not a multiple of rows", 60, 10, 3, network.Quadratic, 3, 0},
		{"one row", 60, 10, 1, network.Quadratic, 3, 0},
		{"rows equal the batch", 60, 10, 10, network.Quadratic, 3, 0},
		{"rows beyond the batch", 60, 10, 25, network.Quadratic, 3, 0},
		// 60 = 8·7 + 4: the last mini-batch fits the scratch and is
		// updated in place, the others in chunks.
		{"last batch in place", 60, 7, 5, network.Quadratic, 3, 0},
		{"one mini-batch of everything", 60, 60, 4, network.Quadratic, 3, 0},
		{"cross-entropy and L2", 60, 10, 3, network.CrossEntropy, 0.5, 5},
		// Weights shrink by 0.1 each mini-batch: the weight scale is
		// folded into the weights every fourth.
		{"L2 folding the weight scale", 60, 10, 4, network.CrossEntropy, 1, 54},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(21, 21))
			data := randomExamples(rng, tc.n, sizes[0], 10)
			net, err := network.New(sizes, network.InitScaled, rng)
			if err != nil {
				t.Fatal(err)
			}
			train := func(scratch int) *network.Network {
				p := network.Params{BatchSize: tc.batch, Eta: tc.eta, Cost: tc.cost, Lambda: tc.lmbd, ScratchBytes: scratch}
				tr := newTrainer(t, net, p, rand.New(rand.NewPCG(5, 5)))
				for range 3 {
					if _, err := tr.TrainEpoch(context.Background(), data); err != nil {
						t.Fatal(err)
					}
				}
				return tr.Network()
			}
			whole := train(0)
			chunked := train(tc.rows * network.BytesPerRow(sizes))
			d, scale := maxDiff(t, chunked, referenceOf(whole)), maxAbs(whole)
			t.Logf("max difference %g, largest parameter %g", d, scale)
			if tc.rows >= tc.batch && d != 0 {
				t.Errorf("the scratch holds a whole mini-batch, yet the weights differ by %g", d)
			}
			if d > 1e-12*scale {
				t.Errorf("chunked and whole mini-batches differ by %g, more than 1e-12 of %g", d, scale)
			}
			if maxDiff(t, net, referenceOf(chunked)) == 0 {
				t.Error("chunked training changed nothing")
			}
		})
	}
}

// maxAbs returns the largest magnitude of n's weights and biases.
func maxAbs(n *network.Network) float64 {
	m := 0.0
	for l := range n.NumLayers() {
		m = max(m, mat.Norm(n.Weights(l), math.Inf(1)), mat.Norm(n.Biases(l), math.Inf(1)))
	}
	return m
}

// cancelling is a data set that cancels a context at the given call of
// Nonzero, which the trainer makes twice per example of a chunk (forward
// pass and first-layer update), and counts the calls.
type cancelling struct {
	*examples
	at, calls int
	cancel    context.CancelFunc
}

func (c *cancelling) Nonzero(i int) ([]uint16, []uint8) {
	c.calls++
	if c.calls == c.at {
		c.cancel()
	}
	return c.examples.Nonzero(i)
}

// TestCancelBetweenChunks cancels in the middle of the second chunk of the
// only mini-batch: the trainer must finish that chunk and stop, leaving the
// weights as they were (a mini-batch applies whole or not at all).
func TestCancelBetweenChunks(t *testing.T) {
	sizes := []int{784, 17, 10}
	const rows = 4
	rng := rand.New(rand.NewPCG(22, 22))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := &cancelling{examples: randomExamples(rng, 60, sizes[0], 10), at: 2*rows + 3, cancel: cancel}
	net, err := network.New(sizes, network.InitNormal, rng)
	if err != nil {
		t.Fatal(err)
	}
	batches := 0
	p := network.Params{BatchSize: 60, Eta: 3, ScratchBytes: rows * network.BytesPerRow(sizes),
		OnBatch: func(int, int) { batches++ }}
	tr := newTrainer(t, net, p, rng)
	if _, err := tr.TrainEpoch(ctx, data); !errors.Is(err, context.Canceled) {
		t.Fatalf("TrainEpoch: %v, want context.Canceled", err)
	}
	if data.calls != 4*rows {
		t.Errorf("%d calls of Nonzero, want %d: the trainer stopped after the chunk in which it was cancelled", data.calls, 4*rows)
	}
	if d := maxDiff(t, tr.Network(), referenceOf(net)); d != 0 {
		t.Errorf("a cancelled mini-batch changed the weights by up to %g", d)
	}
	if batches != 0 {
		t.Errorf("OnBatch reported %d mini-batches done, want 0", batches)
	}
}

// A mini-batch size no memory could hold scratch for is refused, not
// attempted, unless a bound makes it workable.
func TestNewTrainerRefusesUnaddressableScratch(t *testing.T) {
	net, err := network.New([]int{3, 2}, network.InitNormal, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	p := network.Params{BatchSize: math.MaxInt, Eta: 1}
	if _, err := network.NewTrainer(net, p, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Error("NewTrainer accepted scratch for math.MaxInt examples")
	}
	p.ScratchBytes = 1 << 10
	if _, err := network.NewTrainer(net, p, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Errorf("with a bound: %v", err)
	}
}
