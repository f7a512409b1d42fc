package network_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/mnist-go/nnserver/internal/testutil"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/network"
)

var loadOnce = testutil.MNIST // loaded once for every test of the package

func dataset(tb testing.TB) *mnist.Dataset {
	tb.Helper()
	ds, err := loadOnce()
	if err != nil {
		tb.Fatal(err)
	}
	return ds
}

func benchmarkEpoch(b *testing.B, sizes []int, p network.Params) {
	ds := dataset(b)
	rng := rand.New(rand.NewPCG(1, 1))
	net, err := network.New(sizes, network.InitNormal, rng)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := network.NewTrainer(net, p, rng)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := tr.TrainEpoch(context.Background(), ds.Training); err != nil {
			b.Fatal(err)
		}
	}
}

// The epoch benchmarks time the training part of one epoch (50,000 images,
// mini-batches of 10): network.py's (quadratic cost, eta 3.0) and
// network2.py's (cross-entropy, eta 0.5, λ 5), which must cost at most 5%
// more.
var (
	nielsen1 = network.Params{BatchSize: 10, Eta: 3.0}
	nielsen2 = network.Params{BatchSize: 10, Eta: 0.5, Cost: network.CrossEntropy, Lambda: 5}
)

func BenchmarkEpoch784x30x10(b *testing.B)    { benchmarkEpoch(b, []int{784, 30, 10}, nielsen1) }
func BenchmarkEpoch784x30x10L2(b *testing.B)  { benchmarkEpoch(b, []int{784, 30, 10}, nielsen2) }
func BenchmarkEpoch784x100x10(b *testing.B)   { benchmarkEpoch(b, []int{784, 100, 10}, nielsen1) }
func BenchmarkEpoch784x100x10L2(b *testing.B) { benchmarkEpoch(b, []int{784, 100, 10}, nielsen2) }
func BenchmarkEpoch784x30x10OnBatch(b *testing.B) {
	p := nielsen1
	calls := 0
	p.OnBatch = func(int, int) { calls++ }
	benchmarkEpoch(b, []int{784, 30, 10}, p)
}
func BenchmarkEpoch784x128x64x10(b *testing.B) { benchmarkEpoch(b, []int{784, 128, 64, 10}, nielsen1) }

// BenchmarkBigBatch times an epoch of [784,100,10] that is one mini-batch
// of 50,000 examples, trainer included so that B/op shows its memory: with
// 1 MiB of scratch, worked through in chunks of 593 examples, and without a
// bound (88 MB of scratch).
func BenchmarkBigBatch(b *testing.B) {
	ds := dataset(b)
	sizes := []int{784, 100, 10}
	net, err := network.New(sizes, network.InitNormal, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		scratch int
	}{{"chunked-1MiB", 1 << 20}, {"unbounded", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			p := network.Params{BatchSize: ds.Training.Len(), Eta: 3, ScratchBytes: bc.scratch}
			b.ReportAllocs()
			for b.Loop() {
				tr, err := network.NewTrainer(net, p, rand.New(rand.NewPCG(1, 1)))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tr.TrainEpoch(context.Background(), ds.Training); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEvaluate times classifying the 10,000 test images with [784,30,10].
func BenchmarkEvaluate(b *testing.B) {
	ds := dataset(b)
	net, err := network.New([]int{784, 30, 10}, network.InitNormal, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		net.Evaluate(ds.Test)
	}
}

// BenchmarkSGDValidation times SGD epochs of [784, 30, 10] (five a run, the
// last one's validation pass not overlapped) without and with the
// validation pass over the 10,000 validation images, which SGD runs while
// the next epoch trains: the difference of the two is what the pass costs
// an epoch (issue 19: under 5%). Reported as ns per epoch.
func BenchmarkSGDValidation(b *testing.B) {
	ds := dataset(b)
	net, err := network.New([]int{784, 30, 10}, network.InitNormal, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		val  network.Examples
	}{{"without", nil}, {"with", ds.Validation}} {
		b.Run(tc.name, func(b *testing.B) {
			p := nielsen1
			p.Epochs, p.Validation = 5, tc.val
			epochs := 0
			for b.Loop() {
				if _, err := network.SGD(context.Background(), net, ds.Training, ds.Test, p, rand.New(rand.NewPCG(1, 1)), nil); err != nil {
					b.Fatal(err)
				}
				epochs += p.Epochs
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(epochs), "ns/epoch")
		})
	}
}
